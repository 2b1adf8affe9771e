"""The admin API contract, resource by resource, as a client sees it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient

from idp.admin.api import OPERATIONS
from idp.orgs.roles import Role
from tests.builders import auth, make_key, make_member, make_org


class Api:
    """The test client with a bearer key, speaking JSON."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client, self.headers = client, auth(token)

    def __call__(self, method: str, path: str, json: Any = None, **query: Any) -> Any:
        return self.client.open(
            "/api/v1" + path, method=method, json=json, query_string=query, headers=self.headers
        )


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def test_org_lifecycle(client: FlaskClient, root_key: str) -> None:
    api = Api(client, root_key)
    org = ok(api("POST", "/orgs", {"slug": "acme", "name": "Acme Inc"}), 201)
    assert org["slug"] == "acme" and org["name"] == "Acme Inc" and org["id"].startswith("org_")
    child = ok(api("POST", "/orgs", {"slug": "acme-eu", "name": "EU", "parent": "acme"}), 201)
    assert child["parent_id"] == org["id"]
    assert ok(api("POST", "/orgs", {"slug": "acme", "name": "x"}), 409)["error"] == "slug_taken"
    assert ok(api("POST", "/orgs", {"slug": "Bad Slug", "name": "x"}), 400)["error"] == (
        "invalid_slug"
    )
    assert ok(api("POST", "/orgs", {"name": "x"}), 400)["error"] == "validation_error"
    listed = ok(api("GET", "/orgs"))
    assert [o["slug"] for o in listed["data"]] == ["acme", "acme-eu"]
    assert ok(api("GET", "/orgs/acme"))["id"] == org["id"]
    renamed = ok(api("PATCH", "/orgs/acme", {"name": "Acme Corp", "member_cap": 50}))
    assert (renamed["name"], renamed["member_cap"]) == ("Acme Corp", 50)
    assert api("DELETE", "/orgs/acme-eu").status_code == 204
    assert ok(api("GET", "/orgs/acme-eu"), 404)["error"] == "org_not_found"


