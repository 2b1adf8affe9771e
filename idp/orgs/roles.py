"""Roles and permissions as data: one table, one decision function."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Permission(StrEnum):
    """Every permission, ``<resource>:<action>``."""

    ORG_READ = "org:read"
    PROFILE_READ = "profile:read"
    TEAMS_READ = "teams:read"
    MEMBERSHIP_LEAVE = "membership:leave"

    MEMBERS_READ = "members:read"
    MEMBERS_INVITE = "members:invite"
    MEMBERS_ADD = "members:add"
    MEMBERS_REMOVE = "members:remove"
    MEMBERS_UPDATE = "members:update"
    TEAMS_WRITE = "teams:write"
    CONNECTIONS_READ = "connections:read"
    CONNECTIONS_WRITE = "connections:write"
    POLICIES_WRITE = "policies:write"
    API_KEYS_WRITE = "api_keys:write"
    SCIM_TOKENS_WRITE = "scim_tokens:write"
    AUDIT_READ = "audit:read"

    ORG_UPDATE = "org:update"
    ORG_DELETE = "org:delete"
    ORG_TRANSFER = "org:transfer_ownership"
    BILLING_MANAGE = "billing:manage"
    OWNERS_MANAGE = "owners:manage"


# What each role adds to the role below it; ROLE_PERMISSIONS accumulates them.
_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.MEMBER: frozenset(
        {
            Permission.ORG_READ,
            Permission.PROFILE_READ,
            Permission.TEAMS_READ,
            Permission.MEMBERSHIP_LEAVE,
        }
    ),
    Role.ADMIN: frozenset(
        {
            Permission.MEMBERS_READ,
            Permission.MEMBERS_INVITE,
            Permission.MEMBERS_ADD,
            Permission.MEMBERS_REMOVE,
            Permission.MEMBERS_UPDATE,
            Permission.TEAMS_WRITE,
            Permission.CONNECTIONS_READ,
            Permission.CONNECTIONS_WRITE,
            Permission.POLICIES_WRITE,
            Permission.API_KEYS_WRITE,
            Permission.SCIM_TOKENS_WRITE,
            Permission.AUDIT_READ,
        }
    ),
    Role.OWNER: frozenset(
        {
            Permission.ORG_UPDATE,
            Permission.ORG_DELETE,
            Permission.ORG_TRANSFER,
            Permission.BILLING_MANAGE,
            Permission.OWNERS_MANAGE,
        }
    ),
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    role: frozenset().union(*(_GRANTS[r] for r in Role if r.rank <= role.rank)) for role in Role
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    role: Role | None
    reason: str


def decide(role: Role | None, permission: Permission) -> Decision:
    """The one permission decision: may a principal holding ``role`` in an org do this?"""
    if role is None:
        return Decision(False, None, "not_a_member")
    if permission in ROLE_PERMISSIONS[role]:
        return Decision(True, role, f"granted_to_{role.value}")
    return Decision(False, role, f"requires_{_lowest_role_with(permission).value}")


def _lowest_role_with(permission: Permission) -> Role:
    return min((r for r in Role if permission in ROLE_PERMISSIONS[r]), key=lambda r: r.rank)


def role_permissions(role: Role) -> list[str]:
    return sorted(p.value for p in ROLE_PERMISSIONS[role])
