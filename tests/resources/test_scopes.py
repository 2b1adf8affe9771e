"""Roles at scopes below the org, through the admin API: tenants and projects, members and
teams granted roles there, the decision walking up, the lookup, and the scope rules one by
one; another org's resources are never visible nor usable."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.db import db
from idp.orgs.models import Organization
from idp.orgs.roles import Role
from idp.resources.models import Resource, ResourceGrant, ResourceType
from tests.builders import auth, make_key, make_member, make_org

TYPES = [
    {
        "key": "tenant",
        "roles": [
            {
                "key": "tenant_admin",
                "permissions": ["tenants:manage", "projects:deploy", "projects:view"],
            },
            {"key": "tenant_member", "permissions": ["projects:view"]},
        ],
    },
    {
        "key": "project",
        "parent": "tenant",
        "invite_outsiders": True,  # a project's invitations may go to people outside the org
        "roles": [
            {
                "key": "project_admin",
                "permissions": ["projects:deploy", "projects:view", "projects:admin"],
            },
            {"key": "project_developer", "permissions": ["projects:deploy", "projects:view"]},
            {"key": "project_viewer", "permissions": ["projects:view"]},
        ],
    },
]


class Api:
    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client, self.key = client, key

    def __call__(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        answer = self.client.open(
            f"/api/v1{path}", method=method, json=body, headers=auth(self.key)
        )
        assert answer.status_code == status, (method, path, answer.status_code, answer.json)
        return answer.json


def declare(root: Api) -> None:
    for key in ("tenants:manage", "projects:deploy", "projects:view", "projects:admin"):
        root("POST", "/permissions", {"key": key}, 201)
    for kind in TYPES:
        root("POST", "/resource-types", kind, 201)


def resource(api: Api, slug: str, kind: str, rid: str, parent: str | None = None) -> None:
    body: dict[str, Any] = {"type": kind, "id": rid, "name": rid.upper()}
    if parent:
        body["parent"] = {"type": "tenant", "id": parent}
    api("POST", f"/orgs/{slug}/resources", body, 201)


@pytest.fixture
def acme(client: FlaskClient, root_key: str) -> dict[str, Any]:
    """Tenants t1 (projects p1, p2) and t2 (p3); Ann, Bob, and Carl on the Platform team."""
    root = Api(client, root_key)
    declare(root)
    org = make_org("acme")
    people = {
        name: make_member(org, f"{name}@acme.example").user_id for name in ("ann", "bob", "carl")
    }
    make_member(org, "owner@acme.example", Role.OWNER)
    for tenant in ("t1", "t2"):
        resource(root, "acme", "tenant", tenant)
    for project, tenant in (("p1", "t1"), ("p2", "t1"), ("p3", "t2")):
        resource(root, "acme", "project", project, tenant)
    team = root("POST", "/orgs/acme/teams", {"name": "Platform"}, 201)["id"]
    root("POST", f"/orgs/acme/teams/{team}/members", {"user_id": people["carl"]}, 201)
    return {"org": org, "root": root, "team": team, **people}


def decide(root: Api, user: str, permission: str, target: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user, "org": "acme", "permission": permission}
    if target:
        kind = "tenant" if target.startswith("t") else "project"
        body["resource"] = {"type": kind, "id": target}
    return root("POST", "/authorize", body)


def grant(root: Api, target: str, role: str, **principal: str) -> None:
    kind = "tenant" if target.startswith("t") else "project"
    root("POST", f"/orgs/acme/resources/{kind}/{target}/members", {"role": role, **principal}, 201)


def allowed(root: Api, user: str, permission: str, targets: list[str]) -> list[str]:
    return [t for t in targets if decide(root, user, permission, t)["allowed"]]


ALL = ["t1", "t2", "p1", "p2", "p3"]


def test_a_project_role_holds_on_that_project_only_and_never_org_wide(acme: dict[str, Any]) -> None:
    root, ann = acme["root"], acme["ann"]
    grant(root, "p1", "project_developer", user_id=ann)
    assert allowed(root, ann, "projects:deploy", ALL) == ["p1"]
    assert decide(root, ann, "projects:deploy", "p1") == {
        "allowed": True,
        "role": "project_developer",
        "reason": "granted",
        "scope": {"type": "project", "id": "p1"},
    }
    assert decide(root, ann, "projects:deploy")["allowed"] is False  # not at the org itself
    assert decide(root, ann, "projects:admin", "p1")["reason"] == "permission_not_in_role"


def test_a_tenant_role_holds_on_every_project_in_it(acme: dict[str, Any]) -> None:
    root, bob = acme["root"], acme["bob"]
    grant(root, "t1", "tenant_admin", user_id=bob)
    assert allowed(root, bob, "projects:deploy", ALL) == ["t1", "p1", "p2"]
    assert decide(root, bob, "projects:deploy", "p2")["scope"] == {"type": "tenant", "id": "t1"}
    # Removed from the tenant: the org membership stays, the tenant's access goes.
    root("DELETE", f"/orgs/acme/resources/tenant/t1/members/{bob}", status=204)
    assert allowed(root, bob, "projects:deploy", ALL) == []
    assert decide(root, bob, "org:read")["allowed"] is True


def test_a_team_granted_a_role_passes_it_to_its_members(acme: dict[str, Any]) -> None:
    root, carl = acme["root"], acme["carl"]
    grant(root, "p3", "project_viewer", team_id=acme["team"])
    assert allowed(root, carl, "projects:view", ALL) == ["p3"]
    assert allowed(root, carl, "projects:deploy", ALL) == []
    assert allowed(root, acme["ann"], "projects:view", ALL) == []  # not on the team
    members = root("GET", "/orgs/acme/resources/project/p3/members")["data"]
    assert members == [
        {"user_id": None, "team_id": acme["team"], "role": "project_viewer", "mapping_id": None}
    ]


def test_removing_a_member_from_the_org_removes_every_grant_below_it(
    acme: dict[str, Any],
) -> None:
    root, ann = acme["root"], acme["ann"]
    grant(root, "t2", "tenant_member", user_id=ann)
    grant(root, "p1", "project_admin", user_id=ann)
    root("DELETE", f"/orgs/acme/members/{ann}", status=204)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ResourceGrant)) == 0
    assert decide(root, ann, "projects:view", "p1")["reason"] == "not_a_member"


def test_grants_go_to_members_of_the_org_only(acme: dict[str, Any]) -> None:
    root = acme["root"]
    beta = make_org("beta")
    outsider = make_member(beta, "out@beta.example").user_id
    refused = root.client.post(
        "/api/v1/orgs/acme/resources/tenant/t1/members",
        json={"user_id": outsider, "role": "tenant_member"},
        headers=auth(root.key),
    )
    assert refused.status_code == 404 and refused.json["error"] == "member_not_found"


def test_the_lookup_lists_the_resources_a_person_may_act_on(acme: dict[str, Any]) -> None:
    root, ann, bob = acme["root"], acme["ann"], acme["bob"]
    grant(root, "p1", "project_developer", user_id=ann)
    grant(root, "t1", "tenant_member", user_id=bob)

    def lookup(user: str, permission: str, **extra: Any) -> Any:
        body = {"user_id": user, "org": "acme", "permission": permission, "type": "project"}
        return root("POST", "/authorize/resources", {**body, **extra})

    assert [r["id"] for r in lookup(ann, "projects:deploy")["data"]] == ["p1"]
    assert [r["id"] for r in lookup(bob, "projects:view")["data"]] == ["p1", "p2"]
    assert lookup(bob, "projects:deploy")["data"] == []
    owner = next(
        m["user_id"] for m in root("GET", "/orgs/acme/members")["data"] if m["role"] == "owner"
    )
    first = lookup(owner, "projects:deploy", limit=2)  # the org role holds it: every project
    assert [r["id"] for r in first["data"]] == ["p1", "p2"] and first["next_cursor"]
    rest = lookup(owner, "projects:deploy", limit=2, cursor=first["next_cursor"])
    assert [r["id"] for r in rest["data"]] == ["p3"]
    assert rest["data"][0]["parent"] == {"type": "tenant", "id": "t2"}


def test_batch_decisions_take_resources(acme: dict[str, Any]) -> None:
    root, ann = acme["root"], acme["ann"]
    grant(root, "p1", "project_viewer", user_id=ann)
    checks = [
        {
            "user_id": ann,
            "org": "acme",
            "permission": "projects:view",
            "resource": {"type": "project", "id": p},
        }
        for p in ("p1", "p2", "nope")
    ]
    results = root("POST", "/authorize/batch", {"checks": checks})["results"]
    assert [(r["allowed"], r["reason"]) for r in results] == [
        (True, "granted"),
        (False, "permission_not_in_role"),
        (False, "unknown_resource"),
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "project", "id": "px"}, "parent_required"),
        (
            {"type": "project", "id": "px", "parent": {"type": "project", "id": "p1"}},
            "wrong_parent_type",
        ),
        (
            {"type": "project", "id": "px", "parent": {"type": "tenant", "id": "nope"}},
            "unknown_parent",
        ),
        (
            {"type": "tenant", "id": "tx", "parent": {"type": "tenant", "id": "t1"}},
            "unexpected_parent",
        ),
        ({"type": "galaxy", "id": "g1"}, "unknown_resource_type"),
        ({"type": "tenant", "id": "bad id/"}, "invalid_resource_id"),
        ({"type": "tenant", "id": "tx", "name": "T\u200bX"}, "invalid_name"),
    ],
)
def test_bad_resources_are_refused_and_nothing_is_stored(
    acme: dict[str, Any], body: dict[str, Any], code: str
) -> None:
    root = acme["root"]
    before = db.session.scalar(select(func.count()).select_from(Resource))
    answer = root.client.post("/api/v1/orgs/acme/resources", json=body, headers=auth(root.key))
    assert answer.status_code == 400 and answer.json["error"] == code, answer.json
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Resource)) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"key": "env", "parent": "env", "roles": [{"key": "x", "permissions": []}]}, "type_cycle"),
        (
            {"key": "env", "roles": [{"key": "x", "permissions": ["projects:fly"]}]},
            "unknown_permission",
        ),
        (
            {"key": "env", "parent": "galaxy", "roles": [{"key": "x", "permissions": []}]},
            "unknown_resource_type",
        ),
        ({"key": "env", "roles": []}, "invalid_roles"),
    ],
)
def test_bad_resource_types_are_refused(
    acme: dict[str, Any], body: dict[str, Any], code: str
) -> None:
    root = acme["root"]
    answer = root.client.post("/api/v1/resource-types", json=body, headers=auth(root.key))
    assert answer.status_code == 400 and answer.json["error"] == code, answer.json
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ResourceType)) == 2


def test_another_orgs_resources_are_never_visible_nor_usable(acme: dict[str, Any]) -> None:
    root = acme["root"]
    beta: Organization = make_org("beta")
    bee = make_member(beta, "bee@beta.example").user_id
    beta_key = Api(root.client, make_key(beta, Role.OWNER))
    assert (
        root.client.get("/api/v1/orgs/acme/resources", headers=auth(beta_key.key)).status_code
        == 404
    )
    listed = beta_key("GET", "/orgs/beta/resources")
    assert listed["data"] == []
    # Beta cannot see, place under, nor grant on acme's tenant.
    beta_key("GET", "/orgs/beta/resources/tenant/t1", status=404)
    refused = beta_key(
        "POST",
        "/orgs/beta/resources",
        {"type": "project", "id": "px", "parent": {"type": "tenant", "id": "t1"}},
        status=400,
    )
    assert refused["error"] == "unknown_parent"
    beta_key(
        "POST",
        "/orgs/beta/resources/tenant/t1/members",
        {"user_id": bee, "role": "tenant_admin"},
        status=404,
    )
    # Beta's key asking about acme's people and resources learns nothing.
    body = {
        "user_id": acme["ann"],
        "org": "acme",
        "permission": "projects:view",
        "resource": {"type": "project", "id": "p1"},
    }
    assert beta_key("POST", "/authorize", body)["reason"] == "not_a_member"
    lookup = {
        "user_id": acme["ann"],
        "org": "acme",
        "permission": "projects:view",
        "type": "project",
    }
    assert beta_key("POST", "/authorize/resources", lookup)["data"] == []


def test_resources_through_the_cli(runner: Any) -> None:
    org = make_org("acme")
    ann = make_member(org, "ann@acme.example").user_id
    assert runner.invoke(args=["permission", "create", "projects:view"]).exit_code == 0
    for args in (
        ["resource", "type-create", "tenant", "--role", "tenant_member=projects:view"],
        [
            "resource",
            "type-create",
            "project",
            "--parent",
            "tenant",
            "--role",
            "viewer=projects:view",
        ],
        ["resource", "create", "acme", "tenant", "t1", "--name", "One"],
        ["resource", "create", "acme", "project", "p1", "--parent", "tenant:t1"],
        ["resource", "grant", "acme", "tenant", "t1", "--role", "tenant_member", "--user", ann],
    ):
        done = runner.invoke(args=args)
        assert done.exit_code == 0, (args, done.output)
    listed = runner.invoke(args=["resource", "list", "acme"]).output.splitlines()
    assert listed == ["tenant\tt1\tOne", "project\tp1\t"]
    assert db.session.scalar(select(func.count()).select_from(ResourceGrant)) == 1
    orphan = runner.invoke(args=["resource", "create", "acme", "project", "p2"])
    assert orphan.exit_code == 1 and "parent_required" in orphan.stderr


def token_of(sent: dict[str, Any]) -> str:
    return parse_qs(urlsplit(sent["url"]).query)["token"][0]


def invite(root: Api, email: str, target: str, role: str, status: int = 201) -> Any:
    kind = "tenant" if target.startswith("t") else "project"
    body = {"email": email, "resource": {"type": kind, "id": target}, "resource_role": role}
    return root("POST", "/orgs/acme/invitations", body, status)


def test_invited_to_a_project_only_a_newcomer_gains_no_org_wide_access(
    acme: dict[str, Any], client: FlaskClient
) -> None:
    root = acme["root"]
    root("POST", "/permissions", {"key": "tunnels:use", "granted_from": "member"}, 201)
    sent = invite(root, "dev@outside.example", "p1", "project_developer")
    assert sent["resource"] == {"type": "project", "id": "p1"}
    assert sent["resource_role"] == "project_developer" and sent["role"] == "guest"
    joined = client.post("/api/v1/invitations/accept", json={"token": token_of(sent)}).json
    dev = joined["user_id"]
    assert joined["role"] == "guest"
    assert allowed(root, dev, "projects:deploy", ALL) == ["p1"]
    for org_wide in ("org:read", "teams:read", "tunnels:use", "projects:deploy"):
        assert decide(root, dev, org_wide)["allowed"] is False, org_wide
    assert decide(root, acme["ann"], "tunnels:use")["allowed"] is True  # members hold it


def test_tenant_invitations_go_to_the_orgs_members_only(
    acme: dict[str, Any], client: FlaskClient
) -> None:
    root, bob = acme["root"], acme["bob"]
    refused = invite(root, "new@outside.example", "t1", "tenant_admin", status=409)
    assert refused["error"] == "invitation_needs_member"
    sent = invite(root, "bob@acme.example", "t1", "tenant_admin")
    accepted = client.post("/api/v1/invitations/accept", json={"token": token_of(sent)})
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["user_id"] == bob and accepted.json["role"] == "member"  # unchanged
    assert allowed(root, bob, "tenants:manage", ALL) == ["t1", "p1", "p2"]  # and below it
    # Sent to a member who is removed before accepting: it cannot bring them back.
    later = invite(root, "ann@acme.example", "t2", "tenant_member")
    root("DELETE", f"/orgs/acme/members/{acme['ann']}", status=204)
    gone = client.post("/api/v1/invitations/accept", json={"token": token_of(later)})
    assert gone.status_code == 409 and gone.json["error"] == "invitation_needs_member"


def test_bad_resource_invitations_are_refused(acme: dict[str, Any]) -> None:
    root = acme["root"]
    assert invite(root, "x@acme.example", "p9", "project_viewer", 404)["error"] == (
        "resource_not_found"
    )
    assert invite(root, "x@acme.example", "p1", "tenant_admin", 400)["error"] == "unknown_role"
    both = root(
        "POST",
        "/orgs/acme/invitations",
        {
            "email": "x@acme.example",
            "role": "admin",
            "resource": {"type": "project", "id": "p1"},
            "resource_role": "project_viewer",
        },
        400,
    )
    assert both["error"] == "validation_error"
    alone = root(
        "POST",
        "/orgs/acme/invitations",
        {"email": "x@acme.example", "resource_role": "project_viewer"},
        400,
    )
    assert alone["error"] == "resource_required"
