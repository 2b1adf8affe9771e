"""An org's email domains: claim, verify by DNS TXT, remove; the home-realm discovery lookup.

A claim gets a random token; the org proves control of the domain by publishing the TXT
record ``gatehouse-verification=<token>`` at the domain itself or, where the apex is crowded
or managed elsewhere, at ``_gatehouse-challenge.<domain>``. Several orgs may claim a domain,
each with its own token; only one org of the workspace can hold it verified.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.exc import IntegrityError

from idp.actors import Actor
from idp.audit.services import record_org_event
from idp.config import current_settings, parse_nameservers
from idp.connections.dns import Outcome, TxtAnswer, lookup_txt
from idp.connections.models import Domain, DomainStatus
from idp.connections.names import email_domain, normalize_domain
from idp.db import db, utcnow, workspace_wide
from idp.errors import Conflict, GatehouseError, NotFound, Unprocessable
from idp.orgs.models import Organization
from idp.orgs.roles import Permission
from idp.orgs.services import check_permission, lock_org

TXT_PREFIX = "gatehouse-verification="
CHALLENGE_LABEL = "_gatehouse-challenge"
MAX_DOMAINS_PER_ORG = 1000


class DnsUnavailable(GatehouseError):
    """DNS gave no usable answer (timeout, SERVFAIL): nothing is known, try again later."""

    status = 503


# --- names -------------------------------------------------------------------------------


def verification_record(domain: Domain) -> dict[str, str]:
    """The DNS record the org publishes to prove control of the domain."""
    return {"type": "TXT", "name": domain.domain, "value": TXT_PREFIX + domain.verification_token}


def domain_snapshot(domain: Domain) -> dict[str, Any]:
    return {"domain": domain.domain, "status": domain.status.value}


# --- reads -------------------------------------------------------------------------------


def list_domains(org_id: str) -> list[Domain]:
    return list(
        db.session.scalars(select(Domain).where(Domain.org_id == org_id).order_by(Domain.domain))
    )


def get_domain(
    org_id: str, *, domain_id: str | None = None, domain: str = "", fresh: bool = False
) -> Domain:
    """A domain of the org, by id or by name; another org's is ``domain_not_found``."""
    query = select(Domain).where(Domain.org_id == org_id)
    if domain_id is not None:
        query = query.where(Domain.id == domain_id)
    else:
        query = query.where(Domain.domain == normalize_domain(domain))
    if fresh:
        query = query.execution_options(populate_existing=True)
    found = db.session.scalar(query)
    if found is None:
        raise NotFound("domain_not_found", "No such domain in this organization")
    return found


def verified_org_for_email(workspace_id: str, email: str) -> str | None:
    """Home-realm discovery: the live org that verified this email's domain (exact match)."""
    name = email_domain(email)
    if name is None:
        return None
    return db.session.scalar(
        select(Domain.org_id)
        .join(Organization, Organization.id == Domain.org_id)
        .where(
            Domain.workspace_id == workspace_id,
            Domain.domain == name,
            # Inline, not a parameter: a generic (prepared) plan can still use the partial index.
            Domain.status == literal_column(f"'{DomainStatus.VERIFIED.value}'"),
            Organization.deleted_at.is_(None),
        )
    )


def _refuse_if_verified_elsewhere(org: Organization, name: str) -> None:
    # Other orgs' claims: workspace-wide under row-level security, and only their existence
    # is told (the org's own declaration would hide every one of them).
    with workspace_wide():
        holder = db.session.scalar(
            select(Domain.id).where(
                Domain.workspace_id == org.workspace_id,
                Domain.domain == name,
                Domain.status == DomainStatus.VERIFIED,
                Domain.org_id != org.id,
            )
        )
    if holder is not None:
        raise Conflict(
            "domain_already_verified",
            f"Another organization has already verified {name}",
            field="domain",
        )


# --- actions -----------------------------------------------------------------------------


