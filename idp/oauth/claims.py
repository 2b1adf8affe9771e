"""Who the token is about, in which org: the ID token and userinfo claims (OIDC Core §5.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from idp.connections.domains import verified_org_for_email
from idp.db import db
from idp.orgs.models import Membership, Organization, Team, TeamMember
from idp.orgs.role_book import permissions_for
from idp.sessions.models import Session
from idp.users.models import User

# Scopes and the claims each adds; org, role, groups and permissions come with ``openid``.
SCOPES: dict[str, tuple[str, ...]] = {
    "openid": ("sub", "org", "role", "groups", "permissions", "sid", "amr", "acr", "auth_time"),
    "profile": ("name",),
    "email": ("email", "email_verified"),
    "offline_access": (),
}
CLAIMS_SUPPORTED = sorted({c for claims in SCOPES.values() for c in claims} | {"nonce", "iss"})


@dataclass
class Principal:
    """The person a grant is for, in one org, through one session (authlib's ``user``)."""

    user: User
    org: Organization
    membership: Membership
    session: Session
    jti: str = ""  # the access token being minted for this principal
    extra: dict[str, Any] = field(default_factory=dict)

    def get_user_id(self) -> str:
        return self.user.id


def team_names(membership: Membership) -> list[str]:
    """The names of the member's teams in that org."""
    return sorted(
        db.session.scalars(
            select(Team.name)
            .join(TeamMember, TeamMember.team_id == Team.id)
            .where(TeamMember.membership_id == membership.id, Team.org_id == membership.org_id)
        )
    )


def email_verified(user: User, org: Organization) -> bool:
    """True only when the address is proven: the workspace identity of an address its holder
    proved (an email link, an invitation's mail), or one whose domain the org verified."""
    if user.email_normalized is not None and user.email_verified:
        return True
    return bool(user.email) and verified_org_for_email(org.workspace_id, user.email) == org.id


def user_claims(principal: Principal, scope: str) -> dict[str, Any]:
    """The claims ``scope`` grants about ``principal``."""
    scopes = set(scope.split())
    user, org, membership, session = (
        principal.user,
        principal.org,
        principal.membership,
        principal.session,
    )
    claims: dict[str, Any] = {
        "sub": user.id,
        "org": {"id": org.id, "slug": org.slug, "name": org.name},
        "role": membership.role,
        "groups": team_names(membership),
        "permissions": permissions_for(org, membership.role),
        "sid": session.id,
        "amr": list(session.amr),
        "auth_time": int(session.auth_time.timestamp()),
    }
    if session.acr:
        claims["acr"] = session.acr
    if "profile" in scopes:
        claims["name"] = membership.name  # what this org set (idp.people), never another's
    if "email" in scopes and user.email:
        claims["email"] = user.email
        claims["email_verified"] = email_verified(user, org)
    return claims
