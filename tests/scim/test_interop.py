"""Interop gaps found by outside suites, each replayed over HTTP from its golden payload.

One test per payload of ``tests/data`` (``entra-filter-…``, ``interop-…``,
``okta-create-user-at-member-cap``): the request as the payload holds it, at a real org
endpoint, and what the answer and the database must then be. They run on SQLite and on
PostgreSQL (``GATEHOUSE_DATABASE_URL``), where filters compile to different SQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.db import db
from idp.orgs import services
from idp.orgs.models import Membership, Team
from idp.users.models import User
from tests.builders import auth, make_member, workspace
from tests.scim.conftest import SCIM_JSON, Scim, group_body, make_scim, user_body
from tests.scim.test_users import error

DATA = Path(__file__).parent.parent / "data"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def golden(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def replay(scim: Scim, payload: dict[str, Any], path: str | None = None) -> Any:
    """The payload's request, sent as the IdP sends it: a query string for GET, else a body."""
    url = scim.base + (path or payload["path"])
    headers = auth(scim.token)
    if payload["method"] == "GET":
        query = urlencode(payload["request"], quote_via=quote)
        return scim.client.get(f"{url}?{query}" if query else url, headers=headers)
    return scim.client.open(
        url,
        method=payload["method"],
        data=json.dumps(payload["request"]),
        content_type=SCIM_JSON,
        headers=headers,
    )


def found(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert body["totalResults"] == len(body["Resources"])
    return sorted(r["userName"] if "userName" in r else r["displayName"] for r in body["Resources"])


def emails(*items: tuple[str, str, bool]) -> list[dict[str, Any]]:
    return [{"value": v, "type": t, "primary": p} for v, t, p in items]


# --- Entra's value path followed by a sub-attribute --------------------------------------


@pytest.fixture
def mailboxes(scim: Scim) -> Scim:
    """Four users whose work and home addresses cross each other."""
    for user_name, items in (
        ("ada", emails(("foo@example.com", "work", True), ("bar@example.com", "home", False))),
        ("grace", emails(("grace@example.com", "work", True), ("foo@example.com", "home", False))),
        # One member per address is the primary one's: a second address may be anyone's.
        ("alan", emails(("alan@example.com", "work", True), ("FOO@example.com", "other", False))),
        ("edsger", emails(("edsger@example.com", "home", True))),
    ):
        body = user_body(f"{user_name}@people.test")
        body["emails"] = items
        assert scim("POST", "/Users", body).status_code == 201
    return scim


def test_entra_filter_on_a_value_paths_sub_attribute(mailboxes: Scim) -> None:
    payload = golden("entra-filter-emails-work-value")

    response = replay(mailboxes, payload)

    assert response.status_code == payload["response"]["status"]
    # Only ada has foo@ as a *work* address; grace holds it as home, alan as other.
    assert found(response) == ["ada@people.test"]
    # The same answer as the RFC form it is rewritten to, sent as such.
    rfc = mailboxes("GET", "/Users", filter=payload["normalized"]["filter"])
    assert found(rfc) == ["ada@people.test"]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        # Case-insensitive values (emails.value is not caseExact), names in any case.
        ('emails[type eq "work"].value eq "FOO@EXAMPLE.COM"', ["ada"]),
        ('EMAILS[TYPE eq "work"].VALUE Eq "foo@example.com"', ["ada"]),
        ('emails[type eq "home"].value eq "foo@example.com"', ["grace"]),
        ('emails[type eq "work" or type eq "other"].value eq "foo@example.com"', ["ada", "alan"]),
        ('emails[primary eq true].value ew "@example.com"', ["ada", "alan", "edsger", "grace"]),
        ('emails[type eq "home"].value sw "bar"', ["ada"]),
        ('emails[type eq "home"].value co "example"', ["ada", "edsger", "grace"]),
        ('emails[type eq "home"].value pr', ["ada", "edsger", "grace"]),
        # ne is "not eq": users without a home address at all match too.
        ('emails[type eq "work"].value ne "foo@example.com"', ["alan", "edsger", "grace"]),
        ('emails[type eq "home"].value eq null', ["alan"]),
        ('emails[type eq "home"].value ne null', ["ada", "edsger", "grace"]),
        # Beside other terms, and under not.
        (
            'emails[type eq "work"].value eq "foo@example.com" or userName eq "alan@people.test"',
            ["ada", "alan"],
        ),
        ('not (emails[type eq "work"].value eq "foo@example.com")', ["alan", "edsger", "grace"]),
        ('userName sw "a" and emails[type eq "other"].value pr', ["alan"]),
    ],
)
def test_value_path_sub_attribute_filters(
    mailboxes: Scim, filter_: str, expected: list[str]
) -> None:
    found_names = found(mailboxes("GET", "/Users", filter=filter_))
    assert found_names == [f"{name}@people.test" for name in sorted(expected)]
    # POST /.search takes the same filter (RFC 7644 §3.4.3).
    searched = mailboxes("POST", "/Users/.search", {"schemas": [SEARCH], "filter": filter_})
    assert found(searched) == found_names


