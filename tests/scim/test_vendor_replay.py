"""Okta's and Microsoft Entra ID's documented provisioning sequences, replayed over HTTP.

Each test is one vendor flow in the order its documentation lays it out, request after
request, against a real org endpoint. Every response is checked as the IdP reads it (status
and the fields it keeps: ``id``, ``active``, members), and after the flow the database:
membership and its status, the team and its members, roles, the audit trail.

Sources (the request examples of):

- Okta, "Okta and SCIM Version 2.0" (``OKTA_SCIM``): determine if the user exists, create,
  retrieve, update (PUT), deactivate (PATCH); create, find, rename, change membership of,
  replace (PUT) and delete a pushed group.
- Microsoft, "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra
  ID" (``ENTRA_SCIM``), "User operations" and "Group operations"; and "Known issues and
  resolutions with SCIM 2.0 protocol compliance" (``ENTRA_COMPLIANCE``) for what Entra sends
  without the ``aadOptscim062020`` flag.

Bodies are the golden payloads of ``tests/data/`` where one fits (their ``request``), with the
vendor's example ids replaced by the ids this server returned; the others are copied from the
pages above, and say so where they are changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from idp.audit.models import AuditEvent
from idp.credentials.models import ScimToken
from idp.db import db
from idp.orgs.models import (
    Membership,
    MembershipSource,
    MembershipStatus,
    Team,
    TeamMember,
    TeamSource,
)
from idp.orgs.roles import Role
from idp.users.models import User
from tests.scim.conftest import Scim

OKTA_SCIM = "https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20"
ENTRA_SCIM = (
    "https://learn.microsoft.com/entra/identity/app-provisioning/"
    "use-scim-to-provision-users-and-groups"
)

DATA = Path(__file__).parent.parent / "data"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

# The example ids of the vendors' pages, as the golden payloads hold them.
OKTA_USER_ID = "23a35c27-23d3-4c03-b4c5-6443c09e7173"
OKTA_OTHER_USER_ID = "89bb1940-b905-4575-9e7f-6f887cfb368e"
OKTA_GROUP_ID = "abf4dd94-a4c0-4f67-89c9-76b03340cb9b"
ENTRA_MEMBER_ID = "f648f8d5ea4e4cd38e9c"
ENTRA_REMOVED_MEMBER_ID = "u1091"
ENTRA_MANAGER_ID = "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"

ENTRA_USER_NAME = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
ENTRA_EMAIL = "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
ENTRA_EXTERNAL_ID = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"


# --- replaying ---------------------------------------------------------------------------


def golden(name: str, ids: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``request`` of a golden payload, the vendor's example ids replaced by ours."""
    text = json.dumps(json.loads((DATA / f"{name}.json").read_text())["request"])
    for theirs, ours in (ids or {}).items():
        text = text.replace(theirs, ours)
    return json.loads(text)


def wire_get(scim: Scim, path_and_query: str) -> Any:
    """A GET whose query string is sent exactly as the vendor's page writes it."""
    return scim.client.get(
        scim.base + path_and_query, headers={"Authorization": f"Bearer {scim.token}"}
    )


def ok(response: Any, status: int = 200) -> Any:
    """The body of a successful answer; 204 has none (RFC 7644 §3.5.2)."""
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 204:
        assert response.get_data() == b""
        return None
    assert response.content_type.startswith("application/scim+json")
    return response.json


def scim_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    return body


def listed(body: dict[str, Any], total: int) -> list[dict[str, Any]]:
    """The resources of a ListResponse, checked as Okta pages through it (integers)."""
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == total and body["startIndex"] == 1
    assert body["itemsPerPage"] == len(body["Resources"])
    return body["Resources"]


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


# --- the database after ------------------------------------------------------------------


def membership(scim_id: str) -> Membership | None:
    """The membership a SCIM user is, as committed."""
    db.session.expire_all()
    return db.session.get(Membership, scim_id)


def team(team_id: str) -> Team | None:
    db.session.expire_all()
    return db.session.get(Team, team_id)


