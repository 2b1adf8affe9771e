"""Plain builders for tests: each commits what it makes."""

from __future__ import annotations

from typing import Any

from idp.actors import system_actor
from idp.connections.models import Domain, DomainStatus
from idp.credentials.services import create_api_key
from idp.db import db, utcnow
from idp.orgs import services
from idp.orgs.models import Membership, Organization, Workspace
from idp.orgs.roles import Role


def workspace() -> Workspace:
    return services.ensure_workspace("default")


def make_org(slug: str = "acme", name: str | None = None, **kwargs: Any) -> Organization:
    org = services.create_org(
        system_actor(), workspace(), slug=slug, name=name or slug.title(), **kwargs
    )
    db.session.commit()
    return org


def make_member(org: Organization, email: str, role: Role = Role.MEMBER) -> Membership:
    membership = services.add_member(system_actor(), org, email=email, role=role)
    db.session.commit()
    return membership


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
