"""Random requests to a real org's SCIM endpoint (hypothesis).

Whatever a client sends: the answer is never a 5xx; every 4xx is a SCIM error (RFC 7644
§3.12: the Error schema, ``status`` as a string); a failed request changes nothing (the
resource reads the same before and after, no row and no audit event is left behind); and a
successful one answers with what a GET then reads.

Bodies are JSON built from the names and values SCIM clients use (attribute names in any
case, URNs, PATCH paths, "True"/"False", ids of real resources) mixed with garbage. Each test
makes its org once and shares it across examples, so the data drifts as examples succeed:
later examples meet users renamed, deactivated, emptied by earlier ones.

Some inputs answered 500 when first generated (lone surrogates, NaN and Infinity, over-long
identifiers, a ``startIndex`` past 64 bits, a search whose ``schemas`` is a bare scalar, NUL in
the URL); they stay in the strategies, and each also has a plain test at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from idp.audit.models import AuditEvent
from idp.db import db
from idp.directory.models import DirectoryGroup, DirectoryUser
from idp.orgs.models import Membership, Team, TeamMember
from idp.users.models import User
from tests.scim.conftest import Scim, group_body, user_body

FUZZ = settings(
    max_examples=150,
    deadline=None,
    # One org per test, shared by its examples on purpose (see the module docstring).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CUSTOM = "urn:example:params:scim:schemas:extension:custom:2.0:User"
ADSCIM = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

# Stand-ins for the ids of the test's own resources, put in place when a body is sent.
THE_USER, THE_MEMBER, THE_GROUP = "@@user@@", "@@member@@", "@@group@@"

# --- strategies ------------------------------------------------------------------------

ATTRIBUTES = [
    "schemas",
    "id",
    "externalId",
    "meta",
    "userName",
    "UserName",
    "name",
    "displayName",
    "nickName",
    "title",
    "userType",
    "locale",
    "timezone",
    "active",
    "password",
    "emails",
    "phoneNumbers",
    "addresses",
    "groups",
    "roles",
    "entitlements",
    "x509Certificates",
    "members",
    "name.givenName",
    "name.familyName",
    ENTERPRISE,
    f"{ENTERPRISE}:employeeNumber",
    f"{ENTERPRISE}:manager",
    CUSTOM,
    f"{USER}:userName",
    f"{GROUP}:displayName",
    "urn:x",
]
SUB_ATTRIBUTES = [
    "value",
    "type",
    "primary",
    "display",
    "$ref",
    "givenName",
    "familyName",
    "formatted",
    "middleName",
    "manager",
    "department",
    "employeeNumber",
    "resourceType",
    "version",
    "streetAddress",
]
WORDS = [
    "",
    " ",
    "x",
    "work",
    "home",
    "True",
    "False",
    "true",
    "null",
    "User",
    "Group",
    "ada@example.com",
    "ADA@EXAMPLE.COM",
    "2024-02-29T12:00:00Z",
    "not a date",
    "\t",
    "é",
    USER,
    GROUP,
    ENTERPRISE,
    ADSCIM,
    THE_USER,
    THE_MEMBER,
    THE_GROUP,
]
PATHS = [
    "active",
    "userName",
    "displayName",
    "externalId",
    "nickName",
    "name",
    "name.givenName",
    "name.nope",
    "emails",
    'emails[type eq "work"]',
    'emails[type eq "work"].value',
    "emails[primary eq true].value",
    'emails[value co "@"].display',
    'addresses[type eq "work"].streetAddress',
    "phoneNumbers",
    "members",
    f'members[value eq "{THE_USER}"]',
    f'members[value eq "{THE_MEMBER}"]',
    'members[value eq "nobody"]',
    "members.value",
    "groups",
    "id",
    "meta",
    "meta.version",
    "schemas",
    ENTERPRISE,
    f"{ENTERPRISE}:manager",
    f"{ENTERPRISE}:manager.value",
    f"{ENTERPRISE}:department",
    f"{USER}:nickName",
    f"{GROUP}:members",
    CUSTOM,
    f"{CUSTOM}:badge",
    "emails[",
    "emails[type eq]",
    "a..b",
    "urn:",
]
OPS = ["add", "replace", "remove", "Add", "Replace", "Remove", "ADD", "copy", "", "test"]

# URLs carry UTF-8; JSON bodies may also carry escapes of lone surrogates, and long strings.
text = st.text(max_size=24)
body_text = st.integers(0, 9).flatmap(
    lambda n: st.text(
        st.characters(codec=None), max_size=24 if n else 400, min_size=0 if n else 200
    )
)
keys = st.one_of(st.sampled_from(ATTRIBUTES + SUB_ATTRIBUTES), body_text)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and Infinity too: json.dumps writes them, JSON has no such thing
    body_text,
    st.sampled_from(WORDS),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=5),
        st.lists(st.fixed_dictionaries({"value": inner}, optional={"type": inner}), max_size=3),
    ),
    max_leaves=20,
)
user_names = st.one_of(st.emails(), body_text, st.sampled_from(WORDS))


def mutated(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid-looking body with some attributes dropped and some set to anything."""

    def apply(body: dict[str, Any], drop: list[str], changes: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k not in drop} | changes

    return st.builds(
        apply,
        base,
        st.lists(st.sampled_from(ATTRIBUTES), max_size=3),
        st.dictionaries(st.sampled_from(ATTRIBUTES), json_values, max_size=3),
    )


