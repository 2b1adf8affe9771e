"""Setting up an org's provisioning: SCIM tokens and role mappings, from the CLI and the admin
API; and what listing groups costs the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import event, select

from idp.credentials.models import ScimToken
from idp.db import db
from idp.orgs import services
from idp.orgs.models import Membership
from idp.orgs.roles import Role
from tests.builders import auth, make_key, make_member, make_org, workspace
from tests.scim.conftest import Scim, group_body, make_scim, user_body
from tests.test_cli import fails, ok

TOKEN = re.compile(r"^ghs_[A-Za-z0-9_-]{40,}$")
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def users_status(client: FlaskClient, slug: str, token: str) -> int:
    """What a SCIM client holding ``token`` gets from ``/scim/v2/<slug>/Users``."""
    response = client.get(f"/scim/v2/{slug}/Users", headers=auth(token))
    if response.status_code == 401:
        assert response.json["schemas"] == [ERROR] and response.json["status"] == "401"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return response.status_code


def role_of(scim_id: str) -> Role:
    db.session.expire_all()
    return db.session.get(Membership, scim_id).role


# --- scim-token (CLI) --------------------------------------------------------------------


def test_scim_token_create_prints_only_a_token_for_that_org(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    make_org("acme")
    make_org("globex")

    result = ok(runner, "scim-token", "create", "acme")

    [token] = result.stdout.splitlines()
    assert TOKEN.match(token), result.stdout
    assert result.stdout == token + "\n" and token not in result.stderr
    assert users_status(client, "acme", token) == 200
    assert users_status(client, "globex", token) == 401
    stored = db.session.scalar(select(ScimToken))
    assert (stored.name, stored.hint, stored.created_by) == ("scim", token[-4:], "cli")
    assert token not in (stored.token_digest, stored.hint)


def test_scim_token_list_and_revoke(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    make_org("acme")
    make_org("globex")
    token = ok(runner, "scim-token", "create", "acme", "--name", "okta").stdout.strip()
    other = ok(runner, "scim-token", "create", "globex").stdout.strip()

    [before] = ok(runner, "scim-token", "list", "acme").stdout.splitlines()
    token_id, name, hint, used, state = before.split("\t")
    assert token_id.startswith("scim_") and (name, hint, used, state) == (
        "okta",
        f"...{token[-4:]}",
        "never",
        "active",
    )
    assert token not in before
    assert users_status(client, "acme", token) == 200
    [after_use] = ok(runner, "scim-token", "list", "acme").stdout.splitlines()
    assert after_use.split("\t")[3] != "never"

    assert (
        "scim_token_not_found" in fails(runner, "scim-token", "revoke", "globex", token_id).stderr
    )
    assert users_status(client, "acme", token) == 200
    assert ok(runner, "scim-token", "revoke", "acme", token_id).stdout == ""

    assert users_status(client, "acme", token) == 401
    [revoked] = ok(runner, "scim-token", "list", "acme").stdout.splitlines()
    assert revoked.split("\t")[0] == token_id and revoked.endswith("\trevoked")
    assert "already_revoked" in fails(runner, "scim-token", "revoke", "acme", token_id).stderr
    assert users_status(client, "globex", other) == 200  # another org's token is untouched
    assert "org_not_found" in fails(runner, "scim-token", "create", "nope").stderr


# --- SCIM tokens (admin API) -------------------------------------------------------------


def test_scim_tokens_through_the_admin_api(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    make_org("globex")
    base = "/api/v1/orgs/acme/scim-tokens"

    created = client.post(base, json={"name": "entra"}, headers=auth(root_key))

    assert created.status_code == 201, created.json
    body = created.json
    token = body["token"]
    assert TOKEN.match(token) and body["hint"] == token[-4:] and body["name"] == "entra"
    assert body["scim_base_url"] == "http://gatehouse.test/scim/v2/acme"
    assert users_status(client, "acme", token) == 200
    assert users_status(client, "globex", token) == 401
    scim_url = body["scim_base_url"].removeprefix("http://gatehouse.test")
    assert client.get(f"{scim_url}/ServiceProviderConfig", headers=auth(token)).status_code == 200

    listed = client.get(base, headers=auth(root_key))
    assert listed.status_code == 200
    [item] = listed.json["data"]
    assert item["id"] == body["id"] and item["revoked_at"] is None
    assert "token" not in item and token not in listed.get_data(as_text=True)
    assert client.get(base, headers=auth(root_key)).json["data"][0]["last_used_at"]

    assert client.delete(f"{base}/{body['id']}", headers=auth(root_key)).status_code == 204
    assert users_status(client, "acme", token) == 401
    [item] = client.get(base, headers=auth(root_key)).json["data"]
    assert item["revoked_at"] is not None
    again = client.delete(f"{base}/{body['id']}", headers=auth(root_key))
    assert again.status_code == 409 and again.json["error"] == "already_revoked"
    elsewhere = client.delete(
        f"/api/v1/orgs/globex/scim-tokens/{body['id']}", headers=auth(root_key)
    )
    assert elsewhere.status_code == 404


def test_scim_tokens_need_an_admin_of_that_org(client: FlaskClient, root_key: str) -> None:
    acme = make_org("acme")
    member_key = make_key(acme, Role.MEMBER)
    admin_key = make_key(acme, Role.ADMIN)
    make_org("globex")

    refused = client.post("/api/v1/orgs/acme/scim-tokens", json={}, headers=auth(member_key))
    assert refused.status_code == 403
    made = client.post("/api/v1/orgs/acme/scim-tokens", json={}, headers=auth(admin_key))
    assert made.status_code == 201 and made.json["name"] == "scim"
    crossed = client.post("/api/v1/orgs/globex/scim-tokens", json={}, headers=auth(admin_key))
    assert crossed.status_code == 404
    assert db.session.scalar(select(ScimToken.org_id)) == acme.id


# --- role mappings (admin API and CLI) ---------------------------------------------------


def test_role_mappings_through_the_admin_api(
    client: FlaskClient, root_key: str, scim: Scim
) -> None:
    base = "/api/v1/orgs/acme/role-mappings"
    make_member(services.get_org(workspace().id, "acme"), "owner@example.com", Role.OWNER)
    ada = scim("POST", "/Users", user_body("ada@example.com")).json["id"]
    scim("POST", "/Groups", group_body("Gatehouse Admins", [ada], externalId="00gADM"))
    assert role_of(ada) == Role.MEMBER

    made = client.post(
        base, json={"group": "Gatehouse Admins", "role": "admin"}, headers=auth(root_key)
    )

    assert made.status_code == 200, made.json
    mapping = made.json
    assert (mapping["group"], mapping["role"]) == ("Gatehouse Admins", "admin")
    assert role_of(ada) == Role.ADMIN  # applied at once to the group's members
    listed = client.get(base, headers=auth(root_key)).json["data"]
    assert [(m["id"], m["group"], m["role"]) for m in listed] == [
        (mapping["id"], "Gatehouse Admins", "admin")
    ]
    # Setting the same group again (any case) replaces its mapping.
    again = client.post(
        base, json={"group": "gatehouse admins", "role": "owner"}, headers=auth(root_key)
    )
    assert again.status_code == 200 and again.json["id"] == mapping["id"]
    assert role_of(ada) == Role.OWNER
    # By externalId too.
    by_external_id = client.post(
        base, json={"group": "00gADM", "role": "admin"}, headers=auth(root_key)
    )
    assert by_external_id.status_code == 200
    assert len(client.get(base, headers=auth(root_key)).json["data"]) == 2

    bad = client.post(base, json={"group": "X", "role": "root"}, headers=auth(root_key))
    assert bad.status_code == 400 and bad.json["error"] == "unknown_role"

    assert client.delete(f"{base}/{mapping['id']}", headers=auth(root_key)).status_code == 204
    assert role_of(ada) == Role.ADMIN  # the externalId mapping still holds
    deleted = client.delete(f"{base}/{by_external_id.json['id']}", headers=auth(root_key))
    assert deleted.status_code == 204
    assert role_of(ada) == Role.MEMBER
    assert client.get(base, headers=auth(root_key)).json["data"] == []
    gone = client.delete(f"{base}/{mapping['id']}", headers=auth(root_key))
    assert gone.status_code == 404 and gone.json["error"] == "role_mapping_not_found"


def test_role_mappings_through_the_cli(runner: FlaskCliRunner, scim: Scim) -> None:
    ada = scim("POST", "/Users", user_body("ada@example.com")).json["id"]
    scim("POST", "/Groups", group_body("Gatehouse Admins", [ada]))

    mapped = ok(
        runner, "role-mapping", "set", "acme", "--group", "Gatehouse Admins", "--role", "admin"
    )

    assert mapped.stdout == "" and role_of(ada) == Role.ADMIN
    ok(runner, "role-mapping", "set", "acme", "--group", "Support", "--role", "member")
    assert ok(runner, "role-mapping", "list", "acme").stdout.splitlines() == [
        "Gatehouse Admins\tadmin",
        "Support\tmember",
    ]
    ok(runner, "role-mapping", "set", "acme", "--group", "GATEHOUSE ADMINS", "--role", "member")
    assert role_of(ada) == Role.MEMBER
    assert ok(runner, "role-mapping", "list", "acme").stdout.splitlines() == [
        "GATEHOUSE ADMINS\tmember",
        "Support\tmember",
    ]
    ok(runner, "role-mapping", "set", "acme", "--group", "gatehouse admins", "--role", "admin")
    assert role_of(ada) == Role.ADMIN

    ok(runner, "role-mapping", "delete", "acme", "--group", "Gatehouse Admins")

    assert role_of(ada) == Role.MEMBER
    assert ok(runner, "role-mapping", "list", "acme").stdout.splitlines() == ["Support\tmember"]
    missing = fails(runner, "role-mapping", "delete", "acme", "--group", "Gatehouse Admins")
    assert "role_mapping_not_found" in missing.stderr
    assert "org_not_found" in fails(runner, "role-mapping", "list", "nope").stderr
    bad_role = fails(runner, "role-mapping", "set", "acme", "--group", "X", "--role", "root")
    assert "unknown_role" in bad_role.stderr  # no role "root" in this org


# --- what a list costs -------------------------------------------------------------------


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def touching(seen: list[str], table: str) -> list[str]:
    return [s for s in seen if re.search(rf"\b{table}\b", s)]


def test_listing_groups_without_members_never_reads_them(app: Flask, scim: Scim) -> None:
    ids = [scim("POST", "/Users", user_body(f"u{i}@example.com")).json["id"] for i in range(4)]
    for n in range(3):
        assert scim("POST", "/Groups", group_body(f"Team {n}", ids[n:])).status_code == 201

    with statements(app) as without:
        response = scim("GET", "/Groups", excludedAttributes="members")
    assert response.status_code == 200 and response.json["totalResults"] == 3
    assert all("members" not in g for g in response.json["Resources"])
    assert without and touching(without, "team_members") == []

    with statements(app) as searched:
        search = scim(
            "POST",
            "/Groups/.search",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "excludedAttributes": ["members"],
            },
        )
    assert search.status_code == 200 and search.json["totalResults"] == 3
    assert touching(searched, "team_members") == []

    with statements(app) as named_only:
        only = scim("GET", "/Groups", attributes="displayName")
    assert only.status_code == 200 and touching(named_only, "team_members") == []

    with statements(app) as with_members:
        full = scim("GET", "/Groups")
    assert [len(g["members"]) for g in full.json["Resources"]] == [4, 3, 2]
    assert len(touching(with_members, "team_members")) == 1  # one query for the whole page

    with statements(app) as one_page:
        page = scim("GET", "/Groups", startIndex=2, count=2)
    assert [g["displayName"] for g in page.json["Resources"]] == ["Team 1", "Team 2"]
    assert len(touching(one_page, "team_members")) == 1


def test_listing_users_reads_their_groups_once_per_page(app: Flask, scim: Scim) -> None:
    ids = [scim("POST", "/Users", user_body(f"u{i}@example.com")).json["id"] for i in range(5)]
    scim("POST", "/Groups", group_body("Eng", ids[:3]))
    scim("POST", "/Groups", group_body("Ops", ids[2:]))

    with statements(app) as with_groups:
        listed = scim("GET", "/Users")
    assert [len(u["groups"]) for u in listed.json["Resources"]] == [1, 1, 2, 1, 1]
    assert len(touching(with_groups, "team_members")) == 1

    with statements(app) as without:
        bare = scim("GET", "/Users", excludedAttributes="groups")
    assert all("groups" not in u for u in bare.json["Resources"])
    assert touching(without, "team_members") == []


def test_another_orgs_token_reaches_none_of_this_orgs_groups(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    other = make_scim(client, "globex")
    group = scim("POST", "/Groups", group_body("Eng")).json
    crossed = Scim(client, "acme", other.token)
    assert crossed("GET", f"/Groups/{group['id']}").status_code == 401
    remove_all = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]}
    assert other("PATCH", f"/Groups/{group['id']}", remove_all).status_code == 404
    assert other("GET", "/Groups").json["totalResults"] == 0