def team_members(team_id: str) -> set[str]:
    rows = db.session.scalars(
        select(TeamMember.membership_id).where(TeamMember.team_id == team_id)
    ).all()
    assert len(rows) == len(set(rows))
    return set(rows)


def events(action: str, target_id: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    if target_id is not None:
        query = query.where(AuditEvent.target_id == target_id)
    return list(db.session.scalars(query))


def by_the_idp(scim: Scim, found: list[AuditEvent]) -> bool:
    """Every event names the org's SCIM token as its actor."""
    credential = db.session.scalar(select(ScimToken).where(ScimToken.name == "idp"))
    return bool(found) and all(
        (e.actor_type, e.actor_id, e.actor_label) == ("scim_token", credential.id, "scim_token:idp")
        for e in found
    )


# --- Okta --------------------------------------------------------------------------------


def okta_user(scim: Scim, login: str, external_id: str) -> str:
    """Okta's documented create, for another person: the golden body with their login."""
    body = golden("okta-create-user")
    body["userName"] = body["emails"][0]["value"] = login
    body["externalId"] = external_id
    return ok(scim("POST", "/Users", body), 201)["id"]


def test_okta_user_create_update_deactivate_reactivate(scim: Scim) -> None:
    """OKTA_SCIM, "Create Users", "Retrieve a specific User", "Update a specific User (PUT)",
    "Update a specific User (PATCH)": the order Okta's lifecycle sends them in."""
    # Determine if the User already exists: the exact query string of the page.
    exists = wire_get(
        scim, "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100"
    )
    assert ok(exists) == {
        "schemas": [LIST],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }

    # Create the User: groups [] (read-only) and a password (write-only) are not echoed.
    response = scim("POST", "/Users", golden("okta-create-user"))
    created = ok(response, 201)
    user_id = created["id"]
    assert created["schemas"] == [USER]
    assert created["userName"] == "test.user@okta.local"
    assert created["externalId"] == "00ujl29u0le5T6Aj10h7"
    assert created["name"] == {"givenName": "Test", "familyName": "User"}
    assert (created["displayName"], created["locale"], created["active"]) == (
        "Test User",
        "en-US",
        True,
    )
    assert "password" not in created and "groups" not in created
    assert response.headers["Location"] == created["meta"]["location"]
    assert created["meta"]["location"].endswith(f"{scim.base}/Users/{user_id}")
    joined = membership(user_id)
    assert (joined.status, joined.source, joined.role) == (
        MembershipStatus.ACTIVE,
        MembershipSource.SCIM,
        Role.MEMBER,
    )
    assert (joined.user.email, joined.user.name) == ("test.user@okta.local", "Test User")

    # Okta matches on the next run: the same query now finds the user it created.
    again = wire_get(
        scim, "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100"
    )
    assert [u["id"] for u in listed(ok(again), 1)] == [user_id]

    # Retrieve a specific User (Okta reads before every PUT).
    read = ok(scim("GET", f"/Users/{user_id}"))
    assert read == created

    # Update the User: the full object, id, groups and meta echoed as read.
    body = golden("okta-put-user-full-object", {OKTA_USER_ID: user_id})
    assert body["id"] == user_id and body["groups"] == []
    body["meta"] = read["meta"]
    replaced = ok(scim("PUT", f"/Users/{user_id}", body))
    assert replaced["id"] == user_id and replaced["userName"] == "test.user@okta.local"
    assert replaced["name"] == {
        "givenName": "Another",
        "middleName": "Excited",
        "familyName": "User",
    }
    assert replaced["emails"] == body["emails"] and replaced["active"] is True
    # PUT replaces (RFC 7644 §3.5.1): what the page's body leaves out is gone.
    assert not {"displayName", "locale", "externalId"} & set(replaced)
    assert replaced["meta"]["version"] == 'W/"2"'
    assert replaced["meta"]["created"] == created["meta"]["created"]

    # Deactivate: a path-less replace of active; the answer is the updated User.
    deactivated = ok(scim("PATCH", f"/Users/{user_id}", golden("okta-patch-user-deactivate")))
    assert deactivated["active"] is False and deactivated["name"] == replaced["name"]
    assert membership(user_id).status is MembershipStatus.SUSPENDED
    # Okta's import still sees a deactivated user, and GET still answers for it.
    assert ok(scim("GET", f"/Users/{user_id}"))["active"] is False
    inactive = ok(scim("GET", "/Users", filter="active eq false", startIndex=1, count=100))
    assert [u["id"] for u in listed(inactive, 1)] == [user_id]

    # Reactivate: the same operation with true.
    reactivated = ok(
        scim("PATCH", f"/Users/{user_id}", patch({"op": "replace", "value": {"active": True}}))
    )
    assert reactivated["active"] is True
    assert membership(user_id).status is MembershipStatus.ACTIVE
    assert ok(scim("GET", "/Users", startIndex=1, count=100))["totalResults"] == 1

    person = membership(user_id).user_id
    assert [e.action for e in events("member.provisioned")] == ["member.provisioned"]
    suspended, restored = events("member.suspended", person), events("member.reactivated", person)
    assert len(suspended) == len(restored) == 1
    assert by_the_idp(scim, suspended + restored + events("member.provisioned"))


def test_okta_group_push(scim: Scim) -> None:
    """OKTA_SCIM, "SCIM Group operations": create (with a member), find, rename (the id
    echoed), add, remove by filter and add in one request, PUT, replace members, delete."""
    alice = okta_user(scim, "test.user@okta.local", "00u1")
    bob = okta_user(scim, "bob@okta.local", "00u2")
    carol = okta_user(scim, "carol@okta.local", "00u3")
    wanted = "/Groups?filter=displayName%20eq%20%22Test%20SCIMv2%22&startIndex=1&count=100"
    assert listed(ok(wire_get(scim, wanted)), 0) == []

    # Create Groups: the golden body, pushed with its first member this time.
    body = golden("okta-create-group")
    body["members"] = [{"value": alice, "display": "test.user@okta.local"}]
    group = ok(scim("POST", "/Groups", body), 201)
    group_id = group["id"]
    assert group["schemas"] == [GROUP] and group["displayName"] == "Test SCIMv2"
    assert [m["value"] for m in group["members"]] == [alice]
    made = team(group_id)
    assert (made.name, made.source) == ("Test SCIMv2", TeamSource.SCIM)
    assert team_members(group_id) == {alice}

    # Retrieve Groups: by name, then all of them, then this one.
    assert [g["id"] for g in listed(ok(wire_get(scim, wanted)), 1)] == [group_id]
    assert [g["id"] for g in listed(ok(wire_get(scim, "/Groups?startIndex=1&count=100")), 1)] == [
        group_id
    ]
    assert [m["value"] for m in ok(scim("GET", f"/Groups/{group_id}"))["members"]] == [alice]

    # Update a specific Group name: a path-less replace that echoes the group's id.
    rename = golden("okta-patch-group-rename", {OKTA_GROUP_ID: group_id})
    assert rename["Operations"][0]["value"]["id"] == group_id
    ok(scim("PATCH", f"/Groups/{group_id}", rename), 204)
    assert team(group_id).name == "Test SCIMv20"
    assert team_members(group_id) == {alice}  # a rename leaves the members alone

    # Update specific Group membership: an add, then the page's remove-by-filter-and-add.
    add = patch(
        {"op": "add", "path": "members", "value": [{"value": bob, "display": "bob@okta.local"}]}
    )
    ok(scim("PATCH", f"/Groups/{group_id}", add), 204)
    assert team_members(group_id) == {alice, bob}
    ok(scim("PATCH", f"/Groups/{group_id}", rename), 204)  # re-sent before each change
    swap = golden("okta-patch-group-members", {OKTA_OTHER_USER_ID: alice, OKTA_USER_ID: carol})
    assert swap["Operations"][0]["path"] == f'members[value eq "{alice}"]'
    ok(scim("PATCH", f"/Groups/{group_id}", swap), 204)
    assert team_members(group_id) == {bob, carol}
    current = ok(scim("GET", f"/Groups/{group_id}"))
    assert current["displayName"] == "Test SCIMv20"
    assert sorted(m["value"] for m in current["members"]) == sorted([bob, carol])

    # PUT (app integrations made with the wizard): the whole group, members included.
    put = {
        "schemas": [GROUP],
        "id": group_id,
        "displayName": "Test SCIMv20",
        "members": [{"value": carol, "display": "carol@okta.local"}],
        "meta": {"resourceType": "Group"},
    }
    replaced = ok(scim("PUT", f"/Groups/{group_id}", put))
    assert replaced["id"] == group_id and replaced["displayName"] == "Test SCIMv20"
    assert [m["value"] for m in replaced["members"]] == [carol]
    assert team_members(group_id) == {carol}

    # A full push of the membership with replace.
    push = golden(
        "okta-patch-group-replace-members", {OKTA_USER_ID: alice, OKTA_OTHER_USER_ID: bob}
    )
    ok(scim("PATCH", f"/Groups/{group_id}", push), 204)
    assert team_members(group_id) == {alice, bob}
    alice_now = ok(scim("GET", f"/Users/{alice}"))
    assert [(g["value"], g["display"]) for g in alice_now["groups"]] == [(group_id, "Test SCIMv20")]
    assert "groups" not in ok(scim("GET", f"/Users/{carol}"))

    # Delete a specific Group: the team goes, the people stay.
    ok(scim("DELETE", f"/Groups/{group_id}"), 204)
    scim_error(scim("GET", f"/Groups/{group_id}"), 404)
    assert team(group_id) is None and team_members(group_id) == set()
    assert listed(ok(wire_get(scim, wanted)), 0) == []
    for user_id in (alice, bob, carol):
        assert membership(user_id).status is MembershipStatus.ACTIVE
        assert "groups" not in ok(scim("GET", f"/Users/{user_id}"))
    assert by_the_idp(scim, events("team.created") + events("team.members_changed"))


# --- Microsoft Entra ID ------------------------------------------------------------------

# ENTRA_SCIM, "Create User" (request), with the enterprise attributes of the golden PATCH
# payloads' resource added: the page lists the enterprise schema but sends none of it.
ENTRA_CREATE_USER: dict[str, Any] = {
    "schemas": [USER, ENTERPRISE],
    "externalId": ENTRA_EXTERNAL_ID,
    "userName": ENTRA_USER_NAME,
    "active": True,
    "emails": [{"primary": True, "type": "work", "value": ENTRA_EMAIL}],
    "meta": {"resourceType": "User"},
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName",
    },
    "roles": [],
    ENTERPRISE: {"employeeNumber": "0001", "department": "Sales"},
}