users = st.fixed_dictionaries(
    {"schemas": st.just([USER]), "userName": user_names},
    optional={
        "name": st.fixed_dictionaries(
            {}, optional={"givenName": body_text, "familyName": body_text, "formatted": body_text}
        ),
        "displayName": body_text,
        "externalId": body_text,
        "active": st.sampled_from([True, False, "True", "False", "yes"]),
        "emails": st.lists(
            st.fixed_dictionaries(
                {"value": user_names},
                optional={"type": st.sampled_from(["work", "home"]), "primary": st.booleans()},
            ),
            max_size=2,
        ),
        ENTERPRISE: st.dictionaries(
            st.sampled_from(["employeeNumber", "department", "manager", "nope"]),
            st.one_of(body_text, st.just(THE_MEMBER), st.fixed_dictionaries({"value": body_text})),
            max_size=3,
        ),
        CUSTOM: st.dictionaries(body_text, json_values, max_size=2),
    },
)
groups = st.fixed_dictionaries(
    {"schemas": st.sampled_from([[GROUP], [GROUP, ADSCIM]]), "displayName": body_text},
    optional={
        "externalId": body_text,
        "members": st.lists(
            st.fixed_dictionaries(
                {"value": st.sampled_from([THE_USER, THE_MEMBER, "nobody", ""])},
                optional={
                    "$ref": st.none(),
                    "type": st.sampled_from(["User", "Group"]),
                    "display": body_text,
                },
            ),
            max_size=3,
        ),
        "meta": st.just({"resourceType": "Group"}),
    },
)
# Valid-looking bodies as often as garbage (one_of picks its branches evenly).
user_bodies = st.one_of(
    users, mutated(users), st.dictionaries(keys, json_values, max_size=6), json_values
)
group_bodies = st.one_of(
    groups, mutated(groups), st.dictionaries(keys, json_values, max_size=6), json_values
)
member_values = st.lists(
    st.fixed_dictionaries(
        {"value": st.sampled_from([THE_USER, THE_MEMBER, "nobody"])},
        optional={"$ref": st.none(), "display": body_text, "type": st.just("User")},
    ),
    max_size=3,
)
patch_values = st.one_of(
    body_text,
    st.booleans(),
    st.sampled_from(["True", "False", THE_MEMBER]),
    member_values,
    st.fixed_dictionaries(
        {"value": body_text}, optional={"type": st.sampled_from(["work", "home"])}
    ),
    st.dictionaries(st.sampled_from(ATTRIBUTES), st.one_of(body_text, st.booleans()), max_size=3),
    json_values,
)
STRING_PATHS = [
    "displayName",
    "nickName",
    "title",
    "userName",
    "externalId",
    "name.givenName",
    'emails[type eq "work"].value',
    f"{ENTERPRISE}:department",
    f"{ENTERPRISE}:manager",
    f"{USER}:nickName",
]


def operation(op: str, path: str | None, value: Any = None, *, has_value: bool = True) -> dict:
    made: dict[str, Any] = {"op": op}
    if path is not None:
        made["path"] = path
    if has_value:
        made["value"] = value
    return made


