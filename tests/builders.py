"""Plain builders for tests: each commits what it makes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from idp.actors import system_actor
from idp.connections.models import Domain, DomainStatus
from idp.credentials.services import create_api_key
from idp.db import db, utcnow
from idp.login.cookies import signed_session_cookie
from idp.mail import OUTBOX
from idp.orgs import invitations, services
from idp.orgs.models import Membership, Organization, Workspace
from idp.orgs.roles import Role
from idp.people import services as people
from idp.sessions.services import start_email_session


def workspace() -> Workspace:
    return services.ensure_workspace("default")


def make_org(slug: str = "acme", name: str | None = None, **kwargs: Any) -> Organization:
    org = services.create_org(
        system_actor(), workspace(), slug=slug, name=name or slug.title(), **kwargs
    )
    db.session.commit()
    return org


def make_member(
    org: Organization, email: str, role: Role = Role.MEMBER, *, proven: bool = True
) -> Membership:
    """A member added by an admin; ``proven``: the person has since proven the address (an
    email link), so they are its workspace identity in every org that added it."""
    membership = people.add_member(system_actor(), org, email=email, role=role)
    if proven:
        people.prove_address(lambda _org: system_actor(), org.workspace_id, email)
    db.session.commit()
    return db.session.get(Membership, membership.id)


def invite_mailed(org: Organization, email: str, role: Role = Role.MEMBER) -> tuple[str, str]:
    """An emailed invitation: its token (as the API shows it) and the proof only its mail
    carries."""
    _invitation, token = invitations.invite_by_email(system_actor(), org, email=email, role=role)
    mail = db.session.info[OUTBOX][-1]
    url = next(word for word in mail.body.split() if "/invitations/accept?" in word)
    db.session.commit()
    return token, parse_qs(urlsplit(url).query)["proof"][0]


def make_verified_domain(org: Organization, domain: str) -> Domain:
    """A domain row already verified: verification by DNS is tests/sso/test_domains.py's subject."""
    row = Domain(
        workspace_id=org.workspace_id,
        org_id=org.id,
        domain=domain,
        verification_token="t",
        status=DomainStatus.VERIFIED,
        verified_at=utcnow(),
    )
    db.session.add(row)
    db.session.commit()
    return row


def make_key(org: Organization | None = None, role: Role = Role.ADMIN) -> str:
    _, token = create_api_key(system_actor(), workspace().id, name="test", org=org, role=role)
    db.session.commit()
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed_in_cookie(membership: Membership, hours: int = 1) -> str:
    """A browser session of the member in their org (as an email link would start), as the
    value of its ``gatehouse_session`` cookie."""
    org = db.session.get(Organization, membership.org_id)
    _session, token = start_email_session(membership.user, org, lifetime=timedelta(hours=hours))
    db.session.commit()
    return signed_session_cookie(token)
