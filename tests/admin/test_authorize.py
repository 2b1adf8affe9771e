"""The authorization API: one decision (``POST /api/v1/authorize``) or up to 100 in order
(``/authorize/batch``), through ``roles.decide``; org keys see their own org only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Select, select

from idp.actors import system_actor
from idp.db import db
from idp.orgs.models import MembershipStatus, Organization
from idp.orgs.roles import ROLE_PERMISSIONS, Permission, Role
from idp.orgs.services import delete_org, set_member_status
from tests.builders import auth, make_key, make_member, make_org


@dataclass(frozen=True)
class People:
    guest: str
    owner: str
    admin: str
    member: str
    suspended: str
    outsider: str  # a member of beta only


@pytest.fixture
def people(app: Flask) -> People:
    alpha, beta = make_org("alpha"), make_org("beta")
    ids = {
        label: make_member(alpha, f"{label}@alpha.example", role).user_id
        for label, role in [
            ("guest", Role.GUEST),
            ("owner", Role.OWNER),
            ("admin", Role.ADMIN),
            ("member", Role.MEMBER),
            ("suspended", Role.ADMIN),
        ]
    }
    set_member_status(system_actor(), alpha, ids["suspended"], MembershipStatus.SUSPENDED)
    db.session.commit()
    outsider = make_member(beta, "out@beta.example", Role.OWNER).user_id
    return People(**ids, outsider=outsider)


def ask(client: FlaskClient, key: str, user_id: str, org: str, permission: str) -> Any:
    response = client.post(
        "/api/v1/authorize",
        json={"user_id": user_id, "org": org, "permission": permission},
        headers=auth(key),
    )
    assert response.status_code == 200, response.json
    return response.json


MATRIX = [
    ("member", "org:read", True, "member", "granted"),
    ("member", "members:invite", False, "member", "permission_not_in_role"),
    ("admin", "members:invite", True, "admin", "granted"),
    ("admin", "billing:manage", False, "admin", "permission_not_in_role"),
    ("owner", "billing:manage", True, "owner", "granted"),
    ("owner", "org:transfer_ownership", True, "owner", "granted"),
    ("suspended", "org:read", False, None, "member_suspended"),
    ("outsider", "org:read", False, None, "not_a_member"),
    ("member", "reports:export", False, None, "unknown_permission"),
    ("member", "ORG:READ", False, None, "unknown_permission"),
]


@pytest.mark.parametrize(("who", "permission", "allowed", "role", "reason"), MATRIX)
def test_decisions(
    client: FlaskClient,
    people: People,
    root_key: str,
    who: str,
    permission: str,
    allowed: bool,
    role: str | None,
    reason: str,
) -> None:
    answer = ask(client, root_key, getattr(people, who), "alpha", permission)
    assert answer == {"allowed": allowed, "role": role, "reason": reason, "scope": None}


def test_every_permission_follows_the_role_table(
    client: FlaskClient, people: People, root_key: str
) -> None:
    for role in Role:  # a batch per role (a batch holds at most 100 checks)
        checks = [
            {"user_id": getattr(people, role.value), "org": "alpha", "permission": p.value}
            for p in Permission
        ]
        response = client.post(
            "/api/v1/authorize/batch", json={"checks": checks}, headers=auth(root_key)
        )
        assert response.status_code == 200, response.json
        expected = [p in ROLE_PERMISSIONS[role] for p in Permission]
        assert [r["allowed"] for r in response.json["results"]] == expected, role


def test_unknown_people_and_orgs_are_not_members(
    client: FlaskClient, people: People, root_key: str
) -> None:
    assert ask(client, root_key, "usr_nobody", "alpha", "org:read")["reason"] == "not_a_member"
    assert ask(client, root_key, people.owner, "no-such-org", "org:read")["reason"] == (
        "not_a_member"
    )
    delete_org(system_actor(), db.session.scalar(_org("beta")))
    db.session.commit()
    assert ask(client, root_key, people.outsider, "beta", "org:read")["reason"] == "not_a_member"


def _org(slug: str) -> Select[tuple[Organization]]:
    return select(Organization).where(Organization.slug == slug)


def test_an_org_key_sees_only_its_own_org(client: FlaskClient, people: People) -> None:
    """About another org the answer is the one for an org that does not exist."""
    alpha_key = make_key(db.session.scalar(_org("alpha")), Role.MEMBER)
    assert ask(client, alpha_key, people.admin, "alpha", "members:invite")["allowed"] is True
    elsewhere = ask(client, alpha_key, people.outsider, "beta", "org:read")
    missing = ask(client, alpha_key, people.outsider, "no-such-org", "org:read")
    assert (
        elsewhere
        == missing
        == {"allowed": False, "role": None, "reason": "not_a_member", "scope": None}
    )


def test_a_batch_answers_in_order(client: FlaskClient, people: People, root_key: str) -> None:
    checks = [
        {"user_id": people.member, "org": "alpha", "permission": "members:read"},
        {"user_id": people.outsider, "org": "beta", "permission": "billing:manage"},
        {"user_id": people.suspended, "org": "alpha", "permission": "org:read"},
        {"user_id": people.admin, "org": "alpha", "permission": "members:read"},
        {"user_id": people.admin, "org": "alpha", "permission": "nope"},
        {"user_id": people.owner, "org": "beta", "permission": "org:read"},
    ]
    response = client.post(
        "/api/v1/authorize/batch", json={"checks": checks}, headers=auth(root_key)
    )
    assert response.status_code == 200, response.json
    assert [(r["allowed"], r["reason"]) for r in response.json["results"]] == [
        (False, "permission_not_in_role"),
        (True, "granted"),
        (False, "member_suspended"),
        (True, "granted"),
        (False, "unknown_permission"),
        (False, "not_a_member"),
    ]
    empty = client.post("/api/v1/authorize/batch", json={"checks": []}, headers=auth(root_key))
    assert empty.json == {"results": []}


def test_a_batch_holds_at_most_100_checks(
    client: FlaskClient, people: People, root_key: str
) -> None:
    check = {"user_id": people.member, "org": "alpha", "permission": "org:read"}
    ok = client.post(
        "/api/v1/authorize/batch", json={"checks": [check] * 100}, headers=auth(root_key)
    )
    assert ok.status_code == 200 and len(ok.json["results"]) == 100
    over = client.post(
        "/api/v1/authorize/batch", json={"checks": [check] * 101}, headers=auth(root_key)
    )
    assert over.status_code == 400
    assert over.json["error"] == "validation_error" and "checks" in over.json["fields"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/authorize", {"org": "alpha", "permission": "org:read"}, "user_id"),
        ("/authorize", {"user_id": "u", "org": "alpha"}, "permission"),
        ("/authorize", {"user_id": "u", "org": 7, "permission": "org:read"}, "org"),
        ("/authorize", {"user_id": "u", "org": "", "permission": "org:read"}, "org"),
        ("/authorize", {"user_id": None, "org": "alpha", "permission": "org:read"}, "user_id"),
        ("/authorize/batch", {}, "checks"),
        ("/authorize/batch", {"checks": {"user_id": "u"}}, "checks"),
        ("/authorize/batch", {"checks": [{"user_id": "u", "org": "alpha"}]}, "checks"),
        ("/authorize/batch", {"checks": ["org:read"]}, "checks"),
    ],
)
def test_malformed_bodies_are_validation_errors(
    client: FlaskClient, people: People, root_key: str, path: str, body: Any, field: str
) -> None:
    response = client.post(f"/api/v1{path}", json=body, headers=auth(root_key))
    assert response.status_code == 400, response.json
    assert response.json["error"] == "validation_error"
    assert field in response.json["fields"]


def test_a_key_is_required(client: FlaskClient, people: People) -> None:
    body = {"user_id": people.owner, "org": "alpha", "permission": "org:read"}
    response = client.post("/api/v1/authorize", json=body)
    assert response.status_code == 401 and response.json["error"] == "unauthorized"