adds = st.sampled_from(["add", "replace", "Add", "Replace"])
sensible_operations = st.one_of(
    st.builds(operation, adds, st.sampled_from(STRING_PATHS), st.one_of(body_text, user_names)),
    st.builds(
        operation,
        st.sampled_from(["replace", "Replace"]),
        st.just("active"),
        st.sampled_from([True, False, "True", "False"]),
    ),
    st.builds(
        operation,
        adds,
        st.none(),
        st.dictionaries(
            st.sampled_from(["displayName", "nickName", "active", "name.givenName", "title"]),
            st.one_of(body_text, st.booleans()),
            min_size=1,
            max_size=3,
        ),
    ),
    st.builds(
        operation,
        st.sampled_from(["remove", "Remove"]),
        st.sampled_from(PATHS),
        st.none(),
        has_value=st.booleans(),
    ),
    st.builds(operation, adds, st.just("emails"), st.lists(st.builds(dict, value=user_names))),
    st.builds(
        operation,
        st.sampled_from(OPS[:6]),
        st.sampled_from(["members", f'members[value eq "{THE_MEMBER}"]']),
        member_values,
    ),
)
group_operations = st.one_of(
    st.builds(
        operation,
        st.sampled_from(OPS[:6]),
        st.sampled_from(["members", f'members[value eq "{THE_MEMBER}"]', f"{GROUP}:members"]),
        member_values,
        has_value=st.booleans(),
    ),
    st.builds(
        operation,
        adds,
        st.sampled_from(["displayName", "externalId", f"{GROUP}:displayName"]),
        st.one_of(body_text, st.none()),
    ),
    # Okta's rename: path-less, the group's id echoed.
    st.builds(
        operation,
        adds,
        st.none(),
        st.fixed_dictionaries(
            {"displayName": body_text}, optional={"id": st.just(THE_GROUP), "externalId": body_text}
        ),
    ),
)