@pytest.mark.parametrize(
    "filter_",
    [
        'emails[type eq "work"].nope eq "x"',  # no such sub-attribute
        'emails[type eq "work"].value',  # no comparison
        'emails[type eq "work"].value eq',
        'emails[type eq "work"].value.x eq "y"',
        'name[givenName eq "Ada"].x eq "y"',
        'userName[value eq "x"].value eq "y"',  # not complex
        'emails[type eq "work"] .value gt',
    ],
)
def test_broken_value_path_sub_attribute_filters_are_invalid(scim: Scim, filter_: str) -> None:
    error(scim("GET", "/Users", filter=filter_), 400, "invalidFilter")


def test_a_groups_members_filter_by_value_path_sub_attribute(scim: Scim) -> None:
    ada = scim("POST", "/Users", user_body("ada@people.test")).json["id"]
    eng = scim("POST", "/Groups", group_body("Eng", [ada])).json["id"]
    scim("POST", "/Groups", group_body("Ops"))
    hits = scim("GET", "/Groups", filter=f'members[value pr].value eq "{ada}"').json
    assert [g["id"] for g in hits["Resources"]] == [eng]


# --- the trailing slash ------------------------------------------------------------------


def test_a_trailing_slash_reaches_the_same_endpoint(scim: Scim) -> None:
    payload = golden("interop-get-users-trailing-slash")
    created = scim("POST", "/Users/", golden("okta-create-user")["request"])
    assert created.status_code == 201, created.get_data(as_text=True)
    user_id = created.json["id"]

    response = replay(scim, payload)

    assert response.status_code == payload["response"]["status"]
    assert [u["id"] for u in response.json["Resources"]] == [user_id]
    assert response.json == replay(scim, payload, "/Users").json


def test_every_endpoint_takes_a_trailing_slash_and_none_redirects(scim: Scim) -> None:
    user_id = scim("POST", "/Users", user_body("ada@people.test")).json["id"]
    group_id = scim("POST", "/Groups/", group_body("Eng")).json["id"]
    rename = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "title", "value": "T"}],
    }
    for method, path, body, status in (
        ("GET", "/ServiceProviderConfig/", None, 200),
        ("GET", "/ResourceTypes/", None, 200),
        ("GET", "/ResourceTypes/User/", None, 200),
        ("GET", "/Schemas/", None, 200),
        ("GET", f"/Schemas/{USER}/", None, 200),
        ("GET", f"/Users/{user_id}/", None, 200),
        ("PATCH", f"/Users/{user_id}/", rename, 200),
        ("PUT", f"/Users/{user_id}/", user_body("ada@people.test"), 200),
        ("POST", "/Users/.search/", {"schemas": [SEARCH]}, 200),
        ("GET", "/Groups/", None, 200),
        ("GET", f"/Groups/{group_id}/", None, 200),
        ("POST", "/Groups/.search/", {"schemas": [SEARCH]}, 200),
        ("DELETE", f"/Groups/{group_id}/", None, 204),
        ("DELETE", f"/Users/{user_id}/", None, 204),
    ):
        response = scim(method, path, body)
        assert response.status_code == status, (method, path, response.get_data(as_text=True))
        assert "Location" not in response.headers
    assert scim("GET", f"/Schemas/{USER}/").json["id"] == USER


