"""scim.patch: PatchOp parsing, applying (RFC 7644 §3.5.2) and splitting out Group members."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim.errors import ScimError
from scim.members import MemberChanges, split_member_operations
from scim.patch import MAX_OPERATIONS, Operation, apply_patch, parse_patch
from scim.schemas import ENTERPRISE_USER, GROUP, PATCH_OP, USER, group_type, user_type

ENT = ENTERPRISE_USER
CUSTOM = "urn:okta:custom:1.0:User"
USER_ID = "2819c223-7f76-453a-919d-413861904646"
GROUP_ID = "e9e30dba-f08f-4109-8486-d5c6a331660a"


def make_user(**overrides: Any) -> dict[str, Any]:
    """A User as the server shows it."""
    user: dict[str, Any] = {
        "schemas": [USER, ENT],
        "id": USER_ID,
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "active": True,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        ENT: {"employeeNumber": "701984", "manager": {"value": "26118915", "displayName": "John"}},
        "groups": [{"value": GROUP_ID, "display": "Tour Guides", "type": "direct"}],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "location": f"https://example.com/v2/Users/{USER_ID}",
            "version": 'W/"3694e05e9dff591"',
        },
    }
    user.update(overrides)
    return user


def make_group(*member_ids: str, **overrides: Any) -> dict[str, Any]:
    group: dict[str, Any] = {
        "schemas": [GROUP],
        "id": GROUP_ID,
        "displayName": "Tour Guides",
        "members": [{"value": m, "type": "User"} for m in member_ids],
        "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z"},
    }
    group.update(overrides)
    return group


def body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def patch_user(*operations: dict[str, Any], user: dict[str, Any] | None = None) -> dict:
    return apply_patch(user or make_user(), parse_patch(body(*operations)), user_type())


def patch_group(group: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    return apply_patch(group, parse_patch(body(*operations)), group_type())


def scim_error(kind: str, call: Any, *args: Any, **kwargs: Any) -> ScimError:
    with pytest.raises(ScimError) as caught:
        call(*args, **kwargs)
    assert caught.value.scim_type == kind, caught.value.detail
    assert caught.value.status == 400
    return caught.value


def no_empty_values(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v not in (None, "", [], {}) and no_empty_values(v) for v in value.values())
    if isinstance(value, list):
        return all(v not in (None, "", [], {}) and no_empty_values(v) for v in value)
    return True


# --- parse_patch ------------------------------------------------------------------------


def test_parse_returns_operations_in_order() -> None:
    operations = parse_patch(
        body(
            {"op": "add", "path": "nickName", "value": "Babs"},
            {"op": "replace", "value": {"active": False}},
            {"op": "remove", "path": 'emails[type eq "home"]'},
        )
    )
    assert [o.op for o in operations] == ["add", "replace", "remove"]
    assert operations[0].path is not None and operations[0].path.attribute == "nickName"
    assert operations[1].path is None and operations[1].value == {"active": False}
    assert operations[2].path is not None and operations[2].path.value_filter is not None


def test_parse_matches_message_names_in_any_case() -> None:
    operations = parse_patch(
        {
            "SCHEMAS": [PATCH_OP.upper()],
            "operations": [{"OP": "add", "Path": "title", "VALUE": "x"}],
        }
    )
    assert operations[0].op == "add" and operations[0].value == "x"


@pytest.mark.parametrize(
    "message",
    [
        None,
        [],
        "Operations",
        {"Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": [USER], "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": PATCH_OP, "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": [PATCH_OP]},
        {"schemas": [PATCH_OP], "Operations": []},
        {"schemas": [PATCH_OP], "Operations": {"op": "add"}},
        body("add"),
        body({"op": "move", "path": "title", "value": "x"}),
        body({"op": "Add", "path": "title", "value": "x"}),  # Entra's capitals: scim.quirks
        body({"path": "title", "value": "x"}),
        body({"op": 1, "path": "title", "value": "x"}),
    ],
)
def test_parse_rejects_malformed_messages(message: Any) -> None:
    scim_error("invalidSyntax", parse_patch, message)


def test_parse_caps_the_number_of_operations() -> None:
    operation = {"op": "add", "path": "title", "value": "x"}
    assert len(parse_patch(body(*[operation] * MAX_OPERATIONS))) == MAX_OPERATIONS
    error = scim_error("invalidSyntax", parse_patch, body(*[operation] * (MAX_OPERATIONS + 1)))
    assert str(MAX_OPERATIONS) in error.detail


def test_parse_remove_needs_a_path() -> None:
    scim_error("noTarget", parse_patch, body({"op": "remove", "value": {"title": "x"}}))


@pytest.mark.parametrize("op", ["add", "replace"])
def test_parse_add_and_replace_need_a_value(op: str) -> None:
    scim_error("invalidValue", parse_patch, body({"op": op, "path": "title"}))


@pytest.mark.parametrize("value", ["x", ["title"], None, 3])
def test_parse_pathless_value_must_be_an_object(value: Any) -> None:
    scim_error("invalidValue", parse_patch, body({"op": "replace", "value": value}))


@pytest.mark.parametrize(
    "path", ["", "  ", 3, ["title"], 'emails[type eq "work"', "emails[]", "a b"]
)
def test_parse_rejects_bad_paths(path: Any) -> None:
    scim_error("invalidPath", parse_patch, body({"op": "add", "path": path, "value": "x"}))


# --- add --------------------------------------------------------------------------------


def test_add_without_path_merges_attributes() -> None:
    result = patch_user(
        {
            "op": "add",
            "value": {
                "emails": [{"value": "babs@example.org", "type": "other"}],
                "nickname": "Babs",
                "name": {"middleName": "Jane"},
                "title": "Tour Guide",
            },
        }
    )
    assert [e["value"] for e in result["emails"]] == [
        "bjensen@example.com",
        "babs@jensen.org",
        "babs@example.org",
    ]
    assert result["nickName"] == "Babs"  # canonical spelling (RFC 7643 §2.1)
    assert result["name"] == {"givenName": "Barbara", "familyName": "Jensen", "middleName": "Jane"}
    assert result["title"] == "Tour Guide"


def test_add_replaces_a_simple_value() -> None:
    assert patch_user({"op": "add", "path": "displayName", "value": "B"})["displayName"] == "B"


def test_add_to_multi_valued_appends_a_list_or_one_value_without_duplicates() -> None:
    result = patch_user(
        {"op": "add", "path": "emails", "value": [{"value": "a@example.com", "type": "other"}]},
        {"op": "add", "path": "emails", "value": {"value": "b@example.com"}},
        {"op": "add", "path": "emails", "value": {"value": "babs@jensen.org", "type": "home"}},
        {"op": "add", "path": "emails", "value": [{"value": "a@example.com", "type": "other"}]},
    )
    assert [e["value"] for e in result["emails"]] == [
        "bjensen@example.com",
        "babs@jensen.org",
        "a@example.com",
        "b@example.com",
    ]


def test_add_sub_attribute_creates_the_complex_attribute() -> None:
    user = make_user()
    del user["name"]
    result = patch_user({"op": "add", "path": "name.givenName", "value": "Babs"}, user=user)
    assert result["name"] == {"givenName": "Babs"}


def test_add_through_a_filter_that_matches_nothing_creates_the_value() -> None:
    """Quirk-tolerant: Entra adds a first work email as ``emails[type eq "work"].value``."""
    user = make_user(emails=[{"value": "babs@jensen.org", "type": "home"}])
    result = patch_user(
        {"op": "add", "path": 'emails[type eq "work"].value', "value": "w@example.com"}, user=user
    )
    assert result["emails"][1] == {"type": "work", "value": "w@example.com"}
    result = patch_user(
        {
            "op": "add",
            "path": 'emails[type eq "work" and primary eq true]',
            "value": {"value": "w@x"},
        },
        user=user,
    )
    assert result["emails"][1] == {"type": "work", "primary": True, "value": "w@x"}


@pytest.mark.parametrize(
    "path",
    [
        'emails[type sw "wo"].value',
        'emails[type eq "x" or type eq "y"].value',
        'emails[type eq "x" and type eq "y"].value',
        'emails[not (type eq "x")].value',
    ],
)
def test_add_through_a_filter_that_cannot_describe_a_value_is_no_target(path: str) -> None:
    user = make_user(emails=[])
    scim_error("noTarget", patch_user, {"op": "add", "path": path, "value": "w@x.org"}, user=user)


def test_add_through_a_matching_filter_sets_the_sub_attribute() -> None:
    result = patch_user({"op": "add", "path": 'emails[type eq "home"].display', "value": "Home"})
    assert result["emails"][1] == {"value": "babs@jensen.org", "type": "home", "display": "Home"}


# --- replace ----------------------------------------------------------------------------


def test_replace_without_path_replaces_each_attribute() -> None:
    result = patch_user(
        {
            "op": "replace",
            "value": {
                "emails": [{"value": "new@example.com", "type": "work"}],
                "name": {"familyName": "Smith"},
                "active": False,
            },
        }
    )
    assert result["emails"] == [{"value": "new@example.com", "type": "work"}]
    # RFC 7644 §3.5.2.3: sub-attributes not given are left as they are.
    assert result["name"] == {"givenName": "Barbara", "familyName": "Smith"}
    assert result["active"] is False


def test_replace_multi_valued_without_filter_replaces_the_whole_list() -> None:
    result = patch_user({"op": "replace", "path": "emails", "value": {"value": "only@x.org"}})
    assert result["emails"] == [{"value": "only@x.org"}]


def test_replace_through_filter_replaces_matching_values() -> None:
    result = patch_user(
        {
            "op": "replace",
            "path": 'emails[type eq "home"]',
            "value": {"value": "h@x.org", "type": "home"},
        }
    )
    assert result["emails"][1] == {"value": "h@x.org", "type": "home"}
    result = patch_user(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@x.org"}
    )
    assert result["emails"][0] == {"value": "w@x.org", "type": "work", "primary": True}


def test_replace_through_filter_that_matches_nothing_is_no_target() -> None:
    scim_error(
        "noTarget",
        patch_user,
        {"op": "replace", "path": 'emails[type eq "other"].value', "value": "o@x.org"},
    )


def test_replace_of_an_absent_attribute_adds_it() -> None:
    assert patch_user({"op": "replace", "path": "title", "value": "Guide"})["title"] == "Guide"


def test_replace_with_null_unassigns() -> None:
    result = patch_user(
        {"op": "replace", "path": "displayName", "value": None},
        {"op": "replace", "value": {"title": None, "name": {"givenName": None}}},
    )
    assert "displayName" not in result and "title" not in result
    assert result["name"] == {"familyName": "Jensen"}


def test_paths_are_case_insensitive_and_stored_canonically() -> None:
    result = patch_user(
        {"op": "replace", "path": 'EMAILS[TYPE eq "work"].VALUE', "value": "w@x.org"},
        {"op": "add", "path": "NAME.MIDDLENAME", "value": "Jane"},
        {"op": "add", "path": "NickName", "value": "Babs"},
    )
    assert result["emails"][0]["value"] == "w@x.org"
    assert result["name"]["middleName"] == "Jane"
    assert result["nickName"] == "Babs" and "NickName" not in result


def test_sub_attributes_of_values_are_stored_canonically() -> None:
    result = patch_user(
        {"op": "add", "path": "emails", "value": {"VALUE": "c@x.org", "Type": "other"}}
    )
    assert result["emails"][-1] == {"value": "c@x.org", "type": "other"}


def test_core_schema_urn_prefix_is_accepted() -> None:
    result = patch_user({"op": "replace", "path": f"{USER}:displayName", "value": "B"})
    assert result["displayName"] == "B"


# --- remove -----------------------------------------------------------------------------


def test_remove_attribute_sub_attribute_and_values() -> None:
    result = patch_user(
        {"op": "remove", "path": "displayName"},
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": 'emails[type eq "home"]'},
        {"op": "remove", "path": 'emails[type eq "work"].primary'},
    )
    assert "displayName" not in result
    assert result["name"] == {"familyName": "Jensen"}
    assert result["emails"] == [{"value": "bjensen@example.com", "type": "work"}]


def test_remove_every_value_of_a_multi_valued_attribute() -> None:
    assert "emails" not in patch_user({"op": "remove", "path": "emails"})


def test_remove_of_what_is_not_there_succeeds() -> None:
    user = make_user()
    del user[ENT]
    user["schemas"] = [USER]
    result = patch_user(
        {"op": "remove", "path": "title"},
        {"op": "remove", "path": "name.middleName"},
        {"op": "remove", "path": 'emails[type eq "other"]'},
        {"op": "remove", "path": 'emails[type eq "other"].value'},
        {"op": "remove", "path": f"{ENT}:employeeNumber"},
        {"op": "remove", "path": ENT},
        {"op": "remove", "path": f"{CUSTOM}:colour"},
        user=user,
    )
    assert result == user


def test_remove_with_a_value_removes_only_those_values() -> None:
    result = patch_user({"op": "remove", "path": "emails", "value": [{"value": "babs@jensen.org"}]})
    assert [e["value"] for e in result["emails"]] == ["bjensen@example.com"]


# --- extensions -------------------------------------------------------------------------


def test_urn_paths_go_into_the_extension_object() -> None:
    result = patch_user(
        {"op": "replace", "path": f"{ENT}:employeeNumber", "value": "42"},
        {"op": "add", "path": f"{ENT}:department", "value": "Tours"},
        {"op": "replace", "path": f"{ENT}:manager.value", "value": "777"},
    )
    assert result[ENT] == {
        "employeeNumber": "42",
        "department": "Tours",
        "manager": {"value": "777", "displayName": "John"},
    }


def test_extension_object_appears_and_disappears_with_its_schema() -> None:
    user = make_user()
    del user[ENT]
    user["schemas"] = [USER]
    added = patch_user({"op": "add", "path": f"{ENT}:costCenter", "value": "4130"}, user=user)
    assert added[ENT] == {"costCenter": "4130"}
    assert added["schemas"] == [USER, ENT]
    removed = patch_user({"op": "remove", "path": f"{ENT}:costCenter"}, user=added)
    assert ENT not in removed and removed["schemas"] == [USER]


def test_bare_extension_urn_merges_the_object_and_drops_its_schemas_key() -> None:
    result = patch_user(
        {"op": "add", "path": ENT, "value": {"schemas": [ENT], "department": "Tours"}},
        {"op": "replace", "path": ENT.upper(), "value": {"EmployeeNumber": "9"}},
    )
    assert result[ENT] == {
        "employeeNumber": "9",
        "department": "Tours",
        "manager": {"value": "26118915", "displayName": "John"},
    }
    assert "schemas" not in result[ENT]


def test_bare_extension_urn_remove_drops_object_and_schema() -> None:
    result = patch_user({"op": "remove", "path": ENT})
    assert ENT not in result and result["schemas"] == [USER]


def test_pathless_value_with_extension_object() -> None:
    result = patch_user({"op": "replace", "value": {ENT: {"division": "West"}, "title": "T"}})
    assert result[ENT]["division"] == "West" and result[ENT]["employeeNumber"] == "701984"


def test_bare_extension_urn_needs_an_object() -> None:
    scim_error("invalidValue", patch_user, {"op": "replace", "path": ENT, "value": "x"})


def test_unknown_extension_is_stored_as_sent() -> None:
    result = patch_user(
        {"op": "add", "path": f"{CUSTOM}:favouriteColour", "value": "blue"},
        {"op": "add", "path": f"{CUSTOM}:badges", "value": [1, 2]},
        {"op": "add", "value": {"urn:example:other:2.0:User": {"flag": True, "n": 3}}},
    )
    assert result[CUSTOM] == {"favouriteColour": "blue", "badges": [1, 2]}
    assert result["urn:example:other:2.0:User"] == {"flag": True, "n": 3}
    assert result["schemas"] == [USER, ENT, CUSTOM, "urn:example:other:2.0:User"]
    replaced = patch_user({"op": "replace", "path": CUSTOM, "value": {"badges": []}}, user=result)
    assert replaced[CUSTOM] == {"favouriteColour": "blue"}
    removed = patch_user({"op": "remove", "path": CUSTOM}, user=replaced)
    assert CUSTOM not in removed and CUSTOM not in removed["schemas"]


# --- paths that name nothing ------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["nosuch", "name.nosuch", "userName.value", 'displayName[value eq "x"]', USER, f"{ENT}:nosuch"],
)
def test_unknown_or_unfit_paths_are_invalid(path: str) -> None:
    scim_error("invalidPath", patch_user, {"op": "add", "path": path, "value": "x"})


def test_unknown_names_in_a_pathless_value_are_ignored() -> None:
    result = patch_user({"op": "add", "value": {"nosuch": 1, "name": {"nosuch": 2}, "title": "T"}})
    assert "nosuch" not in result and "nosuch" not in result["name"] and result["title"] == "T"


# --- mutability -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "id", "value": "other"},
        {"op": "remove", "path": "id"},
        {"op": "replace", "value": {"id": "other"}},
        {"op": "replace", "path": "meta", "value": {"created": "2020-01-01T00:00:00Z"}},
        {"op": "replace", "path": "meta.version", "value": 'W/"2"'},
        {"op": "remove", "path": "meta"},
        {"op": "add", "path": "groups", "value": {"value": "other-group"}},
        {"op": "remove", "path": "groups"},
        {"op": "replace", "path": 'groups[value eq "x"].display', "value": "x"},
        {"op": "replace", "path": f"{ENT}:manager.displayName", "value": "Jane"},
    ],
)
def test_read_only_attributes_cannot_change(operation: dict[str, Any]) -> None:
    scim_error("mutability", patch_user, operation)


def test_read_only_values_may_be_sent_unchanged() -> None:
    """Okta echoes ``id`` (and the ``meta`` it read) back."""
    user = make_user()
    result = patch_user(
        {"op": "replace", "value": {"id": USER_ID, "displayName": "Babs"}},
        {"op": "replace", "path": "id", "value": USER_ID},
        {"op": "add", "value": {"meta": {"resourceType": "User"}}},
        {"op": "add", "path": "groups", "value": [{"value": GROUP_ID, "display": "Tour Guides"}]},
        user=user,
    )
    assert result["id"] == USER_ID and result["meta"] == user["meta"]
    assert result["groups"] == user["groups"]


def test_immutable_sub_attributes_are_set_once() -> None:
    group = make_group("a", "b")
    for operation in (
        {"op": "replace", "path": 'members[value eq "a"].value', "value": "c"},
        {"op": "replace", "path": 'members[value eq "a"]', "value": {"value": "c"}},
        {"op": "replace", "path": 'members[value eq "a"].type', "value": "Group"},
        {"op": "remove", "path": 'members[value eq "a"].type'},
    ):
        scim_error("mutability", patch_group, group, operation)
    result = patch_group(
        group,
        {"op": "add", "path": "members", "value": [{"value": "c", "type": "User"}]},
        {"op": "replace", "path": 'members[value eq "a"]', "value": {"value": "a", "type": "User"}},
    )
    assert result["members"] == [
        {"value": "a", "type": "User"},
        {"value": "b", "type": "User"},
        {"value": "c", "type": "User"},
    ]


def test_read_only_sub_attributes_in_values_are_dropped() -> None:
    """As in a POST (RFC 7644 §3.3): Okta and the RFC send a member's ``display``."""
    result = patch_group(
        make_group(), {"op": "add", "path": "members", "value": {"value": "c", "display": "Cee"}}
    )
    assert result["members"] == [{"value": "c"}]
    result = patch_user(
        {"op": "replace", "path": f"{ENT}:manager", "value": {"value": "1", "displayName": "J"}}
    )
    assert result[ENT]["manager"] == {"value": "1", "displayName": "John"}
    scim_error(
        "mutability",
        patch_group,
        make_group("a"),
        {"op": "replace", "path": 'members[value eq "a"].display', "value": "A"},
    )