def patches_of(sensible: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """PatchOp messages: sensible operations, then looser ones, then garbage."""
    operations = st.one_of(
        sensible,
        st.fixed_dictionaries(
            {"op": st.sampled_from(OPS)},
            optional={"path": st.one_of(st.sampled_from(PATHS), body_text), "value": patch_values},
        ),
        json_values,
    )
    return st.one_of(
        st.fixed_dictionaries(
            {
                "schemas": st.just([PATCH_OP]),
                "Operations": st.lists(sensible, min_size=1, max_size=3),
            }
        ),
        st.fixed_dictionaries(
            {
                "schemas": st.just([PATCH_OP]),
                "Operations": st.lists(operations, min_size=1, max_size=3),
            }
        ),
        st.fixed_dictionaries(
            {
                "schemas": st.one_of(st.just([PATCH_OP]), json_values),
                "Operations": st.one_of(st.lists(operations, max_size=4), json_values),
            }
        ),
        st.dictionaries(keys, json_values, max_size=4),
        json_values,
    )


user_patches = patches_of(sensible_operations)
group_patches = patches_of(group_operations)

FILTER_ATTRIBUTES = [
    "userName",
    "displayName",
    "externalId",
    "id",
    "active",
    "title",
    "emails",
    "emails.value",
    "emails.type",
    "name.givenName",
    "members",
    "members.value",
    "meta.created",
    "meta.lastModified",
    "meta.resourceType",
    f"{ENTERPRISE}:manager.value",
    f"{ENTERPRISE}:department",
    f"{CUSTOM}:badge",
    f"{USER}:userName",
]
COMPARISONS = [" eq ", " ne ", " co ", " sw ", " ew ", " gt ", " ge ", " lt ", " le "]
OPERANDS = [
    '"x"',
    '"ada@example.com"',
    '"2024-02-29T12:00:00Z"',
    '"\\u00e9"',
    '"\\"',
    "true",
    "false",
    "null",
    "0",
    "-1.5e3",
    "1e999",
    "é",
]
SYNTAX = [" pr", " and ", " or ", "not ", "(", ")", "[", "]", " ", ".", '"', "\x00"]
filters = st.one_of(
    text,
    st.lists(st.sampled_from(FILTER_ATTRIBUTES + COMPARISONS + OPERANDS + SYNTAX), max_size=24).map(
        "".join
    ),
    st.builds(
        lambda path, op, value: f"{path}{op}{value}",
        st.sampled_from(FILTER_ATTRIBUTES),
        st.sampled_from(COMPARISONS),
        st.one_of(st.sampled_from(OPERANDS), text.map(json.dumps)),
    ),
)


numbers = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.integers().map(str),
    text,
    st.sampled_from(["", "1.5", "0x10", " 7 ", str(2**63), str(10**30)]),
)
names = st.one_of(
    st.lists(st.sampled_from([*FILTER_ATTRIBUTES, "members", "groups", "nope"]), max_size=3).map(
        ",".join
    ),
    text,
)
queries = st.fixed_dictionaries(
    {},
    optional={
        "filter": filters,
        "startIndex": numbers,
        "count": numbers,
        "sortBy": st.one_of(st.sampled_from(FILTER_ATTRIBUTES), text),
        "sortOrder": st.sampled_from(["ascending", "descending", "DESCENDING", "up", ""]),
        "attributes": names,
        "excludedAttributes": names,
        "nonsense": text,
    },
)
searches = st.one_of(
    st.fixed_dictionaries(
        {"schemas": st.one_of(st.just([SEARCH]), json_values)},
        optional={
            "filter": st.one_of(filters, json_values),
            "startIndex": st.one_of(st.integers(), json_values),
            "count": st.one_of(st.integers(-5, 2000), json_values),
            "sortBy": st.one_of(st.sampled_from(FILTER_ATTRIBUTES), json_values),
            "sortOrder": st.one_of(st.sampled_from(["ascending", "descending"]), json_values),
            "attributes": st.one_of(st.lists(st.sampled_from(FILTER_ATTRIBUTES)), json_values),
            "excludedAttributes": st.one_of(st.lists(st.sampled_from(["members"])), json_values),
        },
    ),
    json_values,
)
raw_bodies = st.one_of(
    st.binary(max_size=40),
    text,
    st.sampled_from(["", "null", "[]", "{", '{"a": }', "1", '"x"', '{"schemas": [}', "\ufeff{}"]),
)
content_types = st.sampled_from(
    [
        "application/scim+json",
        "application/json",
        "application/scim+json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        None,
    ]
)

# --- the org under test ------------------------------------------------------------------


@dataclass
class Target:
    """An org with a user, another user, and a group holding both."""

    scim: Scim
    user: str
    member: str
    group: str

    def body(self, value: Any) -> str:
        text = json.dumps(value)
        for stand_in, real in ((THE_USER, self.user), (THE_MEMBER, self.member)):
            text = text.replace(stand_in, real)
        return text.replace(THE_GROUP, self.group)

    def send(
        self,
        method: str,
        path: str,
        data: str | bytes | None = None,
        content_type: str | None = "application/scim+json",
        query: dict[str, str] | None = None,
    ) -> Any:
        return self.scim.client.open(
            self.scim.base + path,
            method=method,
            data=data,
            content_type=content_type,
            query_string=query or {},
            headers={"Authorization": f"Bearer {self.scim.token}"},
        )

    def state(self, *paths: str) -> dict[str, Any]:
        """What a request could change: the resources at ``paths`` as read, and row counts."""
        db.session.expire_all()
        counts = db.session.execute(
            select(
                *(
                    select(func.count()).select_from(model).scalar_subquery().label(name)
                    for name, model in COUNTED.items()
                )
            )
        ).one()
        return {
            "counts": counts._asdict(),
            **{path: canonical(self.send("GET", path).get_data()) for path in paths},
        }


# Every row a SCIM request writes, or leaves behind if it half-fails.
COUNTED = {
    "users": User,
    "memberships": Membership,
    "directory_users": DirectoryUser,
    "teams": Team,
    "directory_groups": DirectoryGroup,
    "team_members": TeamMember,
    "audit_events": AuditEvent,
}


def canonical(raw: str | bytes) -> Any:
    """JSON as a value: numbers as the decimals they are (RFC 8259 §6), so that 4.3e+16 sent
    and 43000000000000000 read back (PostgreSQL's jsonb keeps numbers as numeric) are equal."""
    return json.loads(raw, parse_float=Decimal, parse_int=Decimal)