@pytest.mark.parametrize(
    "path",
    [
        "/Users/",
        "/Users/?filter=userName%20eq%20%22x%22",
        "/Groups/",
        "/Users/mem_1/",
        "/Schemas/",
        "/ServiceProviderConfig/",
    ],
)
def test_the_slash_keeps_the_bearer_check(client: FlaskClient, scim: Scim, path: str) -> None:
    for headers in ({}, auth("wrong"), auth(make_scim(client, "globex").token)):
        response = client.get(scim.base + path, headers=headers)
        body = error(response, 401)
        assert "Location" not in response.headers and "token" in body["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/Users//",
        "//Users/",
        "/Users/x//",
        "/Users/%2F%2Fevil.example/",
        "/Users/..%2F..%2Fevil.example/",
        "/Users/.search//",
    ],
)
def test_odd_slashes_are_answered_never_redirected(scim: Scim, path: str) -> None:
    for method in ("GET", "POST"):
        response = scim(method, path, {"schemas": [SEARCH]} if method == "POST" else None)
        assert response.status_code in (400, 404, 405), (path, response.status_code)
        assert not 300 <= response.status_code < 400 and "Location" not in response.headers
        assert response.content_type.startswith("application/scim+json")


# --- /Schemas says what is enforced ------------------------------------------------------


def attributes(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    flat = {}
    for attribute in schema["attributes"]:
        flat[attribute["name"]] = attribute
        for sub in attribute.get("subAttributes", ()):
            flat[f"{attribute['name']}.{sub['name']}"] = sub
    return flat


def test_schemas_say_which_values_are_unique(scim: Scim) -> None:
    payload = golden("interop-get-schemas-user-uniqueness")
    response = replay(scim, payload)
    assert response.status_code == payload["response"]["status"]
    user = attributes(response.json)
    for name, uniqueness in payload["response"]["uniqueness"].items():
        assert user[name]["uniqueness"] == uniqueness, name
    group = attributes(scim("GET", f"/Schemas/{GROUP}").json)
    assert group["displayName"]["uniqueness"] == "none"
    listed = {s["id"]: attributes(s) for s in scim("GET", "/Schemas").json["Resources"]}
    assert listed[USER]["emails.value"]["uniqueness"] == "server"
    assert all("externalId" not in a for a in listed.values())  # common (RFC 7643 §3.1)


def test_what_schemas_say_unique_is_refused_and_what_not_is_kept(scim: Scim) -> None:
    """Each uniqueness claim of /Schemas, checked against the server's answers."""
    ada = scim("POST", "/Users", user_body("ada@people.test", externalId="E1"))
    assert ada.status_code == 201
    # userName: server (case-insensitive).
    error(scim("POST", "/Users", user_body("ADA@people.test")), 409, "uniqueness")
    # emails (the member's address): another provisioned user with it is refused...
    body = user_body("ada.lovelace")
    body["emails"] = emails(("Ada@People.test", "work", True))
    error(scim("POST", "/Users", body), 409, "uniqueness")
    # ... and so is changing a user to another member's address.
    grace = scim("POST", "/Users", user_body("grace@people.test")).json["id"]
    to_ada = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "replace", "path": "emails", "value": emails(("ada@people.test", "work", True))}
        ],
    }
    error(scim("PATCH", f"/Users/{grace}", to_ada), 409, "uniqueness")
    # externalId: not enforced (RFC 7643 §3.1), for users as for groups.
    assert scim("POST", "/Users", user_body("alan@people.test", externalId="E1")).status_code == 201
    # Group displayName: none.
    assert scim("POST", "/Groups", group_body("Eng")).status_code == 201
    assert scim("POST", "/Groups", group_body("Eng")).status_code == 201
    db.session.expire_all()
    org = services.get_org(workspace().id, "acme")
    keys = db.session.scalars(select(Membership.email_key).where(Membership.org_id == org.id))
    assert sorted(keys) == ["ada@people.test", "alan@people.test", "grace@people.test"]


# --- a group's externalId (RFC 7643 §3.1) ------------------------------------------------