def test_write_only_password_may_be_set() -> None:
    assert (
        patch_user({"op": "replace", "value": {"password": "t1meMa$heen"}})["password"]
        == "t1meMa$heen"
    )


def test_required_attribute_cannot_be_removed() -> None:
    scim_error("invalidValue", patch_user, {"op": "remove", "path": "userName"})
    scim_error("invalidValue", patch_user, {"op": "replace", "path": "userName", "value": ""})
    scim_error("invalidValue", patch_group, make_group(), {"op": "remove", "path": "displayName"})


# --- value types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "active", "value": "yes"},
        {"op": "replace", "path": "active", "value": "True"},  # Entra's string: scim.quirks
        {"op": "replace", "path": "userName", "value": 5},
        {"op": "replace", "path": "name", "value": "Babs Jensen"},
        {"op": "replace", "path": "name.givenName", "value": ["Babs"]},
        {"op": "add", "path": "emails", "value": "a@b.c"},
        {"op": "add", "path": "emails", "value": [{"value": "a@b.c", "primary": "true"}]},
        {"op": "replace", "path": 'emails[type eq "work"].primary', "value": 1},
        {"op": "replace", "path": 'emails[type eq "work"]', "value": "a@b.c"},
        {"op": "replace", "value": {"active": None, "displayName": {"x": 1}}},
        {"op": "replace", "path": f"{ENT}:manager", "value": "26118915"},  # Entra's: scim.quirks
        {"op": "add", "path": "meta.created", "value": "yesterday"},
    ],
)
def test_values_must_fit_the_attribute_type(operation: dict[str, Any]) -> None:
    with pytest.raises(ScimError) as caught:
        patch_user(operation)
    assert caught.value.scim_type in ("invalidValue", "mutability")