@pytest.fixture
def target(scim: Scim) -> Target:
    user = scim(
        "POST",
        "/Users",
        user_body(
            "fixed@example.com",
            externalId="00u1",
            title="Countess",
            **{ENTERPRISE: {"department": "Engines"}, CUSTOM: {"badge": 7}},
        ),
    ).json["id"]
    member = scim("POST", "/Users", user_body("member@example.com")).json["id"]
    group = scim("POST", "/Groups", group_body("Engineering", [user, member])).json["id"]
    return Target(scim, user, member, group)


def check(response: Any) -> Any:
    """Never a 5xx; every 4xx a SCIM error; the parsed body (None when empty)."""
    raw = response.get_data(as_text=True)
    if currently_in_test_context():
        event(f"answered {response.status_code}")  # --hypothesis-show-statistics shows the mix
    assert response.status_code < 500, raw
    if response.status_code >= 400:
        assert response.content_type.startswith("application/scim+json"), raw
        body = json.loads(raw)
        assert body["schemas"] == [ERROR], raw
        assert body["status"] == str(response.status_code), raw
        assert isinstance(body.get("detail", ""), str)
        return body
    return json.loads(raw) if raw else None


def failed(target: Target, before: dict[str, Any], response: Any) -> bool:
    """Whether the request failed; if it did, nothing changed."""
    check(response)
    if response.status_code < 400:
        return False
    assert target.state(*before.keys() - {"counts"}) == before, response.get_data(as_text=True)
    return True


def as_stored(target: Target, response: Any, path: str) -> None:
    """A write answers with the resource as a GET then reads it.

    Groups are compared without meta.lastModified, which a write answers stale
    (test_a_group_write_answers_its_last_modified).
    """
    answered, read = canonical(response.get_data()), target.state(path)[path]
    for resource in (answered, read):
        # Unordered (RFC 7643 §3: the schemas "used to define" the resource); PostgreSQL's
        # jsonb reorders the keys the extensions are listed from.
        resource["schemas"] = sorted(resource["schemas"])
        if path.startswith("/Groups/"):
            del resource["meta"]["lastModified"]
    assert read == answered


# --- bodies ------------------------------------------------------------------------------


@FUZZ
@given(body=user_bodies)
def test_posted_users(target: Target, body: Any) -> None:
    before = target.state()
    response = target.send("POST", "/Users", target.body(body))
    if failed(target, before, response):
        return
    assert response.status_code == 201
    as_stored(target, response, f"/Users/{response.json['id']}")


@FUZZ
@given(body=group_bodies)
def test_posted_groups(target: Target, body: Any) -> None:
    before = target.state()
    response = target.send("POST", "/Groups", target.body(body))
    if failed(target, before, response):
        return
    assert response.status_code == 201
    as_stored(target, response, f"/Groups/{response.json['id']}")


@FUZZ
@given(body=user_bodies)
def test_put_users(target: Target, body: Any) -> None:
    path = f"/Users/{target.user}"
    before = target.state(path)
    response = target.send("PUT", path, target.body(body))
    if failed(target, before, response):
        return
    assert response.status_code == 200
    as_stored(target, response, path)


@FUZZ
@given(body=group_bodies)
def test_put_groups(target: Target, body: Any) -> None:
    path = f"/Groups/{target.group}"
    before = target.state(path)
    response = target.send("PUT", path, target.body(body))
    if failed(target, before, response):
        return
    assert response.status_code == 200
    as_stored(target, response, path)


@FUZZ
@given(body=user_patches)
def test_patched_users(target: Target, body: Any) -> None:
    path = f"/Users/{target.user}"
    before = target.state(path)
    response = target.send("PATCH", path, target.body(body))
    if failed(target, before, response):
        return
    assert response.status_code == 200
    as_stored(target, response, path)


@FUZZ
@given(body=group_patches)
def test_patched_groups(target: Target, body: Any) -> None:
    path = f"/Groups/{target.group}"
    before = target.state(path)
    response = target.send("PATCH", path, target.body(body))
    if failed(target, before, response):
        return
    assert response.status_code == 204 and response.get_data() == b""


