"""Setup links: an org's owner (or the operator) hands one to the customer's IT admin, who
connects the org's IdP, directory or domains through it without an account.

A link is a bearer credential like an API key: 256 random bits, stored as a digest, shown
once, expiring, revocable. What its holder may do is what its intents name, in its org only;
every change made through it is audited with the link as the actor.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from idp.actors import Actor, ActorKind
from idp.audit.services import record_org_event
from idp.config import current_settings
from idp.credentials.models import SetupLink
from idp.crypto import new_token, token_digest
from idp.db import db, utcnow, workspace_wide
from idp.errors import BadRequest, Forbidden, NotFound
from idp.orgs.models import Organization
from idp.orgs.roles import Permission, RoleDef
from idp.orgs.services import check_permission

TOKEN_PREFIX = "ghsetup"  # noqa: S105 - a prefix for secret scanners, not a secret
DEFAULT_LIFETIME = timedelta(hours=72)
MAX_LIFETIME = timedelta(days=30)
MIN_LIFETIME = timedelta(minutes=5)


class Intent(StrEnum):
    SSO = "sso"
    SCIM = "scim"
    DOMAINS = "domains"


# What each intent lets the link's holder do in its org, and nothing more.
_INTENT_PERMISSIONS: dict[Intent, frozenset[str]] = {
    Intent.SSO: frozenset({Permission.CONNECTIONS_READ, Permission.CONNECTIONS_WRITE}),
    Intent.SCIM: frozenset({Permission.SCIM_TOKENS_WRITE}),
    Intent.DOMAINS: frozenset({Permission.CONNECTIONS_READ, Permission.CONNECTIONS_WRITE}),
}


def link_snapshot(link: SetupLink) -> dict[str, Any]:
    """What the audit log keeps of it (never the token)."""
    return {
        "intents": list(link.intents),
        "expires_at": link.expires_at.isoformat(),
        "revoked": link.revoked_at is not None,
    }


def link_url(token: str) -> str:
    return f"{current_settings().issuer.rstrip('/')}/setup/{token}"


def _intents(values: Any) -> list[str]:
    if not isinstance(values, list | tuple) or not values:
        raise BadRequest("invalid_intents", "Name at least one intent: sso, scim, domains")
    known = {i.value for i in Intent}
    unknown = [v for v in values if v not in known]
    if unknown:
        raise BadRequest("invalid_intents", f"Unknown intent {unknown[0]!r}: sso, scim, domains")
    return sorted(set(values), key=[i.value for i in Intent].index)


def create_setup_link(
    actor: Actor,
    org: Organization,
    *,
    intents: Any,
    expires_in: int | None = None,
) -> tuple[SetupLink, str]:
    """A new link for the org; the URL (holding the token) is returned once, here.

    Handing out what the link may do needs that much authority: an org owner (or the
    operator) for SSO and domains, which decide who signs in as the org's members."""
    check_permission(actor, Permission.OWNERS_MANAGE)
    chosen = _intents(intents)
    lifetime = DEFAULT_LIFETIME if expires_in is None else timedelta(seconds=expires_in)
    if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise BadRequest(
            "invalid_expires_in",
            "expires_in is between 300 seconds and 30 days",
            field="expires_in",
        )
    token = new_token(TOKEN_PREFIX)
    link = SetupLink(
        org_id=org.id,
        name=f"Setup link ({', '.join(chosen)})",
        token_digest=token_digest(token),
        hint=token[-4:],
        created_by=actor.label,
        intents=chosen,
        expires_at=utcnow() + lifetime,
    )
    db.session.add(link)
    db.session.flush()
    record_org_event(
        actor, org, "setup_link.created", "setup_link", link.id, after=link_snapshot(link)
    )
    return link, link_url(token)


def list_setup_links(org_id: str) -> list[SetupLink]:
    return list(
        db.session.scalars(
            select(SetupLink).where(SetupLink.org_id == org_id).order_by(SetupLink.id.desc())
        )
    )


def get_setup_link(org_id: str, link_id: str) -> SetupLink:
    found = db.session.scalar(
        select(SetupLink).where(SetupLink.org_id == org_id, SetupLink.id == link_id)
    )
    if found is None:
        raise NotFound("setup_link_not_found", "No such setup link in this organization")
    return found


def revoke_setup_link(actor: Actor, org: Organization, link: SetupLink) -> SetupLink:
    check_permission(actor, Permission.OWNERS_MANAGE)
    if link.revoked_at is None:
        before = link_snapshot(link)
        link.revoked_at = utcnow()
        db.session.flush()
        record_org_event(
            actor,
            org,
            "setup_link.revoked",
            "setup_link",
            link.id,
            before=before,
            after=link_snapshot(link),
        )
    return link


def is_live(link: SetupLink, now: datetime | None = None) -> bool:
    return link.revoked_at is None and link.expires_at > (now or utcnow())


def open_setup_link(token: str) -> tuple[SetupLink, Organization]:
    """The live link a token denotes and its org; a wrong, expired or revoked one, or one of a
    deleted org, is refused alike (``setup_link_invalid``)."""
    link = None
    if isinstance(token, str) and token.startswith(TOKEN_PREFIX + "_") and len(token) < 200:
        with workspace_wide():  # found by its digest, before its org is known
            link = db.session.scalar(
                select(SetupLink).where(SetupLink.token_digest == token_digest(token))
            )
    org = db.session.get(Organization, link.org_id) if link is not None else None
    if link is None or org is None or org.deleted_at is not None or not is_live(link):
        raise Forbidden(
            "setup_link_invalid",
            "This setup link is not valid: it may have expired or been revoked. Ask for a new one.",
        )
    now = utcnow()
    if link.last_used_at is None or now - link.last_used_at > timedelta(minutes=1):
        link.last_used_at = now
    return link, org


def actor_for_setup_link(link: SetupLink, workspace_id: str, request_id: str | None) -> Actor:
    """The link's holder: what its intents name, in its org only."""
    held = frozenset().union(*(_INTENT_PERMISSIONS[Intent(i)] for i in link.intents))
    role = RoleDef("setup_link", "Setup link", 0, held, org_id=link.org_id)
    return Actor(
        ActorKind.SETUP_LINK,
        link.id,
        f"setup_link:{link.id}",
        role=role,
        org_id=link.org_id,
        request_id=request_id,
        workspace_id=workspace_id,
    )


def allows(link: SetupLink, intent: Intent) -> bool:
    return intent.value in link.intents
