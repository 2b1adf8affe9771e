"""/Users over HTTP: provisioning semantics, listing, errors, tenant isolation."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.credentials.services import create_scim_token, revoke_scim_token
from idp.db import db
from idp.directory.models import DirectoryUser
from idp.orgs import services
from idp.orgs.models import Membership, MembershipSource, MembershipStatus
from idp.orgs.roles import Role
from idp.people.services import prove_address
from idp.users.services import find_user_by_email
from tests.builders import make_member, make_org, workspace
from tests.scim.conftest import Scim, make_scim, user_body

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def created(scim: Scim, user_name: str, **extra: object) -> dict:
    response = scim("POST", "/Users", user_body(user_name, **extra))
    assert response.status_code == 201, response.json
    return response.json


def error(response: object, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type.startswith("application/scim+json")
    body = response.json
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    if scim_type:
        assert body["scimType"] == scim_type
    return body


def test_create_returns_the_resource_as_sent(scim: Scim) -> None:
    body = user_body(
        "Ada@Example.com",
        externalId="00u1",
        displayName="Ada L.",
        title="Countess",
        phoneNumbers=[{"value": "+1 555 0100", "type": "work"}],
        password="hunter2-not-stored",
        **{ENTERPRISE: {"department": "Analytical Engines", "manager": {"value": "x"}}},
    )
    response = scim("POST", "/Users", body)
    assert response.status_code == 201, response.json
    user = response.json
    assert user["id"].startswith("mem_") and user["userName"] == "Ada@Example.com"
    assert user["externalId"] == "00u1" and user["title"] == "Countess"
    assert user["name"] == {"givenName": "Ada", "familyName": "Lovelace"}
    assert user[ENTERPRISE]["department"] == "Analytical Engines"
    assert set(user["schemas"]) == {"urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE}
    assert "password" not in user and None not in user.values()
    meta = user["meta"]
    assert meta["resourceType"] == "User" and meta["version"] == 'W/"1"'
    assert meta["location"] == f"http://gatehouse.test{scim.base}/Users/{user['id']}"
    assert response.headers["Location"] == meta["location"]
    assert response.headers["ETag"] == meta["version"]
    stored = db.session.get(DirectoryUser, user["id"])
    assert "hunter2" not in repr(stored.attributes)
    got = scim("GET", f"/Users/{user['id']}").json
    assert got == user


def test_provisioning_joins_the_org_with_a_person_of_its_own(scim: Scim) -> None:
    user = created(scim, "ada@example.com")
    org = services.get_org(workspace().id, "acme")
    membership = db.session.get(Membership, user["id"])
    assert membership.org_id == org.id and membership.source is MembershipSource.SCIM
    assert membership.role == Role.MEMBER and membership.name == "Ada Lovelace"
    assert membership.email == "ada@example.com"
    # The directory's word alone does not prove the address: no workspace identity for it.
    assert find_user_by_email(workspace().id, "ADA@example.com") is None
    assert membership.user.email == "ada@example.com" and not membership.user.email_verified
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "member.provisioned"))
    assert event.actor_type == "scim_token" and event.actor_label == "scim_token:idp"


def test_user_name_is_unique_per_org_case_insensitively(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    created(scim, "ada@example.com")
    error(scim("POST", "/Users", user_body("ADA@example.com")), 409, "uniqueness")
    other = make_scim(client, "globex")
    twin = created(other, "ada@example.com")
    assert twin["id"] != scim("GET", "/Users").json["Resources"][0]["id"]


def test_a_user_without_any_email_gets_a_person_of_their_own(scim: Scim) -> None:
    first = created(scim, "jdoe", emails=[])
    second = created(scim, "jroe", emails=[{"value": "not an email"}])
    org = services.get_org(workspace().id, "acme")
    people = {m.user_id for m in services.list_members(org.id).items}
    assert len(people) == 2 and first["id"] != second["id"]
    assert all(m.user.email is None for m in services.list_members(org.id).items)


def test_an_invited_member_is_adopted_not_duplicated(scim: Scim) -> None:
    org = services.get_org(workspace().id, "acme")
    member = make_member(org, "grace@example.com", Role.ADMIN)
    user = created(scim, "grace@example.com")
    assert user["id"] == member.id
    assert services.count_members_by_role(org.id) == {
        "owner": 0,
        "admin": 1,
        "member": 0,
        "guest": 0,
    }


def test_deactivation_suspends_and_reactivation_restores(scim: Scim) -> None:
    user = created(scim, "ada@example.com")
    org = services.get_org(workspace().id, "acme")
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }
    response = scim("PATCH", f"/Users/{user['id']}", patch)
    assert response.status_code == 200 and response.json["active"] is False
    membership = db.session.get(Membership, user["id"])
    assert membership.org_id == org.id and membership.status is MembershipStatus.SUSPENDED
    # inactive users still appear in GET and in filters
    assert scim("GET", f"/Users/{user['id']}").json["active"] is False
    found = scim("GET", "/Users", filter="active eq false").json
    assert [u["id"] for u in found["Resources"]] == [user["id"]]
    put = scim("PUT", f"/Users/{user['id']}", user_body("ada@example.com", active=True))
    assert put.status_code == 200 and put.json["active"] is True
    assert services.get_membership(org.id, membership.user_id).status is MembershipStatus.ACTIVE


def test_delete_removes_the_membership_and_keeps_the_person(
    client: FlaskClient, scim: Scim
) -> None:
    elsewhere = make_org("globex")
    make_member(elsewhere, "ada@example.com")
    user = created(scim, "ada@example.com")
    person = prove_address(lambda _org: system_actor(), workspace().id, "ada@example.com")
    db.session.commit()
    assert scim("DELETE", f"/Users/{user['id']}").status_code == 204
    error(scim("GET", f"/Users/{user['id']}"), 404)
    error(scim("DELETE", f"/Users/{user['id']}"), 404)
    db.session.rollback()
    assert services.get_membership(elsewhere.id, person.id)
    assert find_user_by_email(workspace().id, "ada@example.com").id == person.id


def test_the_last_owner_cannot_be_deprovisioned(scim: Scim) -> None:
    user = created(scim, "owner@example.com")
    org = services.get_org(workspace().id, "acme")
    services.change_role(
        system_actor(), org, db.session.get(Membership, user["id"]).user_id, Role.OWNER
    )
    db.session.commit()
    error(scim("DELETE", f"/Users/{user['id']}"), 409)
    assert scim("GET", f"/Users/{user['id']}").status_code == 200


def test_put_replaces_and_if_match_guards(scim: Scim) -> None:
    user = created(scim, "ada@example.com", title="Countess")
    replaced = scim("PUT", f"/Users/{user['id']}", user_body("ada@example.com", nickName="Ada"))
    assert replaced.status_code == 200
    assert "title" not in replaced.json and replaced.json["nickName"] == "Ada"
    assert replaced.json["meta"]["version"] == 'W/"2"'
    stale = scim(
        "PUT", f"/Users/{user['id']}", user_body("ada@example.com"), headers={"If-Match": 'W/"1"'}
    )
    error(stale, 412)
    fresh = scim(
        "PUT", f"/Users/{user['id']}", user_body("ada@example.com"), headers={"If-Match": 'W/"2"'}
    )
    assert fresh.status_code == 200


def test_list_filters_pages_and_sorts(scim: Scim) -> None:
    ids = [created(scim, f"user{i}@example.com", title=f"t{i % 2}")["id"] for i in range(5)]
    everyone = scim("GET", "/Users").json
    assert everyone["totalResults"] == 5 and [u["id"] for u in everyone["Resources"]] == ids
    page = scim("GET", "/Users", startIndex=2, count=2).json
    assert [u["id"] for u in page["Resources"]] == ids[1:3]
    assert page["startIndex"] == 2 and page["itemsPerPage"] == 2 and page["totalResults"] == 5
    totals = scim("GET", "/Users", count=0).json
    assert totals["totalResults"] == 5 and totals["Resources"] == []
    one = scim("GET", "/Users", filter='userName eq "USER3@example.com"').json
    assert [u["id"] for u in one["Resources"]] == [ids[3]]
    odd = scim(
        "GET", "/Users", filter='title eq "t1"', sortBy="userName", sortOrder="descending"
    ).json
    assert [u["userName"] for u in odd["Resources"]] == ["user3@example.com", "user1@example.com"]
    error(scim("GET", "/Users", filter="userName eq"), 400, "invalidFilter")
    error(scim("GET", "/Users", filter='nosuch eq "x"'), 400, "invalidFilter")
    search = scim(
        "POST",
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'emails[type eq "work" and value sw "user4"]',
            "attributes": ["userName"],
        },
    ).json
    assert search["Resources"] == [
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": ids[4],
            "userName": "user4@example.com",
        }
    ]


def test_attributes_and_excluded_attributes(scim: Scim) -> None:
    user = created(scim, "ada@example.com", title="Countess")
    only = scim("GET", f"/Users/{user['id']}", attributes="userName,name.givenName").json
    assert only == {
        "schemas": user["schemas"],
        "id": user["id"],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada"},
    }
    without = scim("GET", f"/Users/{user['id']}", excludedAttributes="title,emails").json
    assert "title" not in without and "emails" not in without and without["userName"]


def test_tokens_work_for_their_own_org_only(app: Flask, client: FlaskClient, scim: Scim) -> None:
    other = make_scim(client, "globex")
    assert scim("GET", "/Users").status_code == 200
    crossed = Scim(client, "globex", scim.token)
    error(crossed("GET", "/Users"), 401)
    error(Scim(client, "acme", "")("GET", "/Users"), 401)
    error(Scim(client, "acme", "ghs_wrong")("GET", "/Users"), 401)
    error(Scim(client, "nosuch", scim.token)("GET", "/Users"), 401)
    api_key_like = Scim(client, "acme", "ghk_" + scim.token[4:])
    error(api_key_like("GET", "/Users"), 401)
    response = Scim(client, "acme", "")("GET", "/ServiceProviderConfig")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    org = services.get_org(workspace().id, "globex")
    record, second = create_scim_token(system_actor(), org, name="second")
    db.session.commit()
    assert Scim(client, "globex", second)("GET", "/Users").status_code == 200
    revoke_scim_token(system_actor(), org, record.id)
    db.session.commit()
    error(Scim(client, "globex", second)("GET", "/Users"), 401)
    assert other("GET", "/Users").status_code == 200


def test_another_orgs_users_are_not_found(client: FlaskClient, scim: Scim) -> None:
    other = make_scim(client, "globex")
    theirs = created(other, "eve@example.com")
    for method, body in (("GET", None), ("PUT", user_body("x@example.com")), ("DELETE", None)):
        error(scim(method, f"/Users/{theirs['id']}", body), 404)
    assert other("GET", f"/Users/{theirs['id']}").status_code == 200
    assert scim("GET", "/Users", filter=f'id eq "{theirs["id"]}"').json["totalResults"] == 0


def test_bad_requests_get_scim_errors(client: FlaskClient, scim: Scim) -> None:
    error(scim("POST", "/Users", {"schemas": [], "name": {"givenName": "x"}}), 400, "invalidValue")
    error(scim("POST", "/Users", user_body("ada@example.com", active="maybe")), 400, "invalidValue")
    raw = client.post(
        f"{scim.base}/Users",
        data="{not json",
        content_type="application/scim+json",
        headers={"Authorization": f"Bearer {scim.token}"},
    )
    error(raw, 400, "invalidSyntax")
    wrong_type = client.post(
        f"{scim.base}/Users",
        data="userName=x",
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Bearer {scim.token}"},
    )
    error(wrong_type, 415)
    huge = client.post(
        f"{scim.base}/Users",
        data="[" + " " * (2 * 1024 * 1024) + "]",
        content_type="application/scim+json",
        headers={"Authorization": f"Bearer {scim.token}"},
    )
    error(huge, 413)
    error(scim("GET", "/Nope"), 404)
    error(scim("POST", "/ServiceProviderConfig", {}), 405)
    error(
        scim(
            "POST", "/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
        ),
        501,
    )


def test_json_content_type_is_accepted_too(client: FlaskClient, scim: Scim) -> None:
    response = client.post(
        f"{scim.base}/Users",
        json=user_body("ada@example.com"),
        headers={"Authorization": f"Bearer {scim.token}"},
    )
    assert response.status_code == 201 and response.content_type.startswith("application/scim+json")