def test_integer_and_decimal_types() -> None:
    """No published attribute has these types; the shared check still knows them."""
    from scim.resources import check_simple
    from scim.schemas import Attribute

    assert check_simple(Attribute("n", type="integer"), 3, "n") == 3
    assert check_simple(Attribute("d", type="decimal"), 1.5, "d") == 1.5
    for kind, value in (("integer", True), ("integer", 1.5), ("decimal", "1"), ("decimal", False)):
        with pytest.raises(ScimError):
            check_simple(Attribute("x", type=kind), value, "x")


# --- primary ----------------------------------------------------------------------------


def test_a_new_primary_value_clears_the_others() -> None:
    result = patch_user(
        {"op": "add", "path": "emails", "value": {"value": "n@x.org", "primary": True}}
    )
    assert [e.get("primary") for e in result["emails"]] == [False, None, True]
    result = patch_user({"op": "replace", "path": 'emails[type eq "home"].primary', "value": True})
    assert [e.get("primary") for e in result["emails"]] == [False, True]


def test_two_primary_values_at_once_are_invalid() -> None:
    scim_error(
        "invalidValue",
        patch_user,
        {
            "op": "replace",
            "path": "emails",
            "value": [{"value": "a@x.org", "primary": True}, {"value": "b@x.org", "primary": True}],
        },
    )


