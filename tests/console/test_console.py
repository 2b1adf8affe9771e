"""The org console over HTTP: who sees what, every action through the same services as the
API, errors beside the field with what was typed kept, and another org's pages not found."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.db import db
from idp.errors import BadRequest
from idp.oauth.services import create_client
from idp.orgs import services
from idp.orgs.custom_roles import register_permission
from idp.orgs.models import Invitation, Membership, MembershipStatus
from idp.orgs.roles import Role
from idp.resources import services as resources
from tests.builders import make_member, make_org, signed_in_cookie

MEMBERS = "/console/orgs/acme/members"


def sign_in(client: FlaskClient, membership: Membership) -> None:
    client.set_cookie("gatehouse_session", signed_in_cookie(membership))


def csrf(page_text: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page_text).group(1)  # type: ignore[union-attr]


def test_nobody_signed_in_is_sent_to_the_sign_in_page(client: FlaskClient) -> None:
    make_org("acme")
    answer = client.get(MEMBERS)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/login?next=%2Fconsole%2Forgs%2Facme%2Fmembers"
    assert client.get("/console").headers["Location"].startswith("/login")


def test_an_admin_sees_the_members_and_invites(client: FlaskClient) -> None:
    org = make_org("acme", name="Acme")
    make_member(org, "owner@acme.example", Role.OWNER)
    admin = make_member(org, "admin@acme.example", Role.ADMIN)
    make_member(org, "ann@acme.example")
    sign_in(client, admin)
    assert client.get("/console").headers["Location"] == "/console/orgs/acme/members"
    page = client.get(MEMBERS)
    assert page.status_code == 200
    assert "ann@acme.example" in page.text and "3</strong> of 500 seats" in page.text
    filtered = client.get(MEMBERS, query_string={"role": "owner"})
    assert "owner@acme.example" in filtered.text and "ann@acme.example" not in filtered.text
    found = client.get(MEMBERS, query_string={"q": "ANN"})
    assert "ann@acme.example" in found.text and "owner@acme.example</td>" not in found.text

    # Bad input: the error beside the field, what was typed kept, nothing stored.
    token = csrf(page.text)
    bad = client.post(
        "/console/orgs/acme/invitations",
        data={"csrf_token": token, "email": "not-an-address", "role": "member"},
    )
    assert bad.status_code == 400
    assert 'id="email-error"' in bad.text and 'value="not-an-address"' in bad.text
    above = client.post(
        "/console/orgs/acme/invitations",
        data={"csrf_token": token, "email": "x@acme.example", "role": "owner"},
    )
    assert above.status_code == 400 and 'id="role-error"' in above.text  # not a role they may give
    assert db.session.scalar(select(func.count()).select_from(Invitation)) == 0
    sent = client.post(
        "/console/orgs/acme/invitations",
        data={"csrf_token": token, "email": "new@acme.example", "role": "member"},
    )
    assert sent.status_code == 303
    invitation = db.session.scalars(select(Invitation)).one()
    assert invitation.email == "new@acme.example" and invitation.invited_by.startswith("user:")
    pending = client.get(MEMBERS, query_string={"tab": "invitations"})
    assert "Cancel invitation for new@acme.example" in pending.text


def test_an_admin_changes_roles_suspends_and_removes_but_not_owners(client: FlaskClient) -> None:
    org = make_org("acme")
    owner = make_member(org, "owner@acme.example", Role.OWNER)
    admin = make_member(org, "admin@acme.example", Role.ADMIN)
    ann = make_member(org, "ann@acme.example")
    sign_in(client, admin)
    token = csrf(client.get(MEMBERS).text)
    base = f"/console/orgs/acme/members/{ann.user_id}"
    assert (
        client.post(f"{base}/role", data={"csrf_token": token, "role": "admin"}).status_code == 303
    )
    assert services.get_membership(org.id, ann.user_id, fresh=True).role == Role.ADMIN
    assert client.post(f"{base}/suspend", data={"csrf_token": token}).status_code == 303
    assert (
        services.get_membership(org.id, ann.user_id, fresh=True).status
        is MembershipStatus.SUSPENDED
    )
    # An admin cannot touch an owner: refused by the service, said on the page.
    refused = client.post(
        f"/console/orgs/acme/members/{owner.user_id}/suspend", data={"csrf_token": token}
    )
    assert refused.status_code == 303
    assert "Only an owner" in client.get(MEMBERS).text
    assert (
        services.get_membership(org.id, owner.user_id, fresh=True).status is MembershipStatus.ACTIVE
    )
    # Without the form's token nothing happens.
    assert client.post(f"{base}/remove").status_code == 400
    assert client.post(f"{base}/remove", data={"csrf_token": token}).status_code == 303
    assert (
        db.session.scalar(
            select(func.count()).select_from(type(ann)).where(type(ann).user_id == ann.user_id)
        )
        == 0
    )


def test_a_member_cannot_reach_admin_pages_and_another_org_is_not_found(
    client: FlaskClient,
) -> None:
    org = make_org("acme")
    make_member(org, "owner@acme.example", Role.OWNER)
    ann = make_member(org, "ann@acme.example")
    beta = make_org("beta")
    make_member(beta, "bee@beta.example", Role.OWNER)
    sign_in(client, ann)
    page = client.get(MEMBERS)
    assert page.status_code == 403 and "does not include this page" in page.text
    assert "owner@acme.example" not in page.text
    refused = client.post(
        "/console/orgs/acme/invitations", data={"email": "x@acme.example", "role": "member"}
    )
    assert refused.status_code in (400, 403)
    other = client.get("/console/orgs/beta/members")
    assert other.status_code == 404 and "bee@beta.example" not in other.text
    assert client.get("/console/orgs/nope/members").status_code == 404


def test_an_invitation_names_its_target_the_org_or_a_project(client: FlaskClient) -> None:
    org = make_org("acme", name="Acme")
    admin = make_member(org, "admin@acme.example", Role.ADMIN)
    system = system_actor()
    register_permission(system, org.workspace_id, key="projects:deploy")
    resources.create_resource_type(
        system,
        org.workspace_id,
        key="project",
        roles=[{"key": "developer", "permissions": ["projects:deploy"]}],
        invite_outsiders=True,
    )
    resources.create_resource(system, org, type="project", id="p1", name="Payments")
    db.session.commit()
    sign_in(client, admin)
    page = client.get(MEMBERS)
    assert '<option value="project:p1">Project: Payments</option>' in page.text
    token = csrf(page.text)
    mixed = client.post(
        "/console/orgs/acme/invitations",
        data={
            "csrf_token": token,
            "email": "dev@else.example",
            "target": "project:p1",
            "role": "member",
        },
    )
    assert mixed.status_code == 400 and 'id="role-error"' in mixed.text
    sent = client.post(
        "/console/orgs/acme/invitations",
        data={
            "csrf_token": token,
            "email": "dev@else.example",
            "target": "project:p1",
            "role": "project:developer",
        },
    )
    assert sent.status_code == 303
    invitation = db.session.scalars(select(Invitation)).one()
    assert invitation.resource_id is not None and invitation.role == Role.GUEST


def test_a_sign_in_without_next_goes_to_the_app(client: FlaskClient, app: Any) -> None:
    org = make_org("acme", name="Acme")
    ann = make_member(org, "ann@acme.example")
    sign_in(client, ann)
    page = client.get("/")
    assert page.status_code == 200 and "Signed in as ann@acme.example to Acme" in page.text
    create_client(
        org.workspace_id,
        name="Portal",
        redirect_uris=["https://app.example/cb"],
        initiate_login_uri="https://app.example/login",
    )
    db.session.commit()
    assert client.get("/").headers["Location"] == "https://app.example/login"
    client.delete_cookie("gatehouse_session")
    assert client.get("/").headers["Location"] == "/login"
    with pytest.raises(BadRequest):
        create_client(
            org.workspace_id,
            name="X",
            redirect_uris=["https://x.example/cb"],
            initiate_login_uri="http://x.example/",
        )
