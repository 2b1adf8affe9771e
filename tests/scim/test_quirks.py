"""scim.quirks: each golden payload in tests/data replayed (see tests/data/README.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scim.errors import ScimError
from scim.members import MemberChanges, split_member_operations
from scim.patch import apply_patch, parse_patch
from scim.quirks import ADSCIM_GROUP, normalize_filter, normalize_request
from scim.schemas import ENTERPRISE_USER, GROUP, PATCH_OP, USER, group_type, user_type

DATA = Path(__file__).parent.parent / "data"
SOURCES = ("entra-", "okta-", "rfc7644-", "interop-")
GOLDEN = sorted(p for p in DATA.glob("*.json") if p.name.startswith(SOURCES))
TYPES = {"User": user_type(), "Group": group_type()}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_every_source_has_golden_payloads() -> None:
    for prefix in SOURCES:
        assert any(p.name.startswith(prefix) for p in GOLDEN), prefix


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_payload(path: Path) -> None:
    golden = load(path)
    assert golden["source"].startswith("https://")
    resource_type = TYPES[golden["resource_type"]]
    request = golden["request"]
    sent = copy.deepcopy(request)

    if golden["method"] == "GET":  # query parameters: only the filter has a quirk
        normalized = {k: normalize_filter(v) if k == "filter" else v for k, v in request.items()}
    else:
        normalized = normalize_request(request, resource_type, golden["method"])

    assert normalized == golden["normalized"]
    assert request == sent, "normalize_request must not change its input"
    if golden["method"] != "PATCH":
        return
    operations = parse_patch(normalized)
    assert apply_patch(golden["resource"], operations, resource_type) == golden["expected"]
    if "member_changes" in golden:
        _, members = split_member_operations(operations)
        assert members == MemberChanges(**golden["member_changes"])


def test_rfc_requests_are_left_as_they_are() -> None:
    for path in GOLDEN:
        golden = load(path)
        if path.name.startswith("rfc7644-"):
            assert golden["normalized"] == golden["request"], path.name


def test_golden_quirks_break_the_strict_parser() -> None:
    """Without normalizing, the vendors' requests are not RFC 7644: the quirks are needed."""
    for name in (
        "entra-patch-user-replace-capitalised.json",
        "entra-patch-user-active-string.json",
        "entra-patch-user-manager-string.json",
    ):
        golden = load(DATA / name)
        resource_type = TYPES[golden["resource_type"]]
        with pytest.raises(ScimError):
            apply_patch(golden["resource"], parse_patch(golden["request"]), resource_type)


# --- each quirk, beyond its golden payload ----------------------------------------------


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def normalize_ops(resource_type: Any, *operations: dict[str, Any]) -> list[dict[str, Any]]:
    return normalize_request(patch_body(*operations), resource_type, "PATCH")["Operations"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("True", True), ("false", False), ("FALSE", False), (" true ", True), ("maybe", "maybe")],
)
def test_boolean_strings_become_booleans(value: str, expected: Any) -> None:
    ops = normalize_ops(
        user_type(),
        {"op": "Replace", "path": "active", "value": value},
        {"op": "Replace", "path": 'emails[type eq "work"].primary', "value": value},
        {"op": "Add", "path": "emails", "value": [{"value": "a@x.org", "primary": value}]},
        {"op": "Replace", "value": {"active": value, "emails": [{"primary": value}]}},
        {"op": "Replace", "path": 'emails[type eq "work"]', "value": {"primary": value}},
    )
    assert ops[0]["value"] == expected and ops[1]["value"] == expected
    assert ops[2]["value"][0]["primary"] == expected
    assert ops[3]["value"] == {"active": expected, "emails": [{"primary": expected}]}
    assert ops[4]["value"] == {"primary": expected}


def test_strings_of_string_attributes_are_left_alone() -> None:
    ops = normalize_ops(
        user_type(),
        {"op": "replace", "path": "title", "value": "True"},
        {"op": "replace", "value": {"nickName": "False", "urn:example:custom:User:flag": "True"}},
    )
    assert ops[0]["value"] == "True"
    assert ops[1]["value"] == {"nickName": "False", "urn:example:custom:User": {"flag": "True"}}