# --- all or nothing, and the shape of the result ----------------------------------------


def test_a_failing_operation_changes_nothing() -> None:
    user = make_user()
    before = copy.deepcopy(user)
    operations = parse_patch(
        body(
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "add", "path": "emails", "value": {"value": "new@x.org", "primary": True}},
            {"op": "replace", "path": "id", "value": "other"},
        )
    )
    with pytest.raises(ScimError):
        apply_patch(user, operations, user_type())
    assert user == before


def test_the_input_is_never_mutated() -> None:
    user = make_user()
    before = copy.deepcopy(user)
    result = patch_user(
        {"op": "replace", "path": "name.givenName", "value": "B"},
        {"op": "add", "path": "emails", "value": {"value": "n@x.org", "primary": True}},
        {"op": "remove", "path": f"{ENT}:manager"},
        user=user,
    )
    assert user == before
    assert result is not user and result["name"] is not user["name"]


def test_empty_values_are_dropped() -> None:
    user = make_user(nickName="", title=None, ims=[], x509Certificates=[{}])
    user["name"]["middleName"] = ""
    result = patch_user(
        {"op": "replace", "path": "displayName", "value": ""},
        {"op": "add", "path": "name", "value": {"honorificPrefix": ""}},
        {"op": "add", "path": "phoneNumbers", "value": []},
        {"op": "add", "value": {"addresses": [{"formatted": ""}], "locale": None}},
        {
            "op": "replace",
            "path": f"{ENT}:manager",
            "value": {"value": None, "displayName": "John"},
        },
        user=user,
    )
    for name in ("nickName", "title", "ims", "x509Certificates", "displayName", "phoneNumbers"):
        assert name not in result
    assert "addresses" not in result and "locale" not in result
    assert result["name"] == {"givenName": "Barbara", "familyName": "Jensen"}
    assert result[ENT]["manager"] == {"displayName": "John"}
    assert no_empty_values(result)