def entra_user(scim: Scim, user_name: str) -> str:
    body = json.loads(json.dumps(ENTRA_CREATE_USER))
    body.pop(ENTERPRISE)
    body["schemas"] = [USER]
    body["userName"] = user_name
    body["externalId"] = f"ext-{user_name}"
    body["emails"][0]["value"] = f"{user_name}@testuser.com"
    return ok(scim("POST", "/Users", body), 201)["id"]


def by_user_name(user_name: str) -> str:
    """Entra's query string (it encodes the filter; the page shows it decoded)."""
    return "/Users?filter=" + quote(f'userName eq "{user_name}"')


def test_entra_user_lifecycle(scim: Scim) -> None:
    """ENTRA_SCIM, "User operations", and ENTRA_COMPLIANCE: query, create, the PATCH forms
    Entra sends (capitalised ops, dotted path-less keys, the manager as a bare id, "False"),
    query by externalId, disable, delete."""
    manager = entra_user(scim, "Test_User_manager")

    # Get User by query - Zero results: Entra matches before it creates.
    assert listed(ok(wire_get(scim, by_user_name(ENTRA_USER_NAME))), 0) == []

    # Create User: the echoed meta and the empty roles are dropped; the extension is kept.
    created = ok(scim("POST", "/Users", ENTRA_CREATE_USER), 201)
    user_id = created["id"]
    assert set(created["schemas"]) == {USER, ENTERPRISE}
    assert (created["userName"], created["externalId"]) == (ENTRA_USER_NAME, ENTRA_EXTERNAL_ID)
    assert created["emails"] == ENTRA_CREATE_USER["emails"] and created["active"] is True
    assert created[ENTERPRISE] == {"employeeNumber": "0001", "department": "Sales"}
    assert "roles" not in created and created["meta"]["resourceType"] == "User"
    joined = membership(user_id)
    assert (joined.status, joined.source) == (MembershipStatus.ACTIVE, MembershipSource.SCIM)
    # The userName is no email; the primary work email links the person.
    assert joined.user.email.lower() == ENTRA_EMAIL.lower()
    assert joined.user.name == "givenName familyName"

    # Get User, and Get User by query.
    assert ok(scim("GET", f"/Users/{user_id}")) == created
    assert [u["id"] for u in listed(ok(wire_get(scim, by_user_name(ENTRA_USER_NAME))), 1)] == [
        user_id
    ]

    # Update User [Multi-valued properties] (ENTRA_SCIM, request as the page shows it).
    multi = patch(
        {
            "op": "Replace",
            "path": 'emails[type eq "work"].value',
            "value": "updatedEmail@microsoft.com",
        },
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
    )
    updated = ok(scim("PATCH", f"/Users/{user_id}", multi))
    assert updated["emails"] == [
        {"primary": True, "type": "work", "value": "updatedEmail@microsoft.com"}
    ]
    assert updated["name"]["familyName"] == "updatedFamilyName"
    assert updated["meta"]["version"] == 'W/"2"'

    # Capitalised ops on six attributes, externalId and an extension attribute among them.
    updated = ok(scim("PATCH", f"/Users/{user_id}", golden("entra-patch-user-replace-capitalised")))
    assert (updated["displayName"], updated["externalId"]) == ("Pvlo", "Eqpj")
    assert updated["name"] == {
        "formatted": "givenName familyName",
        "familyName": "Pkqf",
        "givenName": "Gtfd",
    }
    assert updated["emails"][0]["value"] == "TestBcwqnm@test.microsoft.com"
    assert updated[ENTERPRISE] == {"employeeNumber": "Eqpj", "department": "Sales"}

    # A path-less replace whose keys are paths: nested, the rest of name kept.
    updated = ok(
        scim("PATCH", f"/Users/{user_id}", golden("entra-patch-user-pathless-dotted-keys"))
    )
    assert updated["displayName"] == "Bjfe"
    assert updated["name"] == {
        "formatted": "givenName familyName",
        "familyName": "Unua",
        "givenName": "Kkom",
    }
    assert updated[ENTERPRISE] == {"employeeNumber": "Aklq", "department": "Sales"}
    assert updated["emails"][0]["value"] == "TestMhvaes@test.microsoft.com"

    # The manager as a bare id (here the id of the manager this server gave).
    updated = ok(
        scim(
            "PATCH",
            f"/Users/{user_id}",
            golden("entra-patch-user-manager-string", {ENTRA_MANAGER_ID: manager}),
        )
    )
    assert updated[ENTERPRISE]["manager"]["value"] == manager
    assert updated[ENTERPRISE]["employeeNumber"] == "Aklq"

    # "Add" of a single-valued string attribute.
    updated = ok(scim("PATCH", f"/Users/{user_id}", golden("entra-patch-user-add-capitalised")))
    assert updated["nickName"] == "Babs" and updated["displayName"] == "Bjfe"

    # Update User [Single-valued properties]: a new userName.
    renamed_to = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    updated = ok(
        scim(
            "PATCH",
            f"/Users/{user_id}",
            patch({"op": "Replace", "path": "userName", "value": renamed_to}),
        )
    )
    assert updated["userName"] == renamed_to

    # Query by externalId (Entra's matching attribute may be externalId), and by old name.
    by_external_id = wire_get(scim, "/Users?filter=" + quote('externalId eq "Eqpj"'))
    [found] = listed(ok(by_external_id), 1)
    assert (found["id"], found["userName"], found["nickName"]) == (user_id, renamed_to, "Babs")
    assert listed(ok(wire_get(scim, by_user_name(ENTRA_USER_NAME))), 0) == []
    # The directory speaks for this org only: the person's email is unchanged.
    assert membership(user_id).user.email.lower() == ENTRA_EMAIL.lower()

    # Disable User: "False" as a string.
    disabled = ok(scim("PATCH", f"/Users/{user_id}", golden("entra-patch-user-active-string")))
    assert disabled["active"] is False and disabled["nickName"] == "Babs"
    assert membership(user_id).status is MembershipStatus.SUSPENDED
    assert listed(ok(scim("GET", "/Users", filter='externalId eq "Eqpj"')), 1)[0]["active"] is False

    # Delete User: the membership goes, the person stays.
    person = membership(user_id).user_id
    ok(scim("DELETE", f"/Users/{user_id}"), 204)
    assert membership(user_id) is None
    scim_error(scim("GET", f"/Users/{user_id}"), 404)
    assert listed(ok(scim("GET", "/Users", filter='externalId eq "Eqpj"')), 0) == []
    assert db.session.get(User, person) is not None
    assert membership(manager).status is MembershipStatus.ACTIVE
    assert by_the_idp(
        scim,
        events("member.provisioning_updated", person)
        + events("member.suspended", person)
        + events("member.removed", person),
    )
    # Six updates, and the disable (active is part of what the IdP sent, so it is kept too).
    assert len(events("member.provisioning_updated", person)) == 7