def test_groups_may_share_an_external_id(client: FlaskClient, scim: Scim) -> None:
    payload = golden("interop-post-groups-shared-external-id")
    ada = scim("POST", "/Users", user_body("ada@people.test")).json["id"]
    first = scim("POST", "/Groups", group_body("Sales", [ada], externalId="00g1emea"))
    assert first.status_code == 201

    second = replay(scim, payload)

    assert second.status_code == payload["response"]["status"], second.get_data(as_text=True)
    assert second.json["externalId"] == first.json["externalId"] == "00g1emea"
    # A lookup by externalId (Okta's and Entra's "externalId eq") finds both: the client
    # that issued the value sees it has two, rather than one picked for it.
    shared = scim("GET", "/Groups", filter='externalId eq "00g1emea"')
    assert found(shared) == ["Sales", "Sales EMEA"]
    # Renaming either keeps the shared value; moving one away works too.
    group_id = second.json["id"]
    put = scim("PUT", f"/Groups/{group_id}", group_body("Sales EU", externalId="00g1emea"))
    assert put.status_code == 200, put.get_data(as_text=True)
    moved = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "externalId", "value": "00g2"}],
    }
    assert scim("PATCH", f"/Groups/{group_id}", moved).status_code == 204
    assert found(scim("GET", "/Groups", filter='externalId eq "00g1emea"')) == ["Sales"]
    # Still scoped to the org.
    other = make_scim(client, "globex")
    assert other("POST", "/Groups", group_body("Sales", externalId="00g1emea")).status_code == 201
    assert other("GET", "/Groups", filter='externalId eq "00g2"').json["totalResults"] == 0
    db.session.expire_all()
    assert (
        db.session.scalar(
            select(func.count()).select_from(Team).where(Team.external_id == "00g1emea")
        )
        == 2
    )


def test_a_role_mapping_by_a_shared_external_id_covers_both_groups(
    client: FlaskClient, root_key: str, scim: Scim
) -> None:
    org = services.get_org(workspace().id, "acme")
    make_member(org, "owner@example.com", "owner")
    ada = scim("POST", "/Users", user_body("ada@people.test")).json["id"]
    grace = scim("POST", "/Users", user_body("grace@people.test")).json["id"]
    scim("POST", "/Groups", group_body("Admins A", [ada], externalId="00gADM"))
    scim("POST", "/Groups", group_body("Admins B", [grace], externalId="00gADM"))
    mapped = client.post(
        "/api/v1/orgs/acme/role-mappings",
        json={"group": "00gADM", "role": "admin"},
        headers=auth(root_key),
    )
    assert mapped.status_code == 200, mapped.json
    db.session.expire_all()
    assert {db.session.get(Membership, m).role for m in (ada, grace)} == {"admin"}


# --- the member cap ----------------------------------------------------------------------


def test_the_member_cap_is_no_duplicate(client: FlaskClient, root_key: str, scim: Scim) -> None:
    payload = golden("okta-create-user-at-member-cap")
    org = services.get_org(workspace().id, "acme")
    make_member(org, "owner@example.com", "owner")
    services.update_org(system_actor(), org, member_cap=2)
    db.session.commit()
    first = scim("POST", "/Users", user_body("ada@people.test"))
    assert first.status_code == 201

    refused = replay(scim, payload)

    body = error(refused, payload["response"]["status"])
    assert "scimType" not in body  # no "uniqueness": nothing is duplicated
    assert "cap of 2" in body["detail"] and "not a duplicate" in body["detail"]
    db.session.expire_all()
    assert db.session.scalar(select(User).where(User.email == "test.user@okta.local")) is None
    # Reactivating a suspended member past the cap is the same refusal.
    deactivate = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert scim("PATCH", f"/Users/{first.json['id']}", deactivate).status_code == 200
    assert scim("POST", "/Users", user_body("grace@people.test")).status_code == 201
    reactivate = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": True}],
    }
    again = error(scim("PATCH", f"/Users/{first.json['id']}", reactivate), 403)
    assert "scimType" not in again
    # The admin API keeps its own code for the same refusal.
    admin = client.post(
        "/api/v1/orgs/acme/members",
        json={"email": "alan@people.test"},
        headers=auth(root_key),
    )
    assert admin.status_code == 409 and admin.json["error"] == "member_cap_reached", admin.json