def test_group_attributes_are_patched_too() -> None:
    result = patch_group(
        make_group("a"),
        {"op": "replace", "value": {"id": GROUP_ID, "displayName": "Guides"}},
        {"op": "add", "path": "externalId", "value": "ext-1"},
        {"op": "remove", "path": 'members[value eq "a"]'},
    )
    assert result["displayName"] == "Guides" and result["externalId"] == "ext-1"
    assert "members" not in result


# --- split_member_operations ------------------------------------------------------------


def split(*operations: dict[str, Any]) -> tuple[list[Operation], MemberChanges]:
    return split_member_operations(parse_patch(body(*operations)))


def changes(
    add: list[str] | None = None,
    remove: list[str] | None = None,
    replace: list[str] | None = None,
    remove_all: bool = False,
) -> MemberChanges:
    return MemberChanges(add or [], remove or [], replace, remove_all)


def test_split_add_replace_and_remove() -> None:
    assert split({"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]}) == (
        [],
        changes(add=["a", "b"]),
    )
    assert split({"op": "replace", "path": "members", "value": [{"value": "a"}]})[1] == changes(
        replace=["a"]
    )
    assert split({"op": "remove", "path": 'members[value eq "a"]'})[1] == changes(remove=["a"])
    assert split({"op": "remove", "path": "members"})[1] == changes(remove_all=True)
    assert split({"op": "replace", "path": "members", "value": []})[1] == changes(replace=[])


def test_split_remove_with_a_value_list_removes_those() -> None:
    """Entra's form (scim.quirks rewrites it into filters; this also holds without)."""
    assert split({"op": "remove", "path": "members", "value": [{"value": "a"}, {"value": "b"}]})[
        1
    ] == changes(remove=["a", "b"])


def test_split_or_of_value_filters_and_urn_path() -> None:
    assert split({"op": "remove", "path": 'members[value eq "a" or value eq "b"]'})[1] == changes(
        remove=["a", "b"]
    )
    assert split({"op": "add", "path": f"{GROUP}:members", "value": {"value": "a"}})[1] == changes(
        add=["a"]
    )
    assert split({"op": "remove", "path": 'MEMBERS[VALUE eq "a"]'})[1] == changes(remove=["a"])


def test_split_pathless_value_keeps_the_other_attributes() -> None:
    others, members = split(
        {"op": "replace", "value": {"displayName": "Guides", "members": [{"value": "a"}]}},
        {"op": "add", "value": {"Members": [{"value": "b"}]}},
    )
    assert [(o.op, o.path, o.value) for o in others] == [
        ("replace", None, {"displayName": "Guides"})
    ]
    assert members == changes(replace=["a", "b"])


def test_split_keeps_the_other_operations_in_order() -> None:
    others, members = split(
        {"op": "replace", "path": "displayName", "value": "A"},
        {"op": "add", "path": "members", "value": [{"value": "a"}]},
        {"op": "add", "path": "externalId", "value": "x"},
    )
    assert [o.value for o in others] == ["A", "x"]
    assert members == changes(add=["a"])


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        (
            [("replace", "members", ["a", "b"]), ("add", "members", ["c", "a"])],
            changes(replace=["a", "b", "c"]),
        ),
        (
            [("replace", "members", ["a", "b"]), ("remove", 'members[value eq "a"]', None)],
            changes(replace=["b"]),
        ),
        (
            [("remove", "members", None), ("add", "members", ["x"])],
            changes(add=["x"], remove_all=True),
        ),
        (
            [("add", "members", ["x"]), ("remove", 'members[value eq "x"]', None)],
            changes(remove=["x"]),
        ),
        (
            [("remove", 'members[value eq "x"]', None), ("add", "members", ["x"])],
            changes(add=["x"]),
        ),
        ([("add", "members", ["x"]), ("remove", "members", None)], changes(remove_all=True)),
        ([("remove", "members", None), ("replace", "members", ["y"])], changes(replace=["y"])),
    ],
)
def test_split_composes_in_order(
    operations: list[tuple[str, str, Any]], expected: MemberChanges
) -> None:
    messages = []
    for op, path, ids in operations:
        message: dict[str, Any] = {"op": op, "path": path}
        if ids is not None:
            message["value"] = [{"value": i} for i in ids]
        messages.append(message)
    assert split(*messages)[1] == expected


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": 'members[value eq "a"].display', "value": "A"},
        {"op": "replace", "path": "members.display", "value": "A"},
        {"op": "add", "path": 'members[value eq "a"]', "value": {"value": "a"}},
        {"op": "remove", "path": 'members[display eq "Babs"]'},
        {"op": "remove", "path": 'members[value eq "a" and type eq "User"]'},
        {"op": "remove", "path": 'members[value co "a"]'},
    ],
)
def test_split_rejects_member_paths_it_cannot_apply_in_bulk(operation: dict[str, Any]) -> None:
    scim_error("invalidPath", split, operation)


