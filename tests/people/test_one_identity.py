"""One person, one membership per org, through every route, against the real ``oidc-provider``
on loopback with two connections of one org, a real SMTP inbox, and the browser's cookies."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.actors import system_actor
from idp.connections import services as connections
from idp.connections.models import Connection, ConnectionKind, ExternalIdentity
from idp.db import db, new_id
from idp.orgs.models import Invitation, InvitationStatus, Membership, MembershipStatus, Organization
from idp.orgs.roles import Role
from idp.orgs.services import set_member_status
from idp.sso import oidc
from tests.builders import make_key, make_member, make_org
from tests.conftest import ISSUER
from tests.forms import form_post
from tests.oauth.conftest import exchange, get_code, make_app, refresh
from tests.peers import Browser, OidcIdp
from tests.test_mail import Inbox

FIRST, SECOND = new_id("con"), new_id("con")
CLIENTS = {
    FIRST: ("acme-first", "first-secret-" + secrets.token_hex(8)),
    SECOND: ("acme-second", "second-secret-" + secrets.token_hex(8)),
}
ACCOUNTS = {
    "ann": {
        "password": "ann-password",
        "claims": {"email": "ann@acme.example", "email_verified": True, "name": "Ann Example"},
    }
}
CONFIRM = re.compile(r"http://gatehouse\.test(/sso/confirm\?token=\S+)")
EMAIL_LINK = re.compile(r"http://gatehouse\.test(/login/email\?token=\S+)")
INVITATION = re.compile(r"http://gatehouse\.test(/invitations/accept\?\S+)")


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIdp]:
    clients = [
        {
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uris": [f"{ISSUER}/sso/oidc/{connection_id}/callback"],
        }
        for connection_id, (client_id, secret) in CLIENTS.items()
    ]
    with OidcIdp(clients=clients, accounts=ACCOUNTS) as server:
        yield server


@pytest.fixture
def settings_overrides(inbox: Inbox) -> dict[str, Any]:
    return {"ALLOW_HTTP_LOOPBACK": True, "SMTP_URL": f"smtp://127.0.0.1:{inbox.port}"}


def connect(org: Organization, idp: OidcIdp, connection_id: str, monkeypatch: Any) -> Connection:
    """One of the org's OIDC connections to the real IdP, with the id the IdP registered."""
    monkeypatch.setattr(connections, "new_id", lambda _prefix: connection_id)
    client_id, secret = CLIENTS[connection_id]
    made = connections.create_connection(
        system_actor(),
        org,
        kind=ConnectionKind.OIDC,
        name=f"IdP {client_id}",
        settings=oidc.build_settings(idp.issuer, client_id, scopes=("openid", "email", "profile")),
        secret=secret,
    )
    db.session.commit()
    return made


def sso(client: FlaskClient, idp: OidcIdp, connection_id: str) -> Any:
    """Ann signs in at the IdP through one of the org's connections; Gatehouse's answer."""
    begun = client.get(f"/sso/oidc/{connection_id}/login")
    assert begun.status_code == 302, begun.text
    browser = Browser([idp.base_url])
    page = browser.get(begun.headers["Location"])
    done = browser.submit_form(page, {"login": "ann", "password": "ann-password"})
    assert done.location is not None, done.text
    return client.get(f"/sso/oidc/{connection_id}/callback", query_string=done.redirect_params())


def confirm(client: FlaskClient, inbox: Inbox) -> Any:
    """Ann opens the newest confirmation mail in the same browser and confirms."""
    path = CONFIRM.search(inbox.messages[-1].body).group(1)  # type: ignore[union-attr]
    assert client.get(path).status_code == 200  # a page that asks; nothing used up
    return form_post(client, path)


def memberships(org: Organization) -> list[Membership]:
    db.session.rollback()  # what the requests committed
    return list(db.session.scalars(select(Membership).where(Membership.org_id == org.id)))


def test_three_routes_one_membership_and_suspension_stops_every_route(
    app: Flask, client: FlaskClient, idp: OidcIdp, inbox: Inbox, monkeypatch: Any
) -> None:
    org = make_org("acme")  # acme.example is not verified
    make_member(org, "boss@elsewhere.example", Role.OWNER)
    invited = client.post(
        "/api/v1/orgs/acme/invitations",
        json={"email": "ann@acme.example", "role": "owner"},
        headers={"Authorization": f"Bearer {make_key()}"},
    )
    assert invited.status_code == 201, invited.json
    invitation_mail = inbox.messages[-1]
    connect(org, idp, FIRST, monkeypatch)
    connect(org, idp, SECOND, monkeypatch)

    # First SSO login: the IdP's address is unproven and an invitation waits for it, so the
    # person confirms the address by mail in this browser; then the invitation is applied.
    pending = sso(client, idp, FIRST)
    assert pending.status_code == 200, pending.text
    assert pending.headers["X-Gatehouse-Pending"] == "email_proof_required"
    assert client.get_cookie("gatehouse_session") is None
    assert inbox.messages[-1].rcpt_tos == ["ann@acme.example"]
    signed_in = confirm(client, inbox)
    assert signed_in.status_code == 303, signed_in.text
    rows = [m for m in memberships(org) if m.email_key == "ann@acme.example"]
    assert len(rows) == 1 and rows[0].role == Role.OWNER
    ann = rows[0]
    invitation = db.session.scalars(select(Invitation)).one()
    assert (invitation.status, invitation.accepted_by_user_id) == (
        InvitationStatus.ACCEPTED,
        ann.user_id,
    )

    # The second connection of the same org: the same person, linked to the same membership.
    pending = sso(client, idp, SECOND)
    assert pending.headers["X-Gatehouse-Pending"] == "email_proof_required"
    assert confirm(client, inbox).status_code == 303
    rows = [m for m in memberships(org) if m.email_key == "ann@acme.example"]
    assert [m.id for m in rows] == [ann.id]
    subjects = db.session.scalars(select(ExternalIdentity.user_id)).all()
    assert sorted(set(subjects)) == [ann.user_id] and len(subjects) == 2
    # Each connection now signs her in at once.
    assert sso(client, idp, FIRST).status_code == 303
    assert sso(client, idp, SECOND).status_code == 303

    # The emailed invitation, opened afterwards, has been used by that first join.
    path = INVITATION.search(invitation_mail.body).group(1)  # type: ignore[union-attr]
    assert client.get(path).status_code == 410
    assert len([m for m in memberships(org) if m.email_key == "ann@acme.example"]) == 1

    # An app holds her tokens; forward-auth lets her through.
    app_client = make_app()
    code = get_code(client, app_client, organization="acme")
    tokens = exchange(client, app_client, code).json
    assert "refresh_token" in tokens
    assert client.get("/auth/check", headers={"X-Gatehouse-Org": "acme"}).status_code == 200

    # Suspended: every route stops on its next request.
    set_member_status(system_actor(), org, ann.user_id, MembershipStatus.SUSPENDED)
    db.session.commit()
    assert client.get("/auth/check", headers={"X-Gatehouse-Org": "acme"}).status_code == 401
    assert refresh(client, app_client, tokens["refresh_token"]).status_code == 400
    refused = sso(client, idp, FIRST)
    assert refused.headers["X-Gatehouse-Error"] == "member_suspended"
    fresh = client.application.test_client()
    assert form_post(fresh, "/login", data={"email": "ann@acme.example"}).status_code == 200
    link = EMAIL_LINK.search(inbox.messages[-1].body).group(1)  # type: ignore[union-attr]
    used = form_post(fresh, link)
    assert used.status_code == 403 and used.headers["X-Gatehouse-Error"] == "no_membership"