def test_dotted_and_urn_keys_nest() -> None:
    ops = normalize_ops(
        user_type(),
        {
            "op": "Add",
            "value": {
                "name": {"formatted": "B J"},
                "name.givenName": "B",
                f"{USER}:name.familyName": "J",
                f"{USER}:title": "T",
                f"{ENTERPRISE_USER}:manager": "42",
                f"{ENTERPRISE_USER}:department": "D",
                ENTERPRISE_USER: {"division": "W"},
                "urn:example:custom:User": {"colour": "blue"},
            },
        },
    )
    assert ops == [
        {
            "op": "add",
            "value": {
                "name": {"formatted": "B J", "givenName": "B", "familyName": "J"},
                "title": "T",
                ENTERPRISE_USER: {"manager": {"value": "42"}, "department": "D", "division": "W"},
                "urn:example:custom:User": {"colour": "blue"},
            },
        }
    ]


def test_member_value_list_removal_becomes_one_filter_per_member() -> None:
    ops = normalize_ops(
        group_type(),
        {
            "op": "Remove",
            "path": "members",
            "value": [{"value": "a"}, {"$ref": None, "value": 'b"c'}],
        },
        {"op": "Remove", "path": "members"},
        {"op": "Remove", "path": "members", "value": "not a list of members"},
    )
    assert ops == [
        {"op": "remove", "path": 'members[value eq "a"]'},
        {"op": "remove", "path": 'members[value eq "b\\"c"]'},
        {"op": "remove", "path": "members"},
        {"op": "remove", "path": "members", "value": "not a list of members"},
    ]
    _, members = split_member_operations(parse_patch(patch_body(*ops[:3])))
    assert members == MemberChanges(add=[], remove=[], replace=None, remove_all=True)
    _, members = split_member_operations(parse_patch(patch_body(*ops[:2])))
    assert members.remove == ["a", 'b"c']


def test_members_of_users_are_not_touched() -> None:
    operation = {"op": "remove", "path": "members", "value": [{"value": "a"}]}
    assert normalize_ops(user_type(), operation) == [operation]


def test_null_refs_are_dropped_from_members() -> None:
    ops = normalize_ops(
        group_type(),
        {"op": "Add", "path": "members", "value": {"$ref": None, "value": "a"}},
        {"op": "Replace", "value": {"members": [{"$ref": None, "value": "b"}]}},
    )
    assert ops[0]["value"] == {"value": "a"}
    assert ops[1]["value"] == {"members": [{"value": "b"}]}
    created = normalize_request(
        {"schemas": [GROUP], "displayName": "G", "members": [{"value": "a", "$ref": None}]},
        group_type(),
        "POST",
    )
    assert created["members"] == [{"value": "a"}]


def test_manager_id_becomes_an_object() -> None:
    ops = normalize_ops(
        user_type(),
        {"op": "Replace", "path": f"{ENTERPRISE_USER}:manager", "value": "42"},
        {"op": "Replace", "path": f"{ENTERPRISE_USER.upper()}:MANAGER", "value": ""},
        {"op": "Add", "path": ENTERPRISE_USER, "value": {"manager": "43"}},
        {"op": "Add", "path": f"{ENTERPRISE_USER}:manager", "value": {"value": "44"}},
    )
    assert [o["value"] for o in ops] == [
        {"value": "42"},
        None,
        {"manager": {"value": "43"}},
        {"value": "44"},
    ]
    cleared = normalize_ops(
        user_type(), {"op": "Replace", "path": f"{ENTERPRISE_USER}:manager", "value": ""}
    )
    user = {
        "schemas": [USER, ENTERPRISE_USER],
        "userName": "u",
        ENTERPRISE_USER: {"manager": {"value": "42"}},
    }
    result = apply_patch(user, parse_patch(patch_body(*cleared)), user_type())
    assert result == {"schemas": [USER], "userName": "u"}
    created = normalize_request(
        {"schemas": [USER, ENTERPRISE_USER], "userName": "u", ENTERPRISE_USER: {"manager": "45"}},
        user_type(),
        "POST",
    )
    assert created[ENTERPRISE_USER] == {"manager": {"value": "45"}}


def test_echoed_id_is_dropped_from_pathless_values() -> None:
    ops = normalize_ops(group_type(), {"op": "replace", "value": {"ID": "g1", "displayName": "G"}})
    assert ops == [{"op": "replace", "value": {"displayName": "G"}}]