@pytest.mark.parametrize("value", [["a"], [{"display": "A"}], [{"value": 1}], [{"value": ""}], "a"])
def test_split_member_values_need_ids(value: Any) -> None:
    scim_error("invalidValue", split, {"op": "add", "path": "members", "value": value})


def test_split_ten_thousand_members_is_fast() -> None:
    members = [{"value": f"user-{n:05}", "display": f"User {n}"} for n in range(10_000)]
    message = body(
        {"op": "replace", "value": {"displayName": "All"}},
        {"op": "add", "path": "members", "value": members},
        {"op": "remove", "path": 'members[value eq "user-00001"]'},
    )
    started = time.perf_counter()
    others, result = split_member_operations(parse_patch(message))
    elapsed = time.perf_counter() - started
    assert len(result.add) == 9_999 and result.remove == ["user-00001"]
    assert len(others) == 1
    assert elapsed < 1.0


def test_applying_members_directly_agrees_with_the_split() -> None:
    """apply_patch also handles members (a plain multi-valued attribute) the same way."""
    group = make_group("a", "b")
    message = body(
        {"op": "remove", "path": 'members[value eq "a"]'},
        {"op": "add", "path": "members", "value": [{"value": "c"}]},
    )
    applied = apply_patch(group, parse_patch(message), group_type())
    _, members = split_member_operations(parse_patch(message))
    expected = ({"a", "b"} - set(members.remove)) | set(members.add)
    assert {m["value"] for m in applied["members"]} == expected