def test_members_list_with_counts_filters_and_cursor(client: FlaskClient, root_key: str) -> None:
    org = make_org("acme")
    make_member(org, "owner@x.example", Role.OWNER)
    for i in range(5):
        make_member(org, f"admin{i}@x.example", Role.ADMIN)
    for i in range(6):
        make_member(org, f"member{i}@x.example")
    api = Api(client, root_key)
    first = ok(api("GET", "/orgs/acme/members", limit=4))
    assert first["counts"] == {"owner": 1, "admin": 5, "member": 6, "guest": 0}
    assert len(first["data"]) == 4 and first["next_cursor"]
    assert set(first["data"][0]) >= {"user_id", "email", "role", "status", "source", "joined_at"}
    emails, cursor = [], None
    while True:
        page = ok(
            api("GET", "/orgs/acme/members", limit=5, **({"cursor": cursor} if cursor else {}))
        )
        emails += [m["email"] for m in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert len(emails) == 12 == len(set(emails))
    admins = ok(api("GET", "/orgs/acme/members", role="admin"))["data"]
    assert {m["role"] for m in admins} == {"admin"} and len(admins) == 5
    both = ok(api("GET", "/orgs/acme/members", role="owner,admin"))["data"]
    assert len(both) == 6
    found = ok(api("GET", "/orgs/acme/members", q="MEMBER3"))["data"]
    assert [m["email"] for m in found] == ["member3@x.example"]
    assert ok(api("GET", "/orgs/acme/members", role="boss"), 400)["error"] == "unknown_role"
    assert ok(api("GET", "/orgs/acme/members", cursor="garbage!"), 400)["error"] == (
        "invalid_cursor"
    )
    assert ok(api("GET", "/orgs/acme/members", limit=1000), 400)["error"] == "validation_error"


def test_member_changes(client: FlaskClient, root_key: str) -> None:
    org = make_org("acme")
    owner = make_member(org, "owner@x.example", Role.OWNER)
    api = Api(client, root_key)
    added = ok(api("POST", "/orgs/acme/members", {"email": "new@x.example", "role": "admin"}), 201)
    uid = added["user_id"]
    assert ok(api("PATCH", f"/orgs/acme/members/{uid}", {"role": "member"}))["role"] == "member"
    suspended = ok(api("PATCH", f"/orgs/acme/members/{uid}", {"status": "suspended"}))
    assert suspended["status"] == "suspended"
    last = ok(api("PATCH", f"/orgs/acme/members/{owner.user_id}", {"role": "admin"}), 409)
    assert last["error"] == "last_owner"
    assert ok(api("PATCH", f"/orgs/acme/members/{uid}", {"role": "god"}), 400)["error"] == (
        "unknown_role"
    )
    assert api("DELETE", f"/orgs/acme/members/{uid}").status_code == 204
    assert ok(api("GET", f"/orgs/acme/members/{uid}"), 404)["error"] == "member_not_found"
    assert ok(api("DELETE", f"/orgs/acme/members/{owner.user_id}"), 409)["error"] == "last_owner"


def test_transfer_ownership(client: FlaskClient, root_key: str) -> None:
    org = make_org("acme")
    owner = make_member(org, "owner@x.example", Role.OWNER)
    heir = make_member(org, "heir@x.example")
    api = Api(client, root_key)
    body = {"to_user_id": heir.user_id, "from_user_id": owner.user_id, "confirm": "nope"}
    assert ok(api("POST", "/orgs/acme/transfer-ownership", body), 400)["error"] == (
        "confirmation_required"
    )
    result = ok(api("POST", "/orgs/acme/transfer-ownership", {**body, "confirm": "acme"}))
    assert result["role"] == "owner"
    assert ok(api("GET", f"/orgs/acme/members/{owner.user_id}"))["role"] == "admin"


def test_email_invitation_flow(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    api = Api(client, root_key)
    created = ok(
        api("POST", "/orgs/acme/invitations", {"email": "a@x.example", "role": "admin"}), 201
    )
    assert created["status"] == "pending" and created["id"].startswith("inv_")
    token = parse_qs(urlsplit(created["url"]).query)["token"][0]
    assert created["url"].startswith("http://gatehouse.test/invitations/accept?token=")
    listed = ok(api("GET", "/orgs/acme/invitations"))["data"]
    assert [i["id"] for i in listed] == [created["id"]] and "url" not in listed[0]
    assert token not in str(listed)
    resent = ok(api("POST", f"/orgs/acme/invitations/{created['id']}/resend"))
    new_token = parse_qs(urlsplit(resent["url"]).query)["token"][0]
    assert new_token != token
    public = Api(client, "none")
    assert ok(public("POST", "/invitations/accept", {"token": token}), 404)["error"] == (
        "invitation_not_found"
    )
    member = ok(public("POST", "/invitations/accept", {"token": new_token}))
    assert (member["email"], member["role"], member["source"]) == ("a@x.example", "admin", "invite")
    again = ok(public("POST", "/invitations/accept", {"token": new_token}), 410)
    assert again["error"] == "invitation_not_pending"
    assert ok(api("GET", f"/orgs/acme/invitations/{created['id']}"))["status"] == "accepted"
    pending = ok(api("GET", "/orgs/acme/invitations", status="pending"))["data"]
    assert pending == []


def test_reject_and_revoke(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    api, public = Api(client, root_key), Api(client, "none")
    one = ok(api("POST", "/orgs/acme/invitations", {"email": "a@x.example"}), 201)
    token = parse_qs(urlsplit(one["url"]).query)["token"][0]
    assert ok(public("POST", "/invitations/reject", {"token": token}))["status"] == "rejected"
    two = ok(api("POST", "/orgs/acme/invitations", {"email": "b@x.example"}), 201)
    assert ok(api("POST", f"/orgs/acme/invitations/{two['id']}/revoke"))["status"] == "revoked"
    assert ok(api("POST", f"/orgs/acme/invitations/{two['id']}/revoke"), 409)["error"] == (
        "invitation_not_pending"
    )
    revoked = ok(api("GET", "/orgs/acme/invitations", status="revoked"))["data"]
    assert [i["id"] for i in revoked] == [two["id"]]


def test_link_invitation(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    api, public = Api(client, root_key), Api(client, "none")
    link = ok(api("POST", "/orgs/acme/invitations", {"kind": "link", "max_uses": 2}), 201)
    assert (link["kind"], link["role"], link["email"]) == ("link", "member", None)
    token = parse_qs(urlsplit(link["url"]).query)["token"][0]
    assert ok(public("POST", "/invitations/accept", {"token": token}), 400)["error"] == (
        "email_required"
    )
    for email in ("a@x.example", "b@x.example"):
        assert ok(public("POST", "/invitations/accept", {"token": token, "email": email}))
    assert ok(public("POST", "/invitations/accept", {"token": token, "email": "c@x.example"}), 410)
    bad = ok(api("POST", "/orgs/acme/invitations", {"kind": "link", "role": "admin"}), 400)
    assert "role" in bad["fields"]
    assert ok(api("POST", "/orgs/acme/invitations", {"kind": "email"}), 400)["fields"]["email"]


def test_teams_api(client: FlaskClient, root_key: str) -> None:
    org = make_org("acme")
    m = make_member(org, "m@x.example")
    api = Api(client, root_key)
    dept = ok(api("POST", "/orgs/acme/teams", {"name": "Engineering"}), 201)
    team = ok(api("POST", "/orgs/acme/teams", {"name": "Platform", "parent_id": dept["id"]}), 201)
    assert team["parent_id"] == dept["id"] and team["source"] == "admin"
    assert len(ok(api("GET", "/orgs/acme/teams"))["data"]) == 2
    moved = ok(api("PATCH", f"/orgs/acme/teams/{team['id']}", {"parent_id": None}))
    assert moved["parent_id"] is None
    path = f"/orgs/acme/teams/{team['id']}/members"
    added = ok(api("POST", path, {"user_id": m.user_id, "is_lead": True}), 201)
    assert added == {**added, "user_id": m.user_id, "email": "m@x.example", "is_lead": True}
    assert ok(api("PATCH", f"{path}/{m.user_id}", {"is_lead": False}))["is_lead"] is False
    assert [x["user_id"] for x in ok(api("GET", path))["data"]] == [m.user_id]
    assert api("DELETE", f"{path}/{m.user_id}").status_code == 204
    assert api("DELETE", f"/orgs/acme/teams/{team['id']}").status_code == 204
    assert ok(api("GET", f"/orgs/acme/teams/{team['id']}"), 404)["error"] == "team_not_found"


def test_audit_events_api(client: FlaskClient, root_key: str) -> None:
    org = make_org("acme")
    api = Api(client, root_key)
    for i in range(4):
        ok(api("POST", "/orgs/acme/members", {"email": f"u{i}@x.example"}), 201)
    ok(api("PATCH", "/orgs/acme", {"name": "Renamed"}))
    events = ok(api("GET", "/orgs/acme/audit-events"))["data"]
    assert [e["action"] for e in events] == ["org.updated"] + ["member.added"] * 4 + ["org.created"]
    first = events[0]
    assert first["actor"]["type"] == "api_key" and first["actor"]["label"] == "api_key:test"
    assert first["before"]["name"] == "Acme" and first["after"]["name"] == "Renamed"
    assert first["request_id"] and first["target"] == {"type": "org", "id": org.id}
    added = ok(api("GET", "/orgs/acme/audit-events", action="member.added", limit=3))
    assert len(added["data"]) == 3 and added["next_cursor"]
    rest = ok(
        api("GET", "/orgs/acme/audit-events", action="member.added", cursor=added["next_cursor"])
    )
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    by_actor = ok(api("GET", "/orgs/acme/audit-events", actor="api_key:test"))["data"]
    assert len(by_actor) == 5
    future = ok(api("GET", "/orgs/acme/audit-events", since="2999-01-01T00:00:00Z"))["data"]
    assert future == []
    assert ok(api("GET", "/orgs/acme/audit-events", since="yesterday"), 400)["error"] == (
        "validation_error"
    )


def test_request_id_reaches_the_audit_log(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    client.post(
        "/api/v1/orgs/acme/members",
        json={"email": "u@x.example"},
        headers={**auth(root_key), "X-Request-Id": "req-42"},
    )
    events = Api(client, root_key)("GET", "/orgs/acme/audit-events", action="member.added").json
    assert events["data"][0]["request_id"] == "req-42"


def test_api_keys_api(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    api = Api(client, root_key)
    created = ok(api("POST", "/orgs/acme/api-keys", {"name": "ci", "role": "member"}), 201)
    assert created["key"].startswith("ghk_") and created["role"] == "member"
    listed = ok(api("GET", "/orgs/acme/api-keys"))["data"]
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
    scoped = Api(client, created["key"])
    assert ok(scoped("GET", "/orgs/acme"))["slug"] == "acme"
    assert api("DELETE", f"/orgs/acme/api-keys/{created['id']}").status_code == 204
    assert ok(scoped("GET", "/orgs/acme"), 401)["error"] == "unauthorized"
    ws = ok(api("POST", "/api-keys", {"name": "ops"}), 201)
    assert ws["org_id"] is None and ws["role"] is None
    assert {k["name"] for k in ok(api("GET", "/api-keys"))["data"]} >= {"ops", "test"}
    assert api("DELETE", f"/api-keys/{ws['id']}").status_code == 204
    assert ok(Api(client, ws["key"])("GET", "/orgs"), 401)["error"] == "unauthorized"


def test_org_key_sees_only_its_org(client: FlaskClient) -> None:
    acme = make_org("acme")
    make_org("globex")
    api = Api(client, make_key(acme, Role.OWNER))
    assert [o["slug"] for o in ok(api("GET", "/orgs"))["data"]] == ["acme"]
    assert ok(api("GET", "/orgs/globex"), 404)["error"] == "org_not_found"


def test_openapi_document_lists_every_operation(client: FlaskClient) -> None:
    doc = ok(client.get("/api/v1/openapi.json"))
    assert doc["openapi"].startswith("3.") and doc["info"]["title"]
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for op in OPERATIONS:
        path = "/api/v1" + op.rule.replace("<", "{").replace(">", "}")
        assert (path, op.method.lower()) in documented
    create = doc["paths"]["/api/v1/orgs/{slug}/invitations"]["post"]
    assert create["x-permission"] == "members:invite"
    assert "InvitationCreate" in str(create["requestBody"])
    assert doc["paths"]["/api/v1/invitations/accept"]["post"]["security"] == []
    assert "InvitationOut" in doc["components"]["schemas"]
