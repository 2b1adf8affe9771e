"""Teams as principals: a team's own API key (for CI/CD) manages the team's members and acts
with what the team was granted, and nothing else in the org; team leads manage their own
team's members."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.actors import Actor, ActorKind
from idp.credentials.models import ApiKey
from idp.crypto import token_digest
from idp.db import db
from idp.errors import Forbidden
from idp.orgs import teams
from idp.orgs.models import Organization
from idp.orgs.roles import Role
from tests.builders import auth, make_key, make_member, make_org
from tests.resources.test_scopes import Api, declare, resource


@pytest.fixture
def setup(client: FlaskClient, root_key: str) -> dict[str, Any]:
    root = Api(client, root_key)
    declare(root)
    org = make_org("acme")
    make_member(org, "owner@acme.example", Role.OWNER)
    people = {n: make_member(org, f"{n}@acme.example").user_id for n in ("ann", "bob", "cy")}
    resource(root, "acme", "tenant", "t1")
    resource(root, "acme", "project", "p1", "t1")
    resource(root, "acme", "project", "p2", "t1")
    ci = root("POST", "/orgs/acme/teams", {"name": "CI"}, 201)["id"]
    other = root("POST", "/orgs/acme/teams", {"name": "Other"}, 201)["id"]
    root(
        "POST",
        "/orgs/acme/resources/project/p1/members",
        {"team_id": ci, "role": "project_developer"},
        201,
    )
    made = root("POST", f"/orgs/acme/teams/{ci}/api-keys", {"name": "deploy"}, 201)
    return {"org": org, "root": root, "ci": ci, "other": other, "key": made, **people}


def test_a_team_key_is_shown_once_stored_hashed_and_holds_no_org_role(
    setup: dict[str, Any],
) -> None:
    made = setup["key"]
    assert made["team_id"] == setup["ci"] and made["role"] is None and made["key"]
    stored = db.session.scalar(select(ApiKey).where(ApiKey.id == made["id"]))
    assert stored.token_digest == token_digest(made["key"]) and made["key"] not in str(vars(stored))
    key = Api(setup["root"].client, made["key"])
    for path in (
        "/orgs/acme",
        "/orgs/acme/members",
        "/orgs/acme/resources",
        f"/orgs/acme/teams/{setup['other']}/members",
    ):
        key("GET", path, status=404)  # outside its team it holds nothing in the org
    assert key("GET", f"/orgs/acme/teams/{setup['ci']}")["name"] == "CI"
    key("PATCH", f"/orgs/acme/teams/{setup['ci']}", {"name": "Renamed"}, status=403)
    key("POST", f"/orgs/acme/teams/{setup['ci']}/api-keys", {"name": "more"}, status=403)


def test_a_team_key_manages_its_teams_members_but_makes_no_leads(setup: dict[str, Any]) -> None:
    key = Api(setup["root"].client, setup["key"]["key"])
    ci, other = setup["ci"], setup["other"]
    key("POST", f"/orgs/acme/teams/{ci}/members", {"user_id": setup["ann"]}, 201)
    members = key("GET", f"/orgs/acme/teams/{ci}/members")["data"]
    assert [m["user_id"] for m in members] == [setup["ann"]]
    refused = key(
        "POST",
        f"/orgs/acme/teams/{ci}/members",
        {"user_id": setup["bob"], "is_lead": True},
        status=403,
    )
    assert refused["error"] == "forbidden"
    key("POST", f"/orgs/acme/teams/{other}/members", {"user_id": setup["bob"]}, status=404)
    key("DELETE", f"/orgs/acme/teams/{ci}/members/{setup['ann']}", status=204)


def test_a_team_acts_with_what_it_was_granted(setup: dict[str, Any]) -> None:
    root = setup["root"]

    def team_may(permission: str, project: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"team_id": setup["ci"], "org": "acme", "permission": permission}
        if project:
            body["resource"] = {"type": "project", "id": project}
        return root("POST", "/authorize", body)

    assert team_may("projects:deploy", "p1")["allowed"] is True
    assert team_may("projects:deploy", "p1")["scope"] == {"type": "project", "id": "p1"}
    assert team_may("projects:deploy", "p2")["allowed"] is False
    assert team_may("projects:admin", "p1")["allowed"] is False
    assert team_may("projects:deploy", None)["reason"] == "permission_not_in_role"
    beta = make_org("beta")
    beta_key = Api(root.client, make_key(beta, Role.OWNER))
    body = {
        "team_id": setup["ci"],
        "org": "acme",
        "permission": "projects:deploy",
        "resource": {"type": "project", "id": "p1"},
    }
    assert beta_key("POST", "/authorize", body)["reason"] == "unknown_team"
    both = root.client.post(
        "/api/v1/authorize", headers=auth(root.key), json={**body, "user_id": setup["ann"]}
    )
    assert both.status_code == 400 and both.json["error"] == "validation_error"


def lead_actor(org: Organization, user_id: str) -> Actor:
    return Actor(
        ActorKind.USER,
        user_id,
        "lead",
        user_id=user_id,
        org_id=org.id,
        role=Role.MEMBER,
        workspace_id=org.workspace_id,
    )


def test_team_leads_manage_their_own_teams_members_only(setup: dict[str, Any]) -> None:
    org, ci, other = setup["org"], setup["ci"], setup["other"]
    root = setup["root"]
    root("POST", f"/orgs/acme/teams/{ci}/members", {"user_id": setup["ann"], "is_lead": True}, 201)
    root("POST", f"/orgs/acme/teams/{ci}/members", {"user_id": setup["cy"]}, 201)
    db.session.rollback()
    ann = lead_actor(org, setup["ann"])
    teams.add_team_member(ann, org, ci, setup["bob"])
    teams.remove_team_member(ann, org, ci, setup["cy"])
    db.session.commit()
    assert sorted(
        m.membership.user_id for m in teams.list_team_members(org.id, ci).items
    ) == sorted([setup["ann"], setup["bob"]])
    with pytest.raises(Forbidden):
        teams.add_team_member(ann, org, other, setup["cy"])  # not her team
    with pytest.raises(Forbidden):
        teams.add_team_member(ann, org, ci, setup["cy"], is_lead=True)  # no new leads
    with pytest.raises(Forbidden):
        teams.add_team_member(lead_actor(org, setup["bob"]), org, ci, setup["cy"])  # no lead
