"""SCIM filters (RFC 7644 §3.4.2.2): the parser, SQL on real rows, in-memory evaluation, sorting.

SQL is checked against rows in the real tables (SQLite or PostgreSQL, as the run is set up),
and against the in-memory evaluator on random resources and filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from idp.db import db
from idp.directory.models import DirectoryGroup, DirectoryUser
from idp.orgs.models import Membership, MembershipStatus, Organization, Team, TeamMember
from scim.errors import ScimError
from scim.filters import (
    And,
    Column,
    Compare,
    Filter,
    FilterTarget,
    Not,
    Or,
    PatchPath,
    ValuePath,
    compile_filter,
    matches,
    matches_resource,
    order_by,
    parse_filter,
    parse_path,
)
from scim.filters.grammar import MAX_DEPTH, MAX_LENGTH
from scim.groups import group_target
from scim.schemas import ENTERPRISE_USER, group_type, user_type
from scim.users import user_target
from tests.builders import make_member, make_org

CUSTOM = "urn:example:params:scim:schemas:extension:custom:1.0:User"

# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_every_comparison_operator(op: str) -> None:
    assert parse_filter(f'title {op} "x"') == Compare("title", op, "x")
    assert parse_filter(f'title {op.upper()} "x"') == Compare("title", op, "x")


def test_present() -> None:
    assert parse_filter("title pr") == Compare("title", "pr")
    assert parse_filter("title PR") == Compare("title", "pr")


a, b, c = Compare("a", "pr"), Compare("b", "pr"), Compare("c", "pr")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a pr and b pr", And((a, b))),
        ("a pr or b pr", Or((a, b))),
        ("a pr AND b pr Or c pr", Or((And((a, b)), c))),
        ("a pr or b pr and c pr", Or((a, And((b, c))))),
        ("(a pr or b pr) and c pr", And((Or((a, b)), c))),
        ("a pr and b pr and c pr", And((a, b, c))),
        ("not (a pr) and b pr", And((Not(a), b))),
        ("NOT(a pr or b pr)", Not(Or((a, b)))),
        ("not (not (a pr))", Not(Not(a))),
        ("((a pr))", a),
        ("  a   pr  ", a),
        ("(a pr)and(b pr)", And((a, b))),
        ('a eq"x"', Compare("a", "eq", "x")),
    ],
)
def test_precedence_and_grouping(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'emails[type eq "work" and value co "@example.com"]',
            ValuePath(
                "emails",
                And((Compare("type", "eq", "work"), Compare("value", "co", "@example.com"))),
            ),
        ),
        (
            'emails[type eq "work" or not (primary eq true)]',
            ValuePath(
                "emails", Or((Compare("type", "eq", "work"), Not(Compare("primary", "eq", True))))
            ),
        ),
        (
            'userType eq "Employee" and emails[type eq "work"]',
            And(
                (
                    Compare("userType", "eq", "Employee"),
                    ValuePath("emails", Compare("type", "eq", "work")),
                )
            ),
        ),
        (
            'emails[(type eq "a")] or addresses[region pr]',
            Or(
                (
                    ValuePath("emails", Compare("type", "eq", "a")),
                    ValuePath("addresses", Compare("region", "pr")),
                )
            ),
        ),
    ],
)
def test_value_paths(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    "path",
    [
        "name.familyName",
        "meta.lastModified",
        "members.$ref",
        f"{ENTERPRISE_USER}:department",
        f"{ENTERPRISE_USER}:manager.value",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "URN:IETF:params:scim:schemas:core:2.0:User:name.givenName",
        f"{CUSTOM}:badge",
    ],
)
def test_attribute_paths(path: str) -> None:
    assert parse_filter(f'{path} eq "x"') == Compare(path, "eq", "x")


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"plain"', "plain"),
        ('""', ""),
        (r'"a\"b"', 'a"b'),
        (r'"back\\slash"', "back\\slash"),
        (r'"\u00e9t\u00E9"', "été"),
        (r'"tab\there"', "tab\there"),
        (r'"\/"', "/"),
        ('"ünïcödé ✓"', "ünïcödé ✓"),
        ("true", True),
        ("False", False),
        ("null", None),
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        ("-1E+2", -100.0),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_values(literal: str, value: Any) -> None:
    parsed = parse_filter(f"x eq {literal}")
    assert isinstance(parsed, Compare)
    assert parsed.value == value and type(parsed.value) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "title",
        "title eq",
        'title eq "x',
        'title eq "x\\"',
        "title eq x",
        "title eq 01",
        "title eq 1.",
        "title eq .5",
        "title eq 1e999",
        "title eq 9223372036854775808",
        'title like "x"',
        'title pr "x"',
        "title pr pr",
        'title eq "x" and',
        'title eq "x" or or b pr',
        'and title eq "x"',
        '(title eq "x"',
        'title eq "x")',
        "((title pr)",
        'emails[type eq "work"',
        'emails type eq "work"]',
        'emails[type eq "work"]]',
        "emails[]",
        'emails[types[value eq "x"]]',
        'title eq "x" title pr',
        'title eq "x" garbage',
        "not title pr",
        "not (title pr",
        "()",
        'title eq "\\ud800"',
        'title eq "\\u0000"',
        'title eq "bad \\x escape"',
        'name..familyName eq "x"',
        'name.familyName.x eq "x"',
        '1title eq "x"',
        'ti@tle eq "x"',
        'urn:x:"y eq "z"',
        f'{ENTERPRISE_USER}: eq "x"',
        'title eq "x" ]',
        "[",
        '"just a string"',
    ],
)
def test_malformed_filters(text: str) -> None:
    with pytest.raises(ScimError) as raised:
        parse_filter(text)
    assert raised.value.status == 400 and raised.value.scim_type == "invalidFilter"


def test_depth_limit() -> None:
    deep = "(" * MAX_DEPTH + "a pr" + ")" * MAX_DEPTH
    assert parse_filter(deep) == a
    with pytest.raises(ScimError, match="deep") as raised:
        parse_filter("(" + deep + ")")
    assert raised.value.scim_type == "invalidFilter"
    with pytest.raises(ScimError, match="deep"):
        parse_filter("not (" * 100 + "a pr" + ")" * 100)


def test_length_limit() -> None:
    long = " or ".join(["a pr"] * (MAX_LENGTH // 8))
    assert isinstance(parse_filter(long), Or)
    with pytest.raises(ScimError, match="longer") as raised:
        parse_filter(f'title eq "{"x" * MAX_LENGTH}"')
    assert raised.value.scim_type == "invalidFilter"


@pytest.mark.parametrize(
    "text",
    [
        'title eq "a\\"b" and not (emails[type eq "work" or value co "%_"])',
        f'{ENTERPRISE_USER}:manager.value eq "x" or x ge 1.5 or y lt -3',
        "(a pr or b pr) and (c pr or not (a pr))",
    ],
)
def test_text_round_trip(text: str) -> None:
    parsed = parse_filter(text)
    assert parse_filter(str(parsed)) == parsed


# --- PATCH paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("emails", PatchPath("emails")),
        ("name.familyName", PatchPath("name.familyName")),
        (
            'emails[type eq "work"]',
            PatchPath("emails", Compare("type", "eq", "work")),
        ),
        (
            'emails[type eq "work" and primary eq true].value',
            PatchPath(
                "emails",
                And((Compare("type", "eq", "work"), Compare("primary", "eq", True))),
                "value",
            ),
        ),
        (
            'members[value eq "2819c223-7f76-453a-919d-413861904646"]',
            PatchPath("members", Compare("value", "eq", "2819c223-7f76-453a-919d-413861904646")),
        ),
        (f"{ENTERPRISE_USER}:manager", PatchPath(f"{ENTERPRISE_USER}:manager")),
        (f"{ENTERPRISE_USER}:manager.value", PatchPath(f"{ENTERPRISE_USER}:manager.value")),
        (ENTERPRISE_USER, PatchPath(ENTERPRISE_USER)),
        (
            'urn:ietf:params:scim:schemas:core:2.0:User:addresses[type eq "work"].locality',
            PatchPath(
                "urn:ietf:params:scim:schemas:core:2.0:User:addresses",
                Compare("type", "eq", "work"),
                "locality",
            ),
        ),
        (
            'Emails[Type eq "work"].Value',
            PatchPath("Emails", Compare("Type", "eq", "work"), "Value"),
        ),
    ],
)
def test_parse_path(text: str, expected: PatchPath) -> None:
    assert parse_path(text) == expected
    assert parse_path(str(expected)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "emails[",
        'emails[type eq "work"',
        'emails[type eq "work"]value',
        'emails[type eq "work"].',
        'emails[type eq "work"].value.x',
        'emails[type eq "work"][value eq "x"]',
        'emails.value[type eq "work"]',
        "emails eq",
        "name.givenName.x",
        "emails pr",
        '"emails"',
        "[type eq 1]",
        "emails[type eq]",
    ],
)
def test_malformed_paths(text: str) -> None:
    with pytest.raises(ScimError) as raised:
        parse_path(text)
    assert raised.value.status == 400 and raised.value.scim_type == "invalidPath"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("EMAILS", ("emails", None, None)),
        ('emails[TYPE eq "work"].VALUE', ("emails", None, None)),
        ("name.GIVENNAME", ("name", "givenName", None)),
        (f"{ENTERPRISE_USER}:Manager.value", ("manager", "value", ENTERPRISE_USER)),
        (f"{ENTERPRISE_USER.lower()}:department", ("department", None, ENTERPRISE_USER)),
        ("urn:ietf:params:scim:schemas:core:2.0:User:title", ("title", None, None)),
        (f"{CUSTOM}:badge", ("badge", None, CUSTOM)),
        (f'{CUSTOM}:things[kind eq "x"].label', ("things", None, CUSTOM)),
    ],
)
def test_patch_path_resolves(text: str, where: tuple[str, str | None, str | None]) -> None:
    path = parse_path(text).resolve(user_type())
    assert (path.name, path.sub, path.urn) == where


@pytest.mark.parametrize(
    "text",
    [
        "bogus",
        "name.bogus",
        'emails[bogus eq "x"]',
        'emails[type eq "work"].bogus',
        'title[value eq "x"]',
        'name.givenName[value eq "x"]',
        "emails[primary gt true]",
        "emails[type eq 5]",
        'emails[type.x eq "a"]',
        "password",
        ENTERPRISE_USER,
    ],
)
def test_patch_path_does_not_resolve(text: str) -> None:
    with pytest.raises(ScimError) as raised:
        parse_path(text).resolve(user_type())
    assert raised.value.scim_type == "invalidPath"


def test_a_bare_schema_urn_is_for_the_caller() -> None:
    path = parse_path(ENTERPRISE_USER.upper())
    assert path.schema_urn(user_type()) == ENTERPRISE_USER
    assert parse_path("emails").schema_urn(user_type()) is None
    assert path.schema_urn(group_type()) is None


# --- in memory: one element ------------------------------------------------------------

EMAILS = user_type().schema.attribute("emails")
MEMBERS = group_type().schema.attribute("members")


@pytest.mark.parametrize(
    ("text", "element", "expected"),
    [
        ('type eq "work"', {"type": "work", "value": "a@x"}, True),
        ('type eq "WORK"', {"type": "work"}, True),
        ('TYPE eq "work"', {"Type": "work"}, True),
        ('type eq "work"', {"type": "home"}, False),
        ('type ne "work"', {"value": "a@x"}, True),
        ('type eq "work" and value co "@X"', {"type": "work", "value": "a@x"}, True),
        ('type eq "work" and value co "@y"', {"type": "work", "value": "a@x"}, False),
        ('type eq "home" or value sw "A"', {"type": "work", "value": "a@x"}, True),
        ('value ew "@X"', {"value": "a@x"}, True),
        ("not (primary eq true)", {"value": "a@x"}, True),
        ("primary eq true", {"primary": True}, True),
        ('primary eq "true"', {"primary": True}, True),
        ("primary eq false", {"primary": True}, False),
        ("display pr", {"display": ""}, False),
        ("display pr", {"display": "x"}, True),
        ("type eq null", {"value": "x"}, True),
        ("type ne null", {"value": "x"}, False),
        ('value gt "a"', {"value": "b"}, True),
        ('value gt "B"', {"value": "b"}, False),
        ('value co "%"', {"value": "100%"}, True),
        ('type eq "work"', "not a dict", False),
    ],
)
def test_matches_one_email(text: str, element: Any, expected: bool) -> None:
    assert EMAILS is not None
    assert matches(parse_filter(text), element, EMAILS) is expected


def test_matches_honours_case_exact_sub_attributes() -> None:
    assert MEMBERS is not None
    assert matches(parse_filter('value eq "abc"'), {"value": "abc"}, MEMBERS)
    assert not matches(parse_filter('value eq "ABC"'), {"value": "abc"}, MEMBERS)
    assert matches(parse_filter('display eq "ABC"'), {"display": "abc"}, MEMBERS)


@pytest.mark.parametrize(
    "text",
    ['bogus eq "x"', 'value.x eq "x"', "primary gt true", 'primary co "t"', "value eq 1"],
)
def test_matches_refuses_what_the_attribute_cannot_hold(text: str) -> None:
    assert EMAILS is not None
    with pytest.raises(ScimError) as raised:
        matches(parse_filter(text), {"value": "x"}, EMAILS)
    assert raised.value.scim_type == "invalidFilter"


# --- SQL on real rows ------------------------------------------------------------------


def add_user(
    org: Organization,
    membership: Membership,
    user_name: str,
    *,
    external_id: str | None = None,
    active: bool = True,
    updated: datetime | None = None,
    attributes: dict[str, Any] | None = None,
) -> None:
    membership.status = MembershipStatus.ACTIVE if active else MembershipStatus.SUSPENDED
    db.session.add(
        DirectoryUser(
            membership_id=membership.id,
            org_id=org.id,
            user_name=user_name,
            user_name_key=user_name.lower(),
            external_id=external_id,
            attributes=attributes or {},
            updated_at=updated or datetime(2024, 1, 1, tzinfo=UTC),
        )
    )


@dataclass
class People:
    org: Organization
    ids: dict[str, str]  # name -> SCIM id

    def names(self, ids: Any) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}

    def query(self, f: str | Filter) -> set[str]:
        return self.names(db.session.scalars(self.select().where(compile_filter(f, user_target()))))

    def select(self) -> Any:
        return (
            select(DirectoryUser.membership_id)
            .join(Membership, Membership.id == DirectoryUser.membership_id)
            .where(DirectoryUser.org_id == self.org.id)
        )


@pytest.fixture
def people(app: Flask) -> People:
    org = make_org("filters")
    other = make_org("elsewhere")
    members = {n: make_member(org, f"{n}@people.test") for n in ("ada", "grace", "alan", "edsger")}
    add_user(
        org,
        members["ada"],
        "Ada@Example.com",
        external_id="EXT-1",
        updated=datetime(2024, 1, 1, tzinfo=UTC),
        attributes={
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [
                {"value": "ada@example.com", "type": "work", "primary": True},
                {"value": "ada@home.org", "type": "home"},
            ],
            "title": "Countess",
            "nickName": "ada",
            "displayName": "Ada L.",
            ENTERPRISE_USER: {
                "department": "Engineering",
                "employeeNumber": "100",
                "manager": {"value": "mgr-1", "displayName": "Babbage"},
            },
            CUSTOM: {"badge": "Gold", "level": 3, "vip": True, "tags": ["a", "b"]},
        },
    )
    add_user(
        org,
        members["grace"],
        "grace@navy.mil",
        external_id="ext-1",
        active=False,
        updated=datetime(2024, 6, 1, tzinfo=UTC),
        attributes={
            "name": {"givenName": "Grace", "familyName": "Hopper"},
            "emails": [
                {"value": "grace@navy.mil", "type": "work"},
                {"value": "grace@example.com", "type": "home", "primary": False},
            ],
            "displayName": "back\\slash",
            ENTERPRISE_USER: {"department": "engineering", "manager": {"value": "MGR-1"}},
        },
    )
    add_user(
        org,
        members["alan"],
        "alan",
        updated=datetime(2025, 1, 1, tzinfo=UTC),
        attributes={
            "name": {"familyName": "Turing"},
            "emails": [{"value": "alan%_x@example.com", "type": "work"}],
            "title": "",
            "displayName": "50% off_sale",
            CUSTOM: {"badge": "silver", "level": 10, "tags": []},
        },
    )
    add_user(
        org,
        members["edsger"],
        "edsger",
        updated=datetime(2023, 1, 1, tzinfo=UTC),
        attributes={"displayName": "500 offXsale", "emails": []},
    )
    # Another org's twin of Ada must never show up.
    add_user(other, make_member(other, "ada@people.test"), "Ada@Example.com", external_id="EXT-1")
    db.session.commit()
    return People(org, {name: m.id for name, m in members.items()})


ALL = {"ada", "grace", "alan", "edsger"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # userName: case-insensitive, on the lower-cased column.
        ('userName eq "ada@example.com"', {"ada"}),
        ('USERNAME eq "ADA@EXAMPLE.COM"', {"ada"}),
        ('userName sw "A"', {"ada", "alan"}),
        ('userName co "@"', {"ada", "grace"}),
        ('userName ew ".MIL"', {"grace"}),
        ('userName gt "b"', {"grace", "edsger"}),
        ('userName le "alan"', {"ada", "alan"}),
        ("userName pr", ALL),
        # externalId: case-exact.
        ('externalId eq "EXT-1"', {"ada"}),
        ('externalId eq "ext-1"', {"grace"}),
        ('externalId co "XT"', {"ada"}),
        ('externalId sw "e"', {"grace"}),
        ('externalId ew "T-1"', {"ada"}),
        ("externalId pr", {"ada", "grace"}),
        ("not (externalId pr)", {"alan", "edsger"}),
        ('externalId ne "EXT-1"', {"grace", "alan", "edsger"}),
        # Multi-valued: any element; inside [...] the same element.
        ('emails[type eq "work" and value co "@example.com"]', {"ada", "alan"}),
        ('emails[type eq "home"]', {"ada", "grace"}),
        ("emails[primary eq true]", {"ada"}),
        ("emails[not (primary eq true)]", {"ada", "grace", "alan"}),
        ('emails[type eq "work" or type eq "home"]', {"ada", "grace", "alan"}),
        ('emails.value co "@example.com"', {"ada", "grace", "alan"}),
        ('emails co "@EXAMPLE.com"', {"ada", "grace", "alan"}),
        ('emails.value sw "grace"', {"grace"}),
        ('emails.type eq "home"', {"ada", "grace"}),
        ('emails.value eq "ADA@HOME.ORG"', {"ada"}),
        ("emails pr", {"ada", "grace", "alan"}),
        ("emails.primary pr", {"ada", "grace"}),
        ('not (emails.value ew ".org")', {"grace", "alan", "edsger"}),
        # Sub-attributes of a single complex attribute.
        ('name.familyName ew "ing"', {"alan"}),
        ('name.familyName ew "ACE"', {"ada"}),
        ('name.givenName lt "B"', {"ada"}),
        ("name.givenName pr", {"ada", "grace"}),
        ('name[givenName eq "grace" and familyName sw "h"]', {"grace"}),
        # Presence: null, "" and [] are not there.
        ("title pr", {"ada"}),
        ("not (title pr)", {"grace", "alan", "edsger"}),
        ("title eq null", {"grace", "alan", "edsger"}),
        ("title ne null", {"ada"}),
        ('title ne "countess"', {"grace", "alan", "edsger"}),
        ('title eq "COUNTESS"', {"ada"}),
        # The enterprise extension.
        (f'{ENTERPRISE_USER}:department eq "ENGINEERING"', {"ada", "grace"}),
        (f'{ENTERPRISE_USER.upper()}:DEPARTMENT eq "engineering"', {"ada", "grace"}),
        (f'{ENTERPRISE_USER}:manager.value eq "mgr-1"', {"ada"}),
        (f'{ENTERPRISE_USER}:manager.value eq "MGR-1"', {"grace"}),
        (f'{ENTERPRISE_USER}:manager.displayName eq "babbage"', {"ada"}),
        (f"{ENTERPRISE_USER}:manager pr", {"ada", "grace"}),
        (f'{ENTERPRISE_USER}:employeeNumber ge "100"', {"ada"}),
        # A custom extension: typed by the operand, one value or an array of them.
        (f'{CUSTOM}:badge eq "gold"', {"ada"}),
        (f'{CUSTOM}:badge co "L"', {"ada", "alan"}),
        (f"{CUSTOM}:level gt 5", {"alan"}),
        (f"{CUSTOM}:level ge 3", {"ada", "alan"}),
        (f"{CUSTOM}:level eq 3.0", {"ada"}),
        (f"{CUSTOM}:level lt 1e1", {"ada"}),
        (f'{CUSTOM}:level eq "3"', set()),
        (f"{CUSTOM}:vip eq true", {"ada"}),
        (f'{CUSTOM}:tags eq "b"', {"ada"}),
        (f"{CUSTOM}:tags pr", {"ada"}),
        (f"{CUSTOM}:nothing pr", set()),
        # The core schema's URN is optional.
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alan"', {"alan"}),
        # dateTimes, chronologically, in any offset.
        ('meta.lastModified gt "2024-03-01T00:00:00Z"', {"grace", "alan"}),
        ('meta.lastModified lt "2024-01-01T00:00:01+00:00"', {"ada", "edsger"}),
        ('meta.lastModified ge "2024-06-01T02:00:00+02:00"', {"grace", "alan"}),
        ('meta.lastModified eq "2024-06-01T00:00:00Z"', {"grace"}),
        ('meta.lastModified le "2023-01-01"', {"edsger"}),
        ("meta.lastModified pr", ALL),
        # Booleans (the membership's status).
        ("active eq false", {"grace"}),
        ("active eq true", {"ada", "alan", "edsger"}),
        ("active ne true", {"grace"}),
        ('active eq "False"', {"grace"}),
        # Logic.
        ('nickName eq "ADA" or name.givenName eq "grace"', {"ada", "grace"}),
        ('(userName sw "a" or userName sw "g") and not (emails[type eq "home"])', {"alan"}),
        ('userName sw "a" and active eq true and not (title pr)', {"alan"}),
        ("not (not (title pr))", {"ada"}),
        ('not (userName eq "alan" or userName eq "edsger")', {"ada", "grace"}),
        # LIKE wildcards and the escape character are literal.
        ('displayName co "0%"', {"alan"}),
        ('displayName co "f_s"', {"alan"}),
        ('displayName sw "50%"', {"alan"}),
        ('displayName ew "F_SALE"', {"alan"}),
        ('displayName co "\\\\"', {"grace"}),
        ('displayName co "%"', {"alan"}),
        ('displayName co "_"', {"alan"}),
        ('emails.value co "%_x"', {"alan"}),
        ('displayName co ""', ALL),
    ],
)
def test_filters_on_real_rows(people: People, text: str, expected: set[str]) -> None:
    assert people.query(text) == expected


def test_filter_by_id(people: People) -> None:
    assert people.query(f'id eq "{people.ids["grace"]}"') == {"grace"}
    assert people.query(f'id eq "{people.ids["grace"].lower()}"') == set()
    assert people.query(f'id ne "{people.ids["grace"]}"') == ALL - {"grace"}


def test_compiles_a_parsed_filter(people: People) -> None:
    assert people.query(parse_filter('userName eq "alan"')) == {"alan"}


@pytest.mark.parametrize(
    "text",
    [
        'bogus eq "x"',
        'name.bogus eq "x"',
        'emails.bogus eq "x"',
        f'{ENTERPRISE_USER}:bogus eq "x"',
        f"{ENTERPRISE_USER} pr",
        "urn:ietf:params:scim:schemas:core:2.0:User pr",
        'password eq "x"',
        'emails[bogus eq "x"]',
        'emails[value.x eq "x"]',
        'title[value eq "x"]',
        'name.givenName[value eq "x"]',
        'userName[value eq "x"]',
        'name eq "x"',
        f'{ENTERPRISE_USER}:manager eq "x"',
        "active gt true",
        'active co "t"',
        "active eq 1",
        'active eq "yes"',
        "title gt 5",
        "userName eq 5",
        "title eq true",
        "title lt null",
        "title co null",
        'meta.lastModified gt "yesterday"',
        'meta.lastModified co "2024"',
        "meta.lastModified eq 5",
        'meta.location eq "x"',
        'meta.resourceType eq "User"',
        "meta pr",
        'x509Certificates.value gt "a"',
        'emails.primary lt "true"',
        "emails[primary gt true]",
    ],
)
def test_invalid_comparisons(app: Flask, text: str) -> None:
    with pytest.raises(ScimError) as raised:
        compile_filter(text, user_target())
    assert raised.value.status == 400 and raised.value.scim_type == "invalidFilter"


@pytest.fixture
def teams(app: Flask) -> dict[str, str]:
    org = make_org("groups")
    ada = make_member(org, "ada@people.test")
    made: dict[str, str] = {}
    for name, external_id, attributes in (
        ("Engineering", "G-1", {"urn:example:custom:1.0:Group": {"cost": "R&D"}}),
        ("Sales", "g-1", {}),
        ("Empty", None, {}),
    ):
        team = Team(org_id=org.id, name=name, external_id=external_id, source="scim")
        db.session.add(team)
        db.session.flush()
        db.session.add(DirectoryGroup(team_id=team.id, org_id=org.id, attributes=attributes))
        made[name] = team.id
    db.session.add(TeamMember(team_id=made["Engineering"], membership_id=ada.id))
    db.session.commit()
    made["ada"] = ada.id
    return made


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('displayName eq "ENGINEERING"', {"Engineering"}),
        ('displayName sw "s"', {"Sales"}),
        ('displayName co "_"', set()),
        ('externalId eq "G-1"', {"Engineering"}),
        ('externalId eq "g-1"', {"Sales"}),
        ("externalId pr", {"Engineering", "Sales"}),
        ('urn:example:custom:1.0:Group:cost eq "r&d"', {"Engineering"}),
        ("members pr", {"Engineering"}),
        ("not (members pr)", {"Sales", "Empty"}),
        ('members[value eq "{ada}"]', {"Engineering"}),
        ('members.value eq "{ada}"', {"Engineering"}),
        ('members eq "{ada}"', {"Engineering"}),
        ('members[value eq "{ada_lower}"]', set()),
        ('displayName eq "sales" or members[value eq "{ada}"]', {"Engineering", "Sales"}),
    ],
)
def test_group_filters(teams: dict[str, str], text: str, expected: set[str]) -> None:
    text = text.format(ada=teams["ada"], ada_lower=teams["ada"].lower())
    query = (
        select(DirectoryGroup.team_id)
        .join(Team, Team.id == DirectoryGroup.team_id)
        .where(compile_filter(text, group_target()))
    )
    by_id = {v: k for k, v in teams.items()}
    assert {by_id[i] for i in db.session.scalars(query)} == expected


@pytest.mark.parametrize(
    "text", ['members.display eq "x"', 'members[type eq "User"]', "members.$ref pr"]
)
def test_group_filters_refuse_what_is_not_mapped(app: Flask, text: str) -> None:
    with pytest.raises(ScimError) as raised:
        compile_filter(text, group_target())
    assert raised.value.scim_type == "invalidFilter"


# --- sorting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort_by", "expected"),
    [
        ("userName", ["ada", "alan", "edsger", "grace"]),
        ("USERNAME", ["ada", "alan", "edsger", "grace"]),
        ("name.familyName", ["grace", "ada", "alan", "edsger"]),
        ("meta.lastModified", ["edsger", "ada", "grace", "alan"]),
        ("externalId", ["ada", "grace", "alan", "edsger"]),
        # By code point: "50% off_sale" < "500 offxsale" < "ada l." < "back\\slash".
        ("displayName", ["alan", "edsger", "ada", "grace"]),
        # Multi-valued: the primary element, else the first.
        ("emails", ["ada", "alan", "grace", "edsger"]),
        ("emails.type", ["ada", "alan", "grace", "edsger"]),
        (f"{ENTERPRISE_USER}:manager.value", ["grace", "ada", "alan", "edsger"]),
        (f"{ENTERPRISE_USER}:department", ["ada", "grace", "alan", "edsger"]),
        (f"{CUSTOM}:badge", ["ada", "alan", "edsger", "grace"]),
        ("active", ["grace", "ada", "alan", "edsger"]),
    ],
)
def test_order_by(people: People, sort_by: str, expected: list[str]) -> None:
    key = order_by(sort_by, user_target())
    ids = db.session.scalars(
        people.select().order_by(key.asc().nulls_last(), DirectoryUser.user_name_key)
    )
    assert [people.names([i]).pop() for i in ids] == expected


def test_order_by_descending(people: People) -> None:
    key = order_by("name.familyName", user_target())
    ids = db.session.scalars(people.select().order_by(key.desc().nulls_last()))
    assert [people.names([i]).pop() for i in ids] == ["alan", "ada", "grace", "edsger"]


@pytest.mark.parametrize(
    "sort_by",
    ["bogus", "name", "name.bogus", "password", "meta.location", "emails[type eq 1]", "", "a b"],
)
def test_order_by_refuses(app: Flask, sort_by: str) -> None:
    with pytest.raises(ScimError) as raised:
        order_by(sort_by, user_target())
    assert raised.value.status == 400 and raised.value.scim_type == "invalidValue"


def test_order_by_members_is_refused(app: Flask) -> None:
    with pytest.raises(ScimError):
        order_by("members", group_target())


# --- SQL agrees with the in-memory evaluator -------------------------------------------

# ASCII letters in both cases plus LIKE's specials; no letter whose lower() differs between
# SQLite (ASCII only), PostgreSQL and Python.
ALPHABET = "aAbB%_\\.@ é"
short = st.text(ALPHABET, max_size=3)
emails = st.lists(
    st.fixed_dictionaries(
        {"value": short},
        optional={"type": st.sampled_from(["work", "home", "Work"]), "primary": st.booleans()},
    ),
    max_size=3,
)
resources = st.fixed_dictionaries(
    {"active": st.booleans()},
    optional={
        "externalId": short,
        "title": short,
        "name": st.fixed_dictionaries({}, optional={"familyName": short}),
        "emails": emails,
        ENTERPRISE_USER: st.fixed_dictionaries(
            {},
            optional={
                "department": short,
                "manager": st.fixed_dictionaries({}, optional={"value": short}),
            },
        ),
        CUSTOM: st.fixed_dictionaries(
            {},
            optional={"badge": st.one_of(short, st.integers(-2, 2), st.lists(short, max_size=2))},
        ),
    },
)
STRING_PATHS = [
    "userName",
    "externalId",
    "title",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.type",
    f"{ENTERPRISE_USER}:department",
    f"{ENTERPRISE_USER}:manager.value",
    f"{CUSTOM}:badge",
]
string_ops = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
leaves = st.one_of(
    st.builds(Compare, st.sampled_from(STRING_PATHS), string_ops, short),
    st.builds(Compare, st.sampled_from([*STRING_PATHS, "emails.primary", "name"]), st.just("pr")),
    st.builds(Compare, st.sampled_from(["active", "emails.primary"]), st.just("eq"), st.booleans()),
    st.builds(
        Compare, st.just(f"{CUSTOM}:badge"), st.sampled_from(["eq", "gt", "le"]), st.integers(-2, 2)
    ),
    st.builds(
        Compare, st.sampled_from(STRING_PATHS[1:4]), st.sampled_from(["eq", "ne"]), st.none()
    ),
    st.builds(
        ValuePath,
        st.just("emails"),
        st.recursive(
            st.one_of(
                st.builds(Compare, st.sampled_from(["value", "type"]), string_ops, short),
                st.builds(Compare, st.sampled_from(["value", "type", "primary"]), st.just("pr")),
                st.builds(Compare, st.just("primary"), st.just("eq"), st.booleans()),
            ),
            lambda inner: st.one_of(
                st.builds(Not, inner),
                st.builds(And, st.tuples(inner, inner)),
                st.builds(Or, st.tuples(inner, inner)),
            ),
            max_leaves=3,
        ),
    ),
)
filters = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.tuples(inner, inner)),
        st.builds(Or, st.tuples(inner, inner, inner)),
    ),
    max_leaves=6,
)
DIFFERENTIAL = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Sandbox:
    """Memberships made once; each example replaces their directory rows."""

    org: Organization
    members: list[Membership]

    def load(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        db.session.execute(delete(DirectoryUser).where(DirectoryUser.org_id == self.org.id))
        scim_resources = []
        for index, (member, doc) in enumerate(zip(self.members, docs, strict=True)):
            doc = dict(doc)
            active = doc.pop("active")
            external_id = doc.pop("externalId", None)
            user_name = f"{'aAbB'[index % 4]}{index}{doc.get('title', '')}"
            add_user(
                self.org, member, user_name, external_id=external_id, active=active, attributes=doc
            )
            resource = {"id": member.id, "userName": user_name, "active": active, **doc}
            if external_id is not None:
                resource["externalId"] = external_id
            scim_resources.append(resource)
        db.session.commit()
        return scim_resources

    def query(self, f: Filter) -> set[str]:
        return set(
            db.session.scalars(
                select(DirectoryUser.membership_id)
                .join(Membership, Membership.id == DirectoryUser.membership_id)
                .where(DirectoryUser.org_id == self.org.id, compile_filter(f, user_target()))
            )
        )


@pytest.fixture
def sandbox(app: Flask) -> Sandbox:
    org = make_org("sandbox")
    return Sandbox(org, [make_member(org, f"m{i}@sandbox.test") for i in range(5)])


@pytest.fixture
def loaded(sandbox: Sandbox) -> Sandbox:
    """Rows of every shape, so no CASE guard goes untested."""
    sandbox.load(
        [
            {"active": True, "title": "x", "emails": [{"value": "v", "type": "t"}, "odd", 5]},
            {"active": False, "title": 5, "emails": {"value": "not a list"}, "name": "flat"},
            {"active": True, "title": ["x"], "name": {"familyName": True}, CUSTOM: "flat"},
            {"active": True, ENTERPRISE_USER: {"department": None, "manager": "x"}},
            {"active": True, CUSTOM: {"badge": [{"x": 1}, None, "s", 1.5]}},
        ]
    )
    return sandbox


@DIFFERENTIAL
@given(docs=st.lists(resources, min_size=5, max_size=5), f=filters)
def test_sql_agrees_with_the_evaluator(
    sandbox: Sandbox, docs: list[dict[str, Any]], f: Filter
) -> None:
    scim_resources = sandbox.load(docs)
    assert parse_filter(str(f)) == f
    expected = {r["id"] for r in scim_resources if matches_resource(f, r, user_type())}
    assert sandbox.query(f) == expected


@DIFFERENTIAL
@given(
    value=st.text(max_size=20),
    path=st.sampled_from(STRING_PATHS),
    op=st.sampled_from(["eq", "co", "sw", "ew", "gt"]),
)
def test_any_string_value_runs(loaded: Sandbox, value: str, path: str, op: str) -> None:
    """Any text a client can send either runs or is a 400; the database never errs."""
    try:
        f = parse_filter(str(Compare(path, op, value)))
    except ScimError as error:
        assert error.scim_type == "invalidFilter"
        return
    loaded.query(f)


# --- robustness ------------------------------------------------------------------------

TOKENS = st.sampled_from(
    [
        "(",
        ")",
        "[",
        "]",
        " ",
        " and ",
        " or ",
        "not ",
        " eq ",
        " pr",
        " co ",
        " gt ",
        ".",
        '"',
        '"x"',
        '"\\u00',
        "\\",
        "true",
        "null",
        "-1.5e3",
        "1e999",
        "emails",
        "type",
        "name.familyName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ":manager.value",
        "urn:x:y:z",
        "$ref",
        "members",
        "value",
        "\x00",
        "\ud800",
        "é",
    ]
)
junk = st.one_of(st.text(max_size=80), st.lists(TOKENS, max_size=40).map("".join))


@settings(max_examples=300, deadline=None)
@given(text=junk)
def test_parsers_raise_only_scim_errors(text: str) -> None:
    for parse, scim_type in ((parse_filter, "invalidFilter"), (parse_path, "invalidPath")):
        try:
            parse(text)
        except ScimError as error:
            assert error.status == 400 and error.scim_type == scim_type


FUZZ_COLUMNS = {
    "userName": Column(DirectoryUser.user_name_key, lowered=True),
    "meta.lastModified": Column(DirectoryUser.updated_at, kind="dateTime"),
    "active": Column(Membership.status == "active", kind="boolean"),
}
FUZZ_TARGETS = [
    FilterTarget(user_type(), DirectoryUser.attributes, FUZZ_COLUMNS, dialect)
    for dialect in ("sqlite", "postgresql")
]


@settings(max_examples=300, deadline=None)
@given(text=junk)
def test_compile_raises_only_scim_errors(text: str) -> None:
    try:
        f = parse_filter(text)
    except ScimError:
        return
    for target in FUZZ_TARGETS:
        try:
            compile_filter(f, target)
        except ScimError as error:
            assert error.status == 400 and error.scim_type == "invalidFilter"
        try:
            order_by(text, target)
        except ScimError as error:
            assert error.status == 400


@settings(max_examples=200, deadline=None)
@given(f=filters)
def test_generated_filters_compile_for_both_databases(f: Filter) -> None:
    for target, dialect in zip(FUZZ_TARGETS, (sqlite.dialect(), postgresql.dialect()), strict=True):
        str(compile_filter(f, target).compile(dialect=dialect))
