"""Teams: nesting, members, leads, and their audit events."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.db import db
from idp.errors import BadRequest, Conflict, NotFound
from idp.orgs import services, teams
from tests.builders import make_member, make_org

SYSTEM = system_actor()


def test_nesting_and_cycles(app: Flask) -> None:
    org = make_org("acme")
    dept = teams.create_team(SYSTEM, org, name="Engineering")
    team = teams.create_team(SYSTEM, org, name="Platform", parent_id=dept.id)
    leaf = teams.create_team(SYSTEM, org, name="Storage", parent_id=team.id)
    assert leaf.parent_id == team.id
    with pytest.raises(BadRequest, match="itself"):
        teams.update_team(SYSTEM, org, dept.id, parent_id=leaf.id)
    with pytest.raises(BadRequest):
        teams.update_team(SYSTEM, org, dept.id, parent_id=dept.id)
    teams.update_team(SYSTEM, org, leaf.id, parent_id=None, name="Storage team")
    assert (leaf.parent_id, leaf.name) == (None, "Storage team")
    with pytest.raises(Conflict):
        teams.delete_team(SYSTEM, org, dept.id)
    teams.delete_team(SYSTEM, org, team.id)
    teams.delete_team(SYSTEM, org, dept.id)
    assert [t.id for t in teams.list_teams(org.id).items] == [leaf.id]


def test_depth_is_bounded(app: Flask) -> None:
    org = make_org("acme")
    parent = None
    for depth in range(teams.MAX_DEPTH):
        parent = teams.create_team(SYSTEM, org, name=f"t{depth}", parent_id=parent and parent.id)
    with pytest.raises(BadRequest, match="nest"):
        teams.create_team(SYSTEM, org, name="too deep", parent_id=parent.id)


def test_parent_from_another_org_is_not_found(app: Flask) -> None:
    org, other = make_org("acme"), make_org("other")
    theirs = teams.create_team(SYSTEM, other, name="Theirs")
    with pytest.raises(NotFound):
        teams.create_team(SYSTEM, org, name="Mine", parent_id=theirs.id)
    with pytest.raises(NotFound):
        teams.get_team(org.id, theirs.id)


def test_members_and_leads(app: Flask) -> None:
    org = make_org("acme")
    team = teams.create_team(SYSTEM, org, name="Eng")
    m = make_member(org, "m@x.example")
    outsider = make_member(make_org("other"), "o@x.example")
    teams.add_team_member(SYSTEM, org, team.id, m.user_id)
    with pytest.raises(Conflict):
        teams.add_team_member(SYSTEM, org, team.id, m.user_id)
    with pytest.raises(NotFound):
        teams.add_team_member(SYSTEM, org, team.id, outsider.user_id)
    assert teams.set_team_lead(SYSTEM, org, team.id, m.user_id, True).is_lead
    teams.remove_team_member(SYSTEM, org, team.id, m.user_id)
    with pytest.raises(NotFound):
        teams.remove_team_member(SYSTEM, org, team.id, m.user_id)


def test_leaving_the_org_leaves_its_teams(app: Flask) -> None:
    org = make_org("acme")
    team = teams.create_team(SYSTEM, org, name="Eng")
    m = make_member(org, "m@x.example")
    teams.add_team_member(SYSTEM, org, team.id, m.user_id, is_lead=True)
    services.remove_member(SYSTEM, org, m.user_id)
    db.session.commit()
    assert teams.list_team_members(org.id, team.id).items == []


def test_team_events(app: Flask) -> None:
    org = make_org("acme")
    team = teams.create_team(SYSTEM, org, name="Eng")
    m = make_member(org, "m@x.example")
    teams.update_team(SYSTEM, org, team.id, name="Engineering")
    teams.update_team(SYSTEM, org, team.id, name="Engineering")  # unchanged: no event
    teams.add_team_member(SYSTEM, org, team.id, m.user_id)
    teams.set_team_lead(SYSTEM, org, team.id, m.user_id, True)
    teams.remove_team_member(SYSTEM, org, team.id, m.user_id)
    teams.delete_team(SYSTEM, org, team.id)
    db.session.commit()
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_type == "team").order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "team.created",
        "team.updated",
        "team.member_added",
        "team.lead_changed",
        "team.member_removed",
        "team.deleted",
    ]


def test_an_org_can_turn_departments_off_and_keep_a_flat_structure(
    client: FlaskClient, root_key: str
) -> None:
    make_org("acme")
    h = {"Authorization": f"Bearer {root_key}"}
    dept = client.post("/api/v1/orgs/acme/teams", json={"name": "Engineering"}, headers=h).json
    sub = client.post(
        "/api/v1/orgs/acme/teams", json={"name": "Platform", "parent_id": dept["id"]}, headers=h
    ).json
    off = client.patch("/api/v1/orgs/acme", json={"nested_teams": False}, headers=h)
    assert off.status_code == 409 and off.json["error"] == "teams_nested"
    assert off.json["nested"] == 1
    flat = client.patch(f"/api/v1/orgs/acme/teams/{sub['id']}", json={"parent_id": None}, headers=h)
    assert flat.status_code == 200, flat.json
    off = client.patch("/api/v1/orgs/acme", json={"nested_teams": False}, headers=h)
    assert off.status_code == 200 and off.json["nested_teams"] is False
    refused = client.post(
        "/api/v1/orgs/acme/teams", json={"name": "SRE", "parent_id": dept["id"]}, headers=h
    )
    assert refused.status_code == 400 and refused.json["error"] == "nested_teams_off"
    moved = client.patch(
        f"/api/v1/orgs/acme/teams/{sub['id']}", json={"parent_id": dept["id"]}, headers=h
    )
    assert moved.status_code == 400 and moved.json["error"] == "nested_teams_off"
    bad = client.patch("/api/v1/orgs/acme", json={"nested_teams": "no"}, headers=h)
    assert bad.status_code == 400 and bad.json["error"] == "validation_error"
