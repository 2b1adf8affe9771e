"""Roles as data through the admin API: the Finance template, an org's own role, the app's
permissions reaching the authorization API and forward-auth, holders, bad input, and another
org's roles never visible nor usable."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.db import db
from idp.login.cookies import SESSION_COOKIE, signed_session_cookie
from idp.orgs.models import CustomRole, Organization
from idp.orgs.roles import Role
from idp.orgs.services import change_role
from idp.sessions.models import SessionMethod
from idp.sessions.services import start_session
from tests.builders import auth, make_key, make_member, make_org

FINANCE = {
    "key": "finance",
    "name": "Finance",
    "description": "Views and manages billing, nothing else",
    "permissions": ["org:read", "billing:read", "billing:manage", "invoices:export"],
}


def api(client: FlaskClient, method: str, path: str, key: str, body: Any = None) -> Any:
    return client.open(f"/api/v1{path}", method=method, json=body, headers=auth(key))


def setup_finance(client: FlaskClient, root: str) -> None:
    made = api(
        client,
        "POST",
        "/permissions",
        root,
        {"key": "invoices:export", "description": "Export invoices"},
    )
    assert made.status_code == 201, made.json
    created = api(client, "POST", "/roles", root, FINANCE)
    assert created.status_code == 201, created.json
    assert created.json["rank"] == 150 and created.json["org_id"] is None


def sign_in(client: FlaskClient, org: Organization, email: str) -> None:
    member = make_member(org, email)
    _session, token = start_session(
        member.user, org, method=SessionMethod.EMAIL_LINK, lifetime=timedelta(hours=1)
    )
    db.session.commit()
    with client.application.test_request_context():
        client.set_cookie(SESSION_COOKIE, signed_session_cookie(token))


def test_a_finance_member_holds_billing_and_the_apps_permission_and_nothing_else(
    client: FlaskClient, root_key: str
) -> None:
    org = make_org("acme")
    make_member(org, "owner@acme.example", Role.OWNER)
    setup_finance(client, root_key)
    sign_in(client, org, "fin@acme.example")
    member = client.get("/api/v1/me").json["user"]["id"]
    changed = api(client, "PATCH", f"/orgs/acme/members/{member}", root_key, {"role": "finance"})
    assert changed.status_code == 200 and changed.json["role"] == "finance", changed.json

    def allowed(permission: str) -> dict[str, Any]:
        body = {"user_id": member, "org": "acme", "permission": permission}
        return api(client, "POST", "/authorize", root_key, body).json

    assert allowed("billing:manage") == {
        "allowed": True,
        "role": "finance",
        "reason": "granted",
        "scope": None,
    }
    assert allowed("invoices:export")["allowed"] is True
    assert allowed("members:read") == {
        "allowed": False,
        "role": "finance",
        "reason": "permission_not_in_role",
        "scope": None,
    }
    assert allowed("tunnels:use")["reason"] == "unknown_permission"
    # Forward-auth tells the app the role and what it holds.
    check = client.get("/auth/check", headers={"X-Gatehouse-Org": "acme"})
    assert check.headers["X-Gatehouse-Role"] == "finance"
    assert check.headers["X-Gatehouse-Permissions"].split() == sorted(FINANCE["permissions"])
    # Listed with its holders, highest first among the built-ins.
    roles = api(client, "GET", "/orgs/acme/roles", root_key).json["data"]
    assert [r["key"] for r in roles] == ["owner", "admin", "finance", "member", "guest"]
    assert next(r for r in roles if r["key"] == "finance")["holders"] == 1
    # In use: not deleted, the count given; once nobody holds it, gone.
    refused = api(client, "DELETE", "/roles/finance", root_key)
    assert refused.status_code == 409 and refused.json["error"] == "role_in_use"
    assert refused.json["holders"] == 1
    api(client, "PATCH", f"/orgs/acme/members/{member}", root_key, {"role": "member"})
    assert api(client, "DELETE", "/roles/finance", root_key).status_code == 204
    again = client.get("/auth/check", headers={"X-Gatehouse-Org": "acme"})
    assert "billing:manage" not in again.headers["X-Gatehouse-Permissions"].split()


def test_the_apps_permission_granted_to_members_reaches_every_member(
    client: FlaskClient, root_key: str
) -> None:
    org = make_org("acme")
    sign_in(client, org, "ann@acme.example")
    before = client.get("/auth/check").headers["X-Gatehouse-Permissions"].split()
    assert "tunnels:use" not in before
    made = api(
        client, "POST", "/permissions", root_key, {"key": "tunnels:use", "granted_from": "member"}
    )
    assert made.status_code == 201, made.json
    after = client.get("/auth/check").headers["X-Gatehouse-Permissions"].split()
    assert "tunnels:use" in after  # the process's cached roles followed the change
    listed = api(client, "GET", "/permissions", make_key(org)).json["data"]
    assert {"key": "tunnels:use", "source": "app"}.items() <= next(
        p for p in listed if p["key"] == "tunnels:use"
    ).items()


def test_an_org_role_holds_no_more_than_its_creator_and_bad_input_stores_nothing(
    client: FlaskClient, root_key: str
) -> None:
    org = make_org("acme")
    owner_key = make_key(org, Role.OWNER)
    admin_key = make_key(org, Role.ADMIN)
    base = {"key": "support", "name": "Support"}

    def refused(key: str, body: dict[str, Any], status: int, code: str) -> None:
        answer = api(client, "POST", "/orgs/acme/roles", key, {**base, **body})
        assert answer.status_code == status and answer.json["error"] == code, answer.json

    refused(admin_key, {"permissions": ["members:read"]}, 403, "forbidden")  # roles:write
    refused(owner_key, {"permissions": ["members:fly"]}, 400, "unknown_permission")
    refused(owner_key, {"permissions": ["owners:manage"]}, 400, "reserved_permission")
    refused(owner_key, {"permissions": [], "key": "Bad Key"}, 400, "invalid_role_key")
    refused(owner_key, {"permissions": [], "key": "admin"}, 409, "role_key_taken")
    refused(owner_key, {"permissions": [], "rank": 300}, 400, "invalid_rank")
    refused(owner_key, {"permissions": [], "name": "Sup\u202eport"}, 400, "invalid_name")
    assert db.session.scalar(select(func.count()).select_from(CustomRole)) == 0
    made = api(
        client,
        "POST",
        "/orgs/acme/roles",
        owner_key,
        {**base, "permissions": ["members:read", "org:read"]},
    )
    assert made.status_code == 201 and made.json["org_id"] == org.id, made.json
    # A key with that role cannot make a role (or a key) holding more than it does.
    support = make_key(org, "support")
    assert api(client, "GET", "/orgs/acme/members", support).status_code == 200
    assert api(client, "GET", "/orgs/acme/audit-events", support).status_code == 403
    escalate = api(client, "POST", "/orgs/acme/api-keys", admin_key, {"name": "x", "role": "owner"})
    assert escalate.status_code == 403


def test_another_orgs_roles_are_never_visible_nor_usable(client: FlaskClient) -> None:
    alpha, beta = make_org("alpha"), make_org("beta")
    make_member(beta, "bob@beta.example")
    own = api(
        client,
        "POST",
        "/orgs/alpha/roles",
        make_key(alpha, Role.OWNER),
        {"key": "alpha-secret", "name": "Alpha Secret", "permissions": ["org:read"]},
    )
    assert own.status_code == 201
    beta_key = make_key(beta, Role.OWNER)
    listed = api(client, "GET", "/orgs/beta/roles", beta_key)
    assert "alpha-secret" not in listed.text and "Alpha Secret" not in listed.text
    assert api(client, "GET", "/orgs/alpha/roles", beta_key).status_code == 404
    assert api(client, "DELETE", "/orgs/beta/roles/alpha-secret", beta_key).status_code == 404
    member = api(client, "GET", "/orgs/beta/members", beta_key).json["data"][0]["user_id"]
    use = api(client, "PATCH", f"/orgs/beta/members/{member}", beta_key, {"role": "alpha-secret"})
    assert use.status_code == 400 and use.json["error"] == "unknown_role"
    mapping = api(
        client,
        "POST",
        "/orgs/beta/role-mappings",
        beta_key,
        {"group": "Staff", "role": "alpha-secret"},
    )
    assert mapping.status_code == 400 and mapping.json["error"] == "unknown_role"
    key = api(
        client, "POST", "/orgs/beta/api-keys", beta_key, {"name": "x", "role": "alpha-secret"}
    )
    assert key.status_code == 400 and key.json["error"] == "unknown_role"
    invited = api(
        client,
        "POST",
        "/orgs/beta/invitations",
        beta_key,
        {"email": "x@beta.example", "role": "alpha-secret"},
    )
    assert invited.status_code == 400 and invited.json["error"] == "unknown_role"


def test_roles_and_permissions_through_the_cli(runner: Any, client: FlaskClient) -> None:
    org = make_org("acme")
    member = make_member(org, "fin@acme.example")
    assert runner.invoke(args=["permission", "create", "invoices:export"]).exit_code == 0
    made = runner.invoke(
        args=[
            "role",
            "create",
            "finance",
            "--name",
            "Finance",
            "--rank",
            "150",
            "--permission",
            "billing:manage",
            "--permission",
            "invoices:export",
        ]
    )
    assert made.exit_code == 0, made.output
    changed = runner.invoke(args=["member", "list", "acme"])
    assert changed.exit_code == 0

    change_role(system_actor(), org, member.user_id, "finance")
    db.session.commit()
    listed = runner.invoke(args=["role", "list", "--org", "acme"]).output.splitlines()
    assert [line.split("\t")[:3] for line in listed][:3] == [
        ["owner", "300", "0"],
        ["admin", "200", "0"],
        ["finance", "150", "1"],
    ]
    in_use = runner.invoke(args=["role", "delete", "finance"])
    assert in_use.exit_code == 1 and "role_in_use" in in_use.stderr
    unknown = runner.invoke(args=["role", "create", "x", "--name", "X", "--permission", "no:pe"])
    assert unknown.exit_code == 1 and "unknown_permission" in unknown.stderr
    assert "invoices:export\towner" in runner.invoke(args=["permission", "list"]).output