def test_entra_group_lifecycle(scim: Scim) -> None:
    """ENTRA_SCIM, "Group operations": create (the ADSCIM schema, no members), find by
    displayName without members, rename, add members, remove them with a value list, delete."""
    first = entra_user(scim, "Test_User_one")
    second = entra_user(scim, "Test_User_two")
    by_name = "/Groups?excludedAttributes=members&filter=" + quote('displayName eq "displayName"')
    assert listed(ok(wire_get(scim, by_name)), 0) == []

    # Create Group: a Microsoft schema URI beside the Group schema, and an echoed meta.
    created = ok(scim("POST", "/Groups", golden("entra-create-group-adscim-schema")), 201)
    group_id = created["id"]
    assert created["schemas"] == [GROUP]
    assert created["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    assert created["displayName"] == "displayName" and not created.get("members")
    made = team(group_id)
    assert (made.name, made.external_id, made.source) == (
        "displayName",
        "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        TeamSource.SCIM,
    )

    # Get Group by displayName, and Get Group, both without members.
    [found] = listed(ok(wire_get(scim, by_name)), 1)
    assert found["id"] == group_id and "members" not in found
    one = ok(wire_get(scim, f"/Groups/{group_id}?excludedAttributes=members"))
    assert one["id"] == group_id and "members" not in one

    # Update Group [Add Members]: capitalised op and a null $ref in each member.
    add = golden("entra-patch-group-add-members", {ENTRA_MEMBER_ID: first})
    add["Operations"][0]["value"].append({"$ref": None, "value": second})
    ok(scim("PATCH", f"/Groups/{group_id}", add), 204)
    assert team_members(group_id) == {first, second}
    # Members come back when asked for, and excluded when not.
    members = ok(scim("GET", f"/Groups/{group_id}"))["members"]
    assert sorted(m["value"] for m in members) == sorted([first, second])
    [found] = listed(ok(wire_get(scim, by_name)), 1)
    assert "members" not in found
    # Adding a member again changes nothing, not even the version (Entra retries).
    version = ok(scim("GET", f"/Groups/{group_id}"))["meta"]["version"]
    ok(scim("PATCH", f"/Groups/{group_id}", add), 204)
    assert team_members(group_id) == {first, second}
    assert ok(scim("GET", f"/Groups/{group_id}"))["meta"]["version"] == version

    # Update Group [Non-member attributes]: a rename; the members stay.
    rename = patch({"op": "Replace", "path": "displayName", "value": "displayNameUpdated"})
    ok(scim("PATCH", f"/Groups/{group_id}", rename), 204)
    assert team(group_id).name == "displayNameUpdated"
    assert team_members(group_id) == {first, second}
    assert listed(ok(wire_get(scim, by_name)), 0) == []

    # Update Group [Remove Members]: a value list, with $ref null as ENTRA_SCIM shows it.
    remove = golden("entra-patch-group-remove-members-value-list", {ENTRA_REMOVED_MEMBER_ID: first})
    remove["Operations"][0]["value"][0]["$ref"] = None
    ok(scim("PATCH", f"/Groups/{group_id}", remove), 204)
    assert team_members(group_id) == {second}
    assert "groups" not in ok(scim("GET", f"/Users/{first}"))
    second_groups = ok(scim("GET", f"/Users/{second}"))["groups"]
    assert [(g["value"], g["display"]) for g in second_groups] == [(group_id, "displayNameUpdated")]

    # Delete Group.
    ok(scim("DELETE", f"/Groups/{group_id}"), 204)
    assert team(group_id) is None and team_members(group_id) == set()
    scim_error(scim("GET", f"/Groups/{group_id}"), 404)
    assert membership(first) and membership(second)
    assert by_the_idp(scim, events("team.created", group_id) + events("team.deleted", group_id))


# --- role mapping, end to end ------------------------------------------------------------


def test_a_mapped_group_sets_the_role_of_its_members(scim: Scim, runner: FlaskCliRunner) -> None:
    """An operator maps the IdP group "Gatehouse Admins" to admin; the IdP then pushes it."""
    result = runner.invoke(
        args=["role-mapping", "set", "acme", "--group", "Gatehouse Admins", "--role", "admin"]
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    ada = entra_user(scim, "ada")
    bob = entra_user(scim, "bob")
    assert membership(ada).role == Role.MEMBER

    # The IdP creates the group with ada in it: ada becomes an admin at once.
    group = ok(
        scim(
            "POST",
            "/Groups",
            {"schemas": [GROUP], "displayName": "Gatehouse Admins", "members": [{"value": ada}]},
        ),
        201,
    )
    assert membership(ada).role == Role.ADMIN
    assert membership(bob).role == Role.MEMBER

    # The IdP removes ada from the group: a member again.
    remove = patch({"op": "remove", "path": f'members[value eq "{ada}"]'})
    ok(scim("PATCH", f"/Groups/{group['id']}", remove), 204)
    assert membership(ada).role == Role.MEMBER

    # Added back, then the group is deleted: the role follows both ways.
    ok(
        scim(
            "PATCH",
            f"/Groups/{group['id']}",
            golden("entra-patch-group-add-members", {ENTRA_MEMBER_ID: ada}),
        ),
        204,
    )
    assert membership(ada).role == Role.ADMIN
    ok(scim("DELETE", f"/Groups/{group['id']}"), 204)
    assert membership(ada).role == Role.MEMBER
    assert membership(ada).assigned_role == Role.MEMBER  # the mapping never set it by hand

    person = membership(ada).user_id
    changes = events("member.role_changed", person)
    assert [(e.before["role"], e.after["role"]) for e in changes] == [
        ("member", "admin"),
        ("admin", "member"),
        ("member", "admin"),
        ("admin", "member"),
    ]
    assert all(e.after["reason"] == "role_mapping" for e in changes)
    assert by_the_idp(scim, changes)
    [mapping_set] = events("role_mapping.set")
    assert (mapping_set.actor_type, mapping_set.actor_label) == ("system", "cli")
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "member.role_changed", AuditEvent.target_id != person)
        )
        == 0
    )
