"""/Groups over HTTP: groups are teams, members are the org's users, changes in bulk."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.db import db
from idp.orgs import services, teams
from idp.orgs.models import Team, TeamMember, TeamSource
from tests.builders import workspace
from tests.scim.conftest import Scim, group_body, make_scim, user_body
from tests.scim.test_users import error

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def users(scim: Scim, count: int) -> list[str]:
    return [scim("POST", "/Users", user_body(f"u{i}@example.com")).json["id"] for i in range(count)]


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def member_ids(scim: Scim, group_id: str) -> list[str]:
    return [m["value"] for m in scim("GET", f"/Groups/{group_id}").json.get("members", [])]


def test_a_group_is_a_team_with_members(scim: Scim) -> None:
    ids = users(scim, 2)
    response = scim("POST", "/Groups", group_body("Engineering", ids, externalId="00g1"))
    assert response.status_code == 201, response.json
    group = response.json
    assert group["displayName"] == "Engineering" and group["externalId"] == "00g1"
    assert sorted(m["value"] for m in group["members"]) == sorted(ids)
    assert group["members"][0]["$ref"].endswith(f"/Users/{group['members'][0]['value']}")
    team = db.session.get(Team, group["id"])
    assert team.source is TeamSource.SCIM and team.name == "Engineering"
    user = scim("GET", f"/Users/{ids[0]}").json
    assert user["groups"] == [
        {
            "value": group["id"],
            "$ref": group["meta"]["location"],
            "display": "Engineering",
            "type": "direct",
        }
    ]


def test_members_from_another_org_are_refused(client: FlaskClient, scim: Scim) -> None:
    other = make_scim(client, "globex")
    theirs = other("POST", "/Users", user_body("eve@example.com")).json["id"]
    error(scim("POST", "/Groups", group_body("Eng", [theirs])), 400, "invalidValue")
    group = scim("POST", "/Groups", group_body("Eng")).json
    add = patch({"op": "add", "path": "members", "value": [{"value": theirs}]})
    error(scim("PATCH", f"/Groups/{group['id']}", add), 400, "invalidValue")
    assert member_ids(scim, group["id"]) == []


def test_patch_members_add_remove_replace(scim: Scim) -> None:
    a, b, c = users(scim, 3)
    group = scim("POST", "/Groups", group_body("Eng", [a])).json
    path = f"/Groups/{group['id']}"
    ok = scim(
        "PATCH",
        path,
        patch({"op": "add", "path": "members", "value": [{"value": b}, {"value": c}]}),
    )
    assert ok.status_code == 204
    assert sorted(member_ids(scim, group["id"])) == sorted([a, b, c])
    scim("PATCH", path, patch({"op": "remove", "path": f'members[value eq "{b}"]'}))
    assert sorted(member_ids(scim, group["id"])) == sorted([a, c])
    scim("PATCH", path, patch({"op": "replace", "path": "members", "value": [{"value": b}]}))
    assert member_ids(scim, group["id"]) == [b]
    scim("PATCH", path, patch({"op": "remove", "path": "members"}))
    assert member_ids(scim, group["id"]) == []
    renamed = scim("PATCH", path, patch({"op": "replace", "value": {"displayName": "Platform"}}))
    assert renamed.status_code == 204
    assert scim("GET", path).json["displayName"] == "Platform"
    assert scim("GET", path).json["meta"]["version"] != group["meta"]["version"]


def test_listing_without_members_does_not_load_them(scim: Scim) -> None:
    ids = users(scim, 3)
    scim("POST", "/Groups", group_body("Eng", ids))
    scim("POST", "/Groups", group_body("Ops", ids[:1]))
    listed = scim("GET", "/Groups", excludedAttributes="members").json
    assert listed["totalResults"] == 2
    assert all("members" not in g for g in listed["Resources"])
    found = scim("GET", "/Groups", filter='displayName eq "eng"').json["Resources"]
    assert [g["displayName"] for g in found] == ["Eng"] and len(found[0]["members"]) == 3


def test_put_replaces_name_and_members(scim: Scim) -> None:
    a, b = users(scim, 2)
    group = scim("POST", "/Groups", group_body("Eng", [a])).json
    replaced = scim("PUT", f"/Groups/{group['id']}", group_body("Engineering", [b]))
    assert replaced.status_code == 200, replaced.json
    assert replaced.json["displayName"] == "Engineering"
    assert [m["value"] for m in replaced.json["members"]] == [b]


def test_delete_group_keeps_the_users(scim: Scim) -> None:
    ids = users(scim, 2)
    group = scim("POST", "/Groups", group_body("Eng", ids)).json
    assert scim("DELETE", f"/Groups/{group['id']}").status_code == 204
    error(scim("GET", f"/Groups/{group['id']}"), 404)
    assert db.session.scalar(select(func.count()).select_from(TeamMember)) == 0
    assert all(scim("GET", f"/Users/{i}").status_code == 200 for i in ids)


def test_admin_teams_are_not_scim_groups(scim: Scim) -> None:
    org = services.get_org(workspace().id, "acme")
    team = teams.create_team(system_actor(), org, name="Hand-made")
    db.session.commit()
    assert scim("GET", "/Groups").json["totalResults"] == 0
    error(scim("GET", f"/Groups/{team.id}"), 404)


def test_external_id_is_the_idps_and_not_enforced_unique(client: FlaskClient, scim: Scim) -> None:
    """RFC 7643 §3.1: "the server does not enforce uniqueness" of an externalId."""
    scim("POST", "/Groups", group_body("Eng", externalId="00g1"))
    assert scim("POST", "/Groups", group_body("Eng 2", externalId="00g1")).status_code == 201
    other = make_scim(client, "globex")
    assert other("POST", "/Groups", group_body("Eng", externalId="00g1")).status_code == 201


def test_filter_by_members_and_by_groups(scim: Scim) -> None:
    a, b = users(scim, 2)
    eng = scim("POST", "/Groups", group_body("Eng", [a])).json
    scim("POST", "/Groups", group_body("Ops", [b]))
    found = scim("GET", "/Groups", filter=f'members[value eq "{a}"]').json["Resources"]
    assert [g["id"] for g in found] == [eng["id"]]
    assert scim("GET", "/Groups", filter=f'members eq "{b}"').json["totalResults"] == 1
    in_eng = scim("GET", "/Users", filter=f'groups.value eq "{eng["id"]}"').json["Resources"]
    assert [u["id"] for u in in_eng] == [a]
