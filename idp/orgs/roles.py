"""Roles and permissions as data: one table, one decision function.

A role is a key, a name, a rank and a set of permissions (:class:`RoleDef`). The three built-in
roles are defined here and never change; custom roles (workspace templates, an org's own) are
rows that ``idp.orgs.role_book`` reads into the same shape. A membership holds one role key;
the rank orders roles where one must win (the hand-set role against those mapped from IdP
groups) and where one may act on another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """The built-in roles' keys."""

    GUEST = "guest"  # in the org only for what they were invited to below it
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANK[self]


# Gaps between the built-ins leave room for custom roles (Finance between Member and Admin).
_RANK = {Role.GUEST: 50, Role.MEMBER: 100, Role.ADMIN: 200, Role.OWNER: 300}
MIN_CUSTOM_RANK, MAX_CUSTOM_RANK = 1, 299  # a custom role never outranks Owner
DEFAULT_CUSTOM_RANK = 150
# Role keys and permission keys: lowercase words; permissions are ``<resource>:<action>``.
ROLE_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
PERMISSION_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,62}:[a-z][a-z0-9_.-]{0,62}$")


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
    TEAM_MEMBERS_WRITE = "team_members:write"
    CONNECTIONS_READ = "connections:read"
    CONNECTIONS_WRITE = "connections:write"
    POLICIES_WRITE = "policies:write"
    API_KEYS_WRITE = "api_keys:write"
    SCIM_TOKENS_WRITE = "scim_tokens:write"
    AUDIT_READ = "audit:read"
    RESOURCES_READ = "resources:read"
    RESOURCES_WRITE = "resources:write"

    ORG_UPDATE = "org:update"
    ORG_DELETE = "org:delete"
    ORG_TRANSFER = "org:transfer_ownership"
    BILLING_READ = "billing:read"
    BILLING_MANAGE = "billing:manage"
    OWNERS_MANAGE = "owners:manage"
    ROLES_WRITE = "roles:write"


# What each role adds to the role below it; ROLE_PERMISSIONS accumulates them.
_GRANTS: dict[Role, frozenset[Permission]] = {
    # A guest holds their own place and nothing of the org: what they may do comes from
    # the roles they hold on resources (a project they were invited to).
    Role.GUEST: frozenset({Permission.PROFILE_READ, Permission.MEMBERSHIP_LEAVE}),
    Role.MEMBER: frozenset({Permission.ORG_READ, Permission.TEAMS_READ}),
    Role.ADMIN: frozenset(
        {
            Permission.MEMBERS_READ,
            Permission.MEMBERS_INVITE,
            Permission.MEMBERS_ADD,
            Permission.MEMBERS_REMOVE,
            Permission.MEMBERS_UPDATE,
            Permission.TEAMS_WRITE,
            Permission.TEAM_MEMBERS_WRITE,
            Permission.CONNECTIONS_READ,
            Permission.CONNECTIONS_WRITE,
            Permission.POLICIES_WRITE,
            Permission.API_KEYS_WRITE,
            Permission.SCIM_TOKENS_WRITE,
            Permission.AUDIT_READ,
            Permission.RESOURCES_READ,
            Permission.RESOURCES_WRITE,
        }
    ),
    Role.OWNER: frozenset(
        {
            Permission.ORG_UPDATE,
            Permission.ORG_DELETE,
            Permission.ORG_TRANSFER,
            Permission.BILLING_READ,
            Permission.BILLING_MANAGE,
            Permission.OWNERS_MANAGE,
            Permission.ROLES_WRITE,
        }
    ),
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    role: frozenset().union(*(_GRANTS[r] for r in Role if r.rank <= role.rank)) for role in Role
}


GATEHOUSE_PERMISSIONS = frozenset(p.value for p in Permission)


@dataclass(frozen=True)
class RoleDef:
    """A role as decisions see it: built-in, a workspace template, or an org's own."""

    key: str
    name: str
    rank: int
    permissions: frozenset[str]
    description: str = ""
    org_id: str | None = None  # an org's own role; None: built-in or workspace-wide
    id: str | None = None  # the row of a custom role
    holders: int = field(default=0, compare=False)

    @property
    def is_builtin(self) -> bool:
        return self.id is None


_NAMES = {Role.GUEST: "Guest", Role.MEMBER: "Member", Role.ADMIN: "Admin", Role.OWNER: "Owner"}


def builtin_role(role: Role, app_permissions: Iterable[tuple[str, Role]] = ()) -> RoleDef:
    """A built-in role, with the app's permissions granted from its rank up (Owner holds
    every permission of the app)."""
    granted = {key for key, lowest in app_permissions if lowest.rank <= role.rank}
    return RoleDef(
        role.value,
        _NAMES[role],
        role.rank,
        frozenset(p.value for p in ROLE_PERMISSIONS[role]) | granted,
        description=f"Built-in {_NAMES[role]} role",
    )


BUILTIN_ROLES: dict[str, RoleDef] = {role.value: builtin_role(role) for role in Role}
OWNER, ADMIN, MEMBER = (BUILTIN_ROLES[r.value] for r in (Role.OWNER, Role.ADMIN, Role.MEMBER))

# What a team's leads, and the team's own API keys, hold on that team and no other: reading
# it and changing who is on it. Not a role of the org: at the org they hold nothing by it.
TEAM_SCOPE = RoleDef(
    "team_lead",
    "Team lead",
    0,
    frozenset({Permission.TEAMS_READ.value, Permission.TEAM_MEMBERS_WRITE.value}),
    description="Manages the members of one team",
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    role: RoleDef | None
    reason: str


def decide(role: RoleDef | None, permission: str) -> Decision:
    """The one permission decision: may a principal holding ``role`` in an org do this?"""
    if role is None:
        return Decision(False, None, "not_a_member")
    if permission in role.permissions:
        return Decision(True, role, f"granted_to_{role.key}")
    return Decision(False, role, _missing(permission))


def _missing(permission: str) -> str:
    lowest = next((r for r in Role if permission in BUILTIN_ROLES[r.value].permissions), None)
    return f"requires_{lowest.value}" if lowest else "permission_not_in_role"


def highest(roles: Iterable[RoleDef]) -> RoleDef:
    """The role that wins among several (rank, then the built-in, then the key)."""
    return max(roles, key=lambda r: (r.rank, r.is_builtin, r.key))
