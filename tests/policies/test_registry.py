"""The policy registry: parsing per kind, "stricter" per kind, the strictest along a chain."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from idp.errors import BadRequest
from idp.orgs.roles import Role
from idp.policies.registry import (
    KEYS,
    Explained,
    Kind,
    Level,
    PolicyLooserThanInherited,
    check_override,
    effective,
    parse_policy,
    policy_key,
)

VALUES: dict[Kind, Any] = {
    Kind.REQUIRED_FLAG: st.booleans(),
    Kind.ALLOWED_FLAG: st.booleans(),
    Kind.MAX_DURATION: st.one_of(st.none(), st.integers(60, 366 * 86400)),
    Kind.DOMAIN_SET: st.one_of(
        st.none(), st.frozensets(st.sampled_from(["a.example", "b.example", "c.example"]))
    ),
    Kind.MAX_COUNT: st.integers(1, 1_000_000),
    Kind.MIN_ROLE: st.sampled_from(list(Role)),
}


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("sso_required", True, True),
        ("session_max_age", "12h", 43200),
        ("session_max_age", "30m", 1800),
        ("session_max_age", 3600, 3600),
        ("session_idle_timeout", None, None),
        ("invite_link_max_age", "7d", 7 * 86400),
        ("allowed_email_domains", ["Acme.Example", "acme.example."], frozenset({"acme.example"})),
        ("allowed_email_domains", [], None),
        ("member_cap", 50, 50),
        ("min_role_to_invite", "owner", Role.OWNER),
    ],
)
def test_values_parse_by_kind(name: str, raw: Any, value: Any) -> None:
    assert parse_policy({name: raw}) == {name: value}


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("sso_required", "yes"),
        ("session_max_age", "forever"),
        ("session_max_age", 10),  # under a minute
        ("session_max_age", True),
        ("allowed_email_domains", "acme.example"),
        ("allowed_email_domains", ["not a domain"]),
        ("member_cap", 0),
        ("member_cap", 2.5),
        ("min_role_to_invite", "god"),
        ("session_max_age", "\u0663\u0666\u0660\u0660"),  # Arabic-Indic digits: ASCII only
        ("session_max_age", "9" * 5000),  # no Python int-parsing message reaches a client
    ],
)
def test_bad_values_are_refused_with_the_key_named(name: str, raw: Any) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_policy({name: raw})
    assert refused.value.details["key"] == name
    assert "sys." not in refused.value.message


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(BadRequest) as refused:
        parse_policy({"make_everyone_admin": True})
    assert refused.value.code == "unknown_policy_key"


@pytest.mark.parametrize(
    ("name", "stricter", "looser"),
    [
        ("sso_required", True, False),
        ("jit_provisioning", False, True),
        ("session_max_age", 3600, 7200),
        ("session_idle_timeout", 600, None),
        ("allowed_email_domains", frozenset({"a.example"}), frozenset({"a.example", "b.example"})),
        ("allowed_email_domains", frozenset({"a.example"}), None),
        ("member_cap", 10, 20),
        ("min_role_to_invite", Role.OWNER, Role.ADMIN),
    ],
)
def test_stricter_only(name: str, stricter: Any, looser: Any) -> None:
    check_override(name, looser, stricter)  # tightening: accepted
    check_override(name, stricter, stricter)  # the same: accepted
    with pytest.raises(PolicyLooserThanInherited) as refused:
        check_override(name, stricter, looser)
    assert refused.value.code == "policy_looser_than_inherited"
    assert refused.value.status == 422
    assert refused.value.details["key"] == name


def test_disjoint_domain_lists_leave_no_domain_rather_than_any() -> None:
    key = policy_key("allowed_email_domains")
    assert key.strictest(frozenset({"a.example"}), frozenset({"b.example"})) == frozenset()
    assert not key.at_least_as_strict(None, frozenset())


@pytest.mark.parametrize("name", sorted(KEYS))
@given(data=st.data())
def test_strictest_is_at_least_as_strict_as_both(name: str, data: st.DataObject) -> None:
    key = KEYS[name]
    a, b = data.draw(VALUES[key.kind]), data.draw(VALUES[key.kind])
    merged = key.strictest(a, b)
    assert key.at_least_as_strict(merged, a) and key.at_least_as_strict(merged, b)
    assert merged == key.strictest(b, a)


def test_the_chain_takes_the_strictest_and_says_where_it_came_from() -> None:
    chain = [
        Level("workspace", {"session_max_age": 8 * 3600, "mfa_required": True}),
        Level("parent", {"session_max_age": 3600, "member_cap": 100}),
        Level("org", {"session_max_age": 4 * 3600, "member_cap": 50}),
    ]
    result = effective(chain)
    assert result["session_max_age"].value == 3600
    assert result["session_max_age"].source == "parent"
    assert result["session_max_age"].superseded == ("org",)  # looser than inherited: kept, unused
    assert result["member_cap"].value == 50 and result["member_cap"].source == "org"
    assert result["mfa_required"].value is True and result["mfa_required"].source == "workspace"
    assert result["sso_required"].value is False and result["sso_required"].source == "default"


def test_a_tightened_baseline_tightens_every_descendant_at_once() -> None:
    org = Level("org", {"session_max_age": 4 * 3600})
    assert effective([Level("workspace", {}), org])["session_max_age"].value == 4 * 3600
    tightened = effective([Level("workspace", {"session_max_age": 3600}), org])
    assert tightened["session_max_age"].value == 3600
    assert tightened["session_max_age"].superseded == ("org",)


def test_the_baseline_replaces_a_default_where_an_org_level_cannot() -> None:
    looser = {"min_role_to_invite": Role.MEMBER, "invite_link_max_age": 200 * 86400}
    result = effective([Level("workspace", looser, baseline=True)])
    assert result["min_role_to_invite"] == Explained(Role.MEMBER, "workspace")
    assert result["invite_link_max_age"].value == 200 * 86400
    org = effective([Level("workspace", {}, baseline=True), Level("org", looser)])
    assert org["min_role_to_invite"] == Explained(Role.ADMIN, "default", ("org",))


def test_a_list_narrowed_by_the_chain_names_the_level_only_partly_in_force() -> None:
    chain = [
        Level("workspace", {"allowed_email_domains": frozenset({"b.example", "c.example"})}),
        Level("org", {"allowed_email_domains": frozenset({"a.example", "b.example"})}),
    ]
    result = effective(chain)["allowed_email_domains"]
    assert result == Explained(frozenset({"b.example"}), "org", ("org",))