# --- property: never anything but a ScimError -------------------------------------------

PATHS = [
    "userName",
    "displayName",
    "active",
    "name",
    "name.givenName",
    "emails",
    'emails[type eq "work"]',
    'emails[type eq "work"].value',
    "emails[primary eq true].primary",
    'emails[value co "@"]',
    "emails.value",
    "groups",
    "id",
    "meta",
    "meta.created",
    "members",
    'members[value eq "a"]',
    "externalId",
    "password",
    "x509Certificates",
    ENT,
    f"{ENT}:manager",
    f"{ENT}:manager.value",
    f"{ENT}:employeeNumber",
    CUSTOM,
    f"{CUSTOM}:colour",
    USER,
    "nosuch",
    "name.nosuch",
    "emails[",
    "emails[type eq]",
    "]",
    "",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["value", "type", "primary", "display", "givenName", "active", "x"])
            | st.text(max_size=6),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)
SAMPLES = st.sampled_from(
    [
        "x",
        "",
        None,
        True,
        "True",
        3,
        {"value": "a@x.org"},
        {"value": "a", "type": "work", "primary": True},
        [{"value": "b", "primary": True}, {"value": "c", "primary": True}],
        [{"value": "a"}, {"value": "d", "display": "D"}],
        {"givenName": "B", "familyName": None},
        {"department": "D", "manager": {"value": "m"}},
        {"displayName": "G", "members": [{"value": "a"}], "id": USER_ID},
        {"active": False, "emails": [{"value": "e@x.org"}]},
        {"colour": "blue"},
    ]
)
RANDOM_OPERATION = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Add", "move", 1])},
    optional={
        "path": st.sampled_from(PATHS) | st.text(max_size=12),
        "value": JSON | st.dictionaries(st.sampled_from(PATHS), JSON, max_size=3),
    },
)
PLAUSIBLE_OPERATION = st.builds(
    lambda op, path, value: {"op": op, "path": path, "value": value},
    st.sampled_from(["add", "replace", "remove"]),
    st.sampled_from(PATHS[:-5]),
    SAMPLES | JSON,
)
PATHLESS_OPERATION = st.builds(
    lambda op, value: {"op": op, "value": value},
    st.sampled_from(["add", "replace"]),
    st.dictionaries(st.sampled_from(PATHS), SAMPLES | JSON, min_size=1, max_size=3),
)
OPERATION = st.one_of(
    PLAUSIBLE_OPERATION, PLAUSIBLE_OPERATION, PATHLESS_OPERATION, RANDOM_OPERATION
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATION, min_size=1, max_size=5), st.booleans())
def test_random_operations_raise_nothing_but_scim_errors(
    operations: list[dict[str, Any]], on_group: bool
) -> None:
    resource = make_group("a", "b") if on_group else make_user()
    before = copy.deepcopy(resource)
    resource_type = group_type() if on_group else user_type()
    try:
        parsed = parse_patch(body(*operations))
        others, _ = split_member_operations(parsed) if on_group else (parsed, None)
        result = apply_patch(resource, parsed, resource_type)
        apply_patch(resource, others, resource_type)
    except ScimError as error:
        assert error.status == 400 and error.scim_type
        assert resource == before
        return
    assert resource == before
    assert no_empty_values(result)
    assert result["schemas"][0] == resource_type.schema.id
