"""The RBAC matrix as data: the product rule written out here, checked against ``decide``."""

from __future__ import annotations

import re

import pytest

from idp.orgs.roles import BUILTIN_ROLES, ROLE_PERMISSIONS, Permission, Role, decide

# The product rule, written independently of idp/orgs/roles.py: for each permission (by its
# wire value, as it appears in tokens and API errors), the lowest role that holds it.
LOWEST_ROLE: dict[str, str] = {
    # Guest: their own place, nothing of the org.
    "profile:read": "guest",
    "membership:leave": "guest",
    # Member: the org itself, to read.
    "org:read": "member",
    "teams:read": "member",
    # Admin: runs the org day to day, below the owners.
    "members:read": "admin",
    "members:invite": "admin",
    "members:add": "admin",
    "members:remove": "admin",
    "members:update": "admin",
    "teams:write": "admin",
    "team_members:write": "admin",
    "connections:read": "admin",
    "connections:write": "admin",
    "policies:write": "admin",
    "api_keys:write": "admin",
    "scim_tokens:write": "admin",
    "audit:read": "admin",
    "resources:read": "admin",
    "resources:write": "admin",
    # Owner: the org itself, its money and its owners.
    "org:update": "owner",
    "org:delete": "owner",
    "org:transfer_ownership": "owner",
    "billing:read": "owner",
    "billing:manage": "owner",
    "owners:manage": "owner",
    "roles:write": "owner",
}

# The role order, also written out rather than read from Role.rank.
RANK: dict[str, int] = {"guest": 0, "member": 1, "admin": 2, "owner": 3}


def holds(role: str, permission: str) -> bool:
    """Whether the product rule gives ``role`` this ``permission``."""
    return RANK[role] >= RANK[LOWEST_ROLE[permission]]


def test_table_covers_exactly_the_permissions() -> None:
    declared = {p.value for p in Permission}
    assert not declared - LOWEST_ROLE.keys(), "permissions without a decision in this table"
    assert not LOWEST_ROLE.keys() - declared, "decisions for permissions that do not exist"


def test_roles_are_the_three_built_in_ones_in_order() -> None:
    assert {r.value for r in Role} == RANK.keys()
    for role in Role:
        assert role.rank > 0
    assert sorted(Role, key=lambda r: r.rank) == sorted(Role, key=lambda r: RANK[r.value])


@pytest.mark.parametrize("permission", list(Permission), ids=str)
def test_permissions_are_resource_colon_action(permission: Permission) -> None:
    assert re.fullmatch(r"[a-z_]+:[a-z_]+", permission.value)


@pytest.mark.parametrize("role", list(Role), ids=str)
@pytest.mark.parametrize("permission", list(Permission), ids=str)
def test_decide_follows_the_matrix(role: Role, permission: Permission) -> None:
    decision = decide(BUILTIN_ROLES[role.value], permission)
    expected = holds(role.value, permission.value)
    assert decision.allowed is expected
    assert decision.role is BUILTIN_ROLES[role.value]
    if expected:
        assert decision.reason == f"granted_to_{role.value}"
    else:
        assert decision.reason == f"requires_{LOWEST_ROLE[permission.value]}"


@pytest.mark.parametrize("permission", list(Permission), ids=str)
def test_no_role_is_denied_as_not_a_member(permission: Permission) -> None:
    decision = decide(None, permission)
    assert decision.allowed is False
    assert decision.role is None
    assert decision.reason == "not_a_member"


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_role_permissions_lists_what_the_matrix_grants(role: Role) -> None:
    expected = sorted(p for p in LOWEST_ROLE if holds(role.value, p))
    assert sorted(BUILTIN_ROLES[role.value].permissions) == expected
    assert sorted(p.value for p in ROLE_PERMISSIONS[role]) == expected


def test_owner_holds_every_permission() -> None:
    assert all(decide(BUILTIN_ROLES["owner"], p).allowed for p in Permission)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [(Role.MEMBER, Role.ADMIN), (Role.ADMIN, Role.OWNER), (Role.MEMBER, Role.OWNER)],
    ids=["member<admin", "admin<owner", "member<owner"],
)
def test_higher_roles_hold_everything_lower_ones_do(lower: Role, higher: Role) -> None:
    lower_set = {p for p in Permission if decide(BUILTIN_ROLES[lower.value], p).allowed}
    higher_set = {p for p in Permission if decide(BUILTIN_ROLES[higher.value], p).allowed}
    assert lower_set < higher_set  # strictly: each step up adds something