def claim_domain(actor: Actor, org: Organization, domain: str) -> Domain:
    """Claim a domain for the org (pending until verified); the response holds the TXT record."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    name = normalize_domain(domain)
    lock_org(org.id)
    taken = db.session.scalar(
        select(Domain.id).where(Domain.org_id == org.id, Domain.domain == name)
    )
    if taken is not None:
        raise Conflict(
            "domain_already_claimed", f"This organization already has {name}", field="domain"
        )
    _refuse_if_verified_elsewhere(org, name)
    count = db.session.scalar(
        select(func.count()).select_from(Domain).where(Domain.org_id == org.id)
    )
    if count >= MAX_DOMAINS_PER_ORG:
        raise Conflict(
            "too_many_domains", f"An organization has at most {MAX_DOMAINS_PER_ORG} domains"
        )
    claim = Domain(
        workspace_id=org.workspace_id,
        org_id=org.id,
        domain=name,
        verification_token=secrets.token_urlsafe(24),
        status=DomainStatus.PENDING,
    )
    db.session.add(claim)
    db.session.flush()
    record_org_event(actor, org, "domain.claimed", "domain", claim.id, after=domain_snapshot(claim))
    return claim


def verify_domain(actor: Actor, org: Organization, domain_id: str) -> Domain:
    """Look up the TXT record and mark the domain verified; a verified domain stays as it is.

    DNS is asked before any lock is taken (it may take seconds); the decision is then made
    again under the org's lock, with every claim of the name locked, so two orgs verifying
    at once cannot both win (and the partial unique index would refuse the second anyway).
    """
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    domain = get_domain(org.id, domain_id=domain_id)
    if domain.status is DomainStatus.VERIFIED:
        return domain
    _refuse_if_verified_elsewhere(org, domain.domain)
    expected = verification_record(domain)
    answers = _lookup_challenges(domain.domain)
    if not any(_holds(answer, expected["value"]) for answer in answers):
        raise _verification_error(expected, answers)

    lock_org(org.id)
    _lock_claims(org.workspace_id, domain.domain)
    domain = get_domain(org.id, domain_id=domain_id, fresh=True)
    if domain.status is DomainStatus.VERIFIED:
        return domain
    _refuse_if_verified_elsewhere(org, domain.domain)
    before = domain_snapshot(domain)
    domain.status = DomainStatus.VERIFIED
    domain.verified_at = domain.last_checked_at = utcnow()
    try:
        db.session.flush()
    except IntegrityError:  # the partial unique index: another org verified it meanwhile
        raise Conflict(
            "domain_already_verified",
            f"Another organization has already verified {before['domain']}",
        ) from None
    record_org_event(
        actor,
        org,
        "domain.verified",
        "domain",
        domain.id,
        before=before,
        after=domain_snapshot(domain),
    )
    return domain


def remove_domain(actor: Actor, org: Organization, domain_id: str) -> None:
    """Remove a claim, verified or not; the org's users no longer discover it by this domain."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    lock_org(org.id)
    domain = get_domain(org.id, domain_id=domain_id)
    before = domain_snapshot(domain)
    db.session.delete(domain)
    db.session.flush()
    record_org_event(actor, org, "domain.removed", "domain", domain_id, before=before)


# --- DNS ---------------------------------------------------------------------------------


def challenge_names(name: str) -> list[str]:
    """Where the TXT record may be published: the domain, or its ``_gatehouse-challenge``."""
    return [name, f"{CHALLENGE_LABEL}.{name}"]


def _lookup_challenges(name: str) -> list[TxtAnswer]:
    settings = current_settings()
    return lookup_txt(
        challenge_names(name), parse_nameservers(settings.dns_resolver), settings.dns_timeout
    )


def _holds(answer: TxtAnswer, expected: str) -> bool:
    wanted = expected.encode("ascii")
    # Every record is compared, so the time taken does not depend on where a match is.
    matches = [hmac.compare_digest(text.strip(), wanted) for text in answer.texts]
    return any(matches)


def _lock_claims(workspace_id: str, name: str) -> None:
    """Serialize verifications of one name across orgs until the transaction ends.

    PostgreSQL: lock every claim of the name (in id order, so lockers never deadlock).
    SQLite: ``lock_org`` already holds the database's single write lock.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        with workspace_wide():  # every org's claim, not only those row-level security shows
            db.session.execute(
                select(Domain.id)
                .where(Domain.workspace_id == workspace_id, Domain.domain == name)
                .order_by(Domain.id)
                .with_for_update()
            )


def _describe(answer: TxtAnswer) -> str:
    if answer.outcome is Outcome.NXDOMAIN:
        return f"{answer.name}: no such name"
    if answer.outcome is Outcome.TIMEOUT:
        return f"{answer.name}: no answer in time"
    if answer.outcome is Outcome.UNAVAILABLE:
        return f"{answer.name}: the DNS servers failed"
    count = len(answer.texts)
    return f"{answer.name}: {count} TXT record{'' if count == 1 else 's'}, none matching"


def _verification_error(expected: dict[str, str], answers: list[TxtAnswer]) -> GatehouseError:
    where = " or ".join(answer.name for answer in answers)
    found = "; ".join(_describe(answer) for answer in answers)
    details: dict[str, Any] = {
        "expected": {**expected, "names": [answer.name for answer in answers]},
        "found": {answer.name: len(answer.texts) for answer in answers},
    }
    if any(answer.is_unavailable for answer in answers):
        return DnsUnavailable(
            "dns_unavailable",
            f"DNS did not answer for {where} ({found}); try again shortly",
            **details,
        )
    return Unprocessable(
        "domain_verification_failed",
        f'Expected a TXT record "{expected["value"]}" at {where}; found {found}',
        **details,
    )