@FUZZ
@given(
    method=st.sampled_from(["POST", "PUT", "PATCH"]),
    resource=st.sampled_from(["Users", "Groups"]),
    data=raw_bodies,
    content_type=content_types,
)
def test_raw_bodies(
    target: Target, method: str, resource: str, data: str | bytes, content_type: str | None
) -> None:
    """Bodies that are not a JSON object, or not sent as JSON, are refused and change nothing."""
    path = f"/{resource}/{target.user if resource == 'Users' else target.group}"
    before = target.state(path)
    response = target.send(method, f"/{resource}" if method == "POST" else path, data, content_type)
    assert failed(target, before, response)
    assert response.status_code in (400, 413, 415)


# Not "/" (werkzeug merges "//" with a redirect), "." or "..".
ids = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=40).filter(
    lambda text: text not in (".", "..")
)


@pytest.mark.parametrize("resource", ["Users", "Groups"])
@FUZZ
@given(method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]), resource_id=ids)
def test_unknown_ids(target: Target, resource: str, method: str, resource_id: str) -> None:
    """Any other id is not found (or, as ``.search``, not a resource), and nothing changes."""
    assume(resource_id not in (target.user, target.member, target.group))
    body = {
        "PUT": user_body("x@example.com") if resource == "Users" else group_body("X"),
        "PATCH": {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "title"}]},
    }.get(method)
    before = target.state()
    response = target.send(
        method,
        f"/{resource}/{quote(resource_id, safe='')}",
        None if body is None else json.dumps(body),
    )
    assert failed(target, before, response)
    assert response.status_code in (404, 405)


# --- queries -----------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["Users", "Groups"])
@FUZZ
@given(query=queries)
def test_list_queries(target: Target, resource: str, query: dict[str, str]) -> None:
    before = target.state()
    response = target.send("GET", f"/{resource}", query=query)
    body = check(response)
    assert target.state() == before  # reading changes nothing
    if response.status_code == 200:
        assert body["totalResults"] >= len(body["Resources"]) == body["itemsPerPage"]


@pytest.mark.parametrize("resource", ["Users", "Groups"])
@FUZZ
@given(query=queries)
def test_get_one_with_queries(target: Target, resource: str, query: dict[str, str]) -> None:
    resource_id = target.user if resource == "Users" else target.group
    response = target.send("GET", f"/{resource}/{resource_id}", query=query)
    body = check(response)
    if response.status_code == 200:
        assert body["id"] == resource_id


@pytest.mark.parametrize("resource", ["Users", "Groups"])
@FUZZ
@given(body=searches)
def test_searches(target: Target, resource: str, body: Any) -> None:
    before = target.state()
    response = target.send("POST", f"/{resource}/.search", target.body(body))
    result = check(response)
    assert target.state() == before
    if response.status_code == 200:
        assert result["totalResults"] >= len(result["Resources"]) == result["itemsPerPage"]


# --- what the fuzzer found ---------------------------------------------------------------
# Each was answered 500 (or wrongly 2xx) when the strategies above first generated it.


def refused(response: Any, scim_type: str | None = None) -> dict[str, Any]:
    """A 400 SCIM error (of ``scim_type``, when given)."""
    body = check(response)
    assert response.status_code == 400, body
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def send_raw(scim: Scim, method: str, path: str, raw: str) -> Any:
    return scim.client.open(
        scim.base + path,
        method=method,
        data=raw,
        content_type="application/scim+json",
        headers={"Authorization": f"Bearer {scim.token}"},
    )


@pytest.mark.parametrize("resource", ["Users", "Groups"])
def test_a_huge_start_index_is_an_empty_page(scim: Scim, resource: str) -> None:
    """Was 500: a startIndex past 64 bits reached OFFSET (OverflowError, bigint out of range)."""
    scim("POST", "/Users", user_body("ada@example.com"))
    for start in (str(2**63), str(10**30)):
        page = check(scim("GET", f"/{resource}", startIndex=start))
        assert page["Resources"] == [] and page["totalResults"] == (resource == "Users")
        searched = check(
            scim("POST", f"/{resource}/.search", {"schemas": [SEARCH], "startIndex": int(start)})
        )
        assert searched["Resources"] == []