def test_put_drops_echoed_read_only_attributes() -> None:
    user = normalize_request(
        {"schemas": [USER], "Id": "1", "userName": "u", "META": {}, "groups": [{"value": "g"}]},
        user_type(),
        "PUT",
    )
    assert user == {"schemas": [USER], "userName": "u"}
    group = normalize_request(
        {
            "schemas": [GROUP, ADSCIM_GROUP.upper()],
            "id": "g",
            "displayName": "G",
            "members": [{"value": "a"}],
        },
        group_type(),
        "PUT",
    )
    assert group == {"schemas": [GROUP], "displayName": "G", "members": [{"value": "a"}]}


def test_group_bodies_keep_their_members() -> None:
    """Okta pushes memberships inside POST and PUT Group bodies (standard RFC 7643 §4.2)."""
    body = {"schemas": [GROUP], "displayName": "G", "members": [{"value": "a", "display": "A"}]}
    for method in ("POST", "PUT"):
        assert normalize_request(body, group_type(), method) == body


def test_other_methods_and_shapes_pass_through() -> None:
    assert normalize_request(None, user_type(), "PATCH") is None
    assert normalize_request(["x"], user_type(), "POST") == ["x"]
    body = {"schemas": [USER], "id": "1"}
    assert normalize_request(body, user_type(), "GET") == body
    odd = {"schemas": [PATCH_OP], "Operations": ["x", {"op": 3, "path": 4}, {"path": None}]}
    assert normalize_request(odd, user_type(), "PATCH") == odd


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["op", "path", "value", "members", "active", "$ref", "schemas", "id"])
            | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=10,
)
OPERATION = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["Add", "Replace", "Remove", "add", 1]),
        "path": st.sampled_from(
            [
                "members",
                "active",
                ENTERPRISE_USER,
                f"{ENTERPRISE_USER}:manager",
                'emails[type eq "work"].primary',
                "x[",
                "]",
            ]
        )
        | st.text(max_size=10),
        "value": JSON,
    },
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(JSON, st.builds(patch_body, OPERATION, OPERATION)),
    st.sampled_from(["User", "Group"]),
    st.sampled_from(["PATCH", "POST", "PUT"]),
)
def test_normalizing_never_fails_and_never_mutates(body: Any, kind: str, method: str) -> None:
    sent = copy.deepcopy(body)
    normalize_request(body, TYPES[kind], method)
    assert body == sent


@pytest.mark.parametrize(
    ("sent", "rfc"),
    [
        (
            'emails[type eq "work"].value eq "a@x.org"',
            'emails[(type eq "work") and value eq "a@x.org"]',
        ),
        ('emails[type eq "work"].value NE "a"', 'not (emails[(type eq "work") and value eq "a"])'),
        ('emails[type eq "work"].value pr', 'emails[(type eq "work") and value pr]'),
        ('emails[type eq "work"].value eq null', 'not (emails[(type eq "work") and value pr])'),
        ('emails[type eq "work"].value ne null', 'emails[(type eq "work") and value pr]'),
        ("emails[primary eq true].value gt 5", "emails[(primary eq true) and value gt 5]"),
        (
            'a pr and (emails[type eq "x" or type eq "y"].value sw "b")',
            'a pr and (emails[(type eq "x" or type eq "y") and value sw "b"])',
        ),
        (
            'x[a eq "]"].b eq "[" or y[c eq 1].d eq 2',
            'x[(a eq "]") and b eq "["] or y[(c eq 1) and d eq 2]',
        ),
    ],
)
def test_entra_value_path_filters_become_rfc_filters(sent: str, rfc: str) -> None:
    assert normalize_filter(sent) == rfc


@pytest.mark.parametrize(
    "text",
    [
        'emails[type eq "work"]',
        'emails[type eq "work"].value',
        'emails[type eq "work"].value eq',
        'emails[type eq "work"].value zz "a"',
        'emails[type eq "work"].value eq (',
        "x[[a eq 1].b eq 2",
        "[a eq 1].b eq 2",
        'emails[type eq "work"].value.x eq "a"',
        'userName eq "a].b eq c"',
        'emails[type eq "unterminated',
        "",
        None,
        3,
        "a[b eq 1].c eq 2 " + "x" * 4096,
    ],
)
def test_other_filters_are_left_to_the_parser(text: Any) -> None:
    assert normalize_filter(text) == text