@pytest.mark.parametrize("schemas", [None, 5, True])
def test_a_search_with_scalar_schemas_is_refused(scim: Scim, schemas: Any) -> None:
    """Was 500: ``SEARCH_REQUEST not in schemas`` raised TypeError."""
    for resource in ("Users", "Groups"):
        refused(scim("POST", f"/{resource}/.search", {"schemas": schemas}), "invalidSyntax")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(scim: Scim, constant: str) -> None:
    """Were stored (SQLite, then answered as a body that is not JSON) or 500 (jsonb)."""
    body = json.dumps(user_body("ada@example.com", **{CUSTOM: {"badge": 0}}))
    response = send_raw(scim, "POST", "/Users", body.replace('"badge": 0', f'"badge": {constant}'))
    refused(response, "invalidSyntax")
    assert scim("GET", "/Users").json["totalResults"] == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/Users", user_body("\ud800ada@example.com")),
        ("/Users", user_body("ada@example.com", title="Countess \udfff")),
        ("/Groups", group_body("Engineering \ud83d")),
    ],
    ids=["userName", "title", "displayName"],
)
def test_lone_surrogates_are_refused(scim: Scim, path: str, body: dict[str, Any]) -> None:
    """Were 500: text the database driver cannot encode (UnicodeEncodeError)."""
    refused(send_raw(scim, "POST", path, json.dumps(body)))
    assert scim("GET", path).json["totalResults"] == 0


def stored_or_refused(scim: Scim, response: Any, attribute: str, sent: str) -> None:
    """Either kept exactly as sent (and read back so), or refused as invalidValue."""
    if response.status_code >= 400:
        refused(response, "invalidValue")
        return
    body = check(response)
    assert body[attribute] == sent
    assert scim("GET", body["meta"]["location"].split(scim.base)[1]).json[attribute] == sent


def test_over_long_identifiers_are_stored_or_refused(scim: Scim) -> None:
    """Were 500 on PostgreSQL (externalId past String(255), a person's name past 200), or cut
    short there (a userName padded past 320 characters read back shorter)."""
    long_id = "x" * 300
    stored_or_refused(
        scim,
        scim("POST", "/Users", user_body("ext@example.com", externalId=long_id)),
        "externalId",
        long_id,
    )
    user = scim("POST", "/Users", user_body("put@example.com")).json["id"]
    stored_or_refused(
        scim,
        scim("PUT", f"/Users/{user}", user_body("put@example.com", externalId=long_id)),
        "externalId",
        long_id,
    )
    stored_or_refused(
        scim, scim("POST", "/Groups", group_body("Eng", externalId=long_id)), "externalId", long_id
    )
    long_name = "Ada " * 75
    stored_or_refused(
        scim,
        scim("POST", "/Users", user_body("named@example.com", displayName=long_name)),
        "displayName",
        long_name,
    )
    padded = "padded@example.com" + " " * 400
    stored_or_refused(scim, scim("POST", "/Users", user_body(padded)), "userName", padded)


def test_a_group_write_answers_its_last_modified(scim: Scim) -> None:
    """Was stale: the version's UPDATE also set updated_at, which the answer did not reload."""
    user = scim("POST", "/Users", user_body("ada@example.com")).json["id"]
    created = scim("POST", "/Groups", group_body("Eng", [user])).json
    path = f"/Groups/{created['id']}"
    assert scim("GET", path).json["meta"] == created["meta"]
    replaced = scim("PUT", path, group_body("Engineering", [])).json
    assert scim("GET", path).json["meta"] == replaced["meta"]


def test_a_nul_in_the_url_is_not_found(scim: Scim) -> None:
    """Was 500 on PostgreSQL (text cannot hold NUL), for the slug before authentication."""
    auth = {"Authorization": f"Bearer {scim.token}"}
    response = scim.client.get("/scim/v2/ac%00me/Users", headers=auth)
    assert check(response)["status"] == "404"
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "title"}]}
    for resource, body in (("Users", user_body("x@example.com")), ("Groups", group_body("X"))):
        for method, sent in (("GET", None), ("PUT", body), ("PATCH", patch), ("DELETE", None)):
            response = scim(method, f"/{resource}/a%00b", sent)
            assert check(response)["status"] == "404", (method, resource)
