"""The browser's sign-in: home-realm discovery by verified domain, ``?org=``, one-time email
links (through a real SMTP server on loopback), invitation acceptance, sign-out."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from idp.actors import system_actor
from idp.connections.models import ConnectionKind
from idp.connections.services import create_connection
from idp.db import db, utcnow
from idp.login.cookies import signed_session_cookie
from idp.orgs import invitations
from idp.orgs.models import Membership
from idp.orgs.roles import Role
from idp.people.signin import IdpAssertion, sign_in
from idp.sessions.models import EmailLink, Session, SessionMethod
from tests.builders import make_member, make_org, make_verified_domain
from tests.forms import form_post
from tests.test_mail import Inbox

LINK = re.compile(r"http://gatehouse\.test(/login/email\?token=\S+)")


@pytest.fixture
def settings_overrides(inbox: Inbox) -> dict[str, Any]:
    return {"SMTP_URL": f"smtp://127.0.0.1:{inbox.port}"}


def connect(org: Any, name: str = "Okta") -> str:
    connection = create_connection(
        system_actor(), org, kind=ConnectionKind.OIDC, name=name, settings={}, secret="s"
    )
    db.session.commit()
    return connection.id


def sessions() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Session))


def test_the_login_page_asks_for_the_email(client: FlaskClient) -> None:
    make_org("acme")
    page = client.get("/login?next=/app")
    assert page.status_code == 200 and 'name="email"' in page.text
    assert 'value="/app"' in page.text
    assert page.headers["Cache-Control"] == "no-store"


def test_a_verified_domain_routes_to_its_orgs_connection(client: FlaskClient) -> None:
    org = make_org("acme")
    connection_id = connect(org)
    make_verified_domain(org, "acme.example")
    routed = form_post(client, "/login", data={"email": "Ann@ACME.example", "next": "/app"})
    assert routed.status_code == 303
    assert routed.headers["Location"] == f"/sso/oidc/{connection_id}/login?next=%2Fapp"
    second = connect(org, "Entra")
    choice = form_post(client, "/login", data={"email": "ann@acme.example"})
    assert choice.status_code == 200
    assert connection_id in choice.text and second in choice.text


def test_org_in_the_url_goes_straight_to_its_connection(client: FlaskClient) -> None:
    connection_id = connect(make_org("acme"))
    routed = client.get("/login?org=acme&next=//evil.example")
    assert routed.status_code == 303
    assert routed.headers["Location"] == f"/sso/oidc/{connection_id}/login?next=%2F"
    assert client.get("/login?org=nope").status_code == 404


def test_an_email_link_signs_in_once(client: FlaskClient, inbox: Inbox) -> None:
    org = make_org("acme")
    make_member(org, "ann@acme.example", Role.ADMIN)
    sent = form_post(client, "/login", data={"email": "ann@acme.example", "next": "/app"})
    assert sent.status_code == 200 and "Check your email" in sent.text
    [mail] = inbox.messages
    path = LINK.search(mail.body).group(1)
    assert client.get(path).status_code == 200  # a scanner's GET uses nothing up
    assert sessions() == 0
    signed_in = form_post(client, path)
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/app"
    me = client.get("/api/v1/me").json
    assert me["org"]["slug"] == "acme" and me["role"] == "admin"
    assert me["session"]["method"] == SessionMethod.EMAIL_LINK.value
    again = form_post(client, path)
    assert again.status_code == 401 and again.headers["X-Gatehouse-Error"] == "invalid_link"


def test_unknown_addresses_get_the_same_answer_and_no_mail(
    client: FlaskClient, inbox: Inbox
) -> None:
    make_org("acme")
    answer = form_post(client, "/login", data={"email": "nobody@acme.example"})
    assert answer.status_code == 200 and "Check your email" in answer.text
    assert inbox.messages == []
    assert form_post(client, "/login", data={"email": "not an email"}).status_code == 400


def test_an_expired_link_is_refused(client: FlaskClient, inbox: Inbox) -> None:
    make_member(make_org("acme"), "ann@acme.example")
    form_post(client, "/login", data={"email": "ann@acme.example"})
    path = LINK.search(inbox.messages[0].body).group(1)
    db.session.execute(update(EmailLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert form_post(client, path).status_code == 401
    assert sessions() == 0


def test_accepting_an_emailed_invitation_signs_the_person_in(client: FlaskClient) -> None:
    org = make_org("acme")
    _invitation, token = invitations.invite_by_email(
        system_actor(), org, email="new@acme.example", role=Role.ADMIN
    )
    db.session.commit()
    shown = client.get("/invitations/accept", query_string={"token": token})
    assert shown.status_code == 200 and "Acme" in shown.text and "admin" in shown.text
    accepted = form_post(client, "/invitations/accept", data={"token": token, "answer": "accept"})
    assert accepted.status_code == 303
    me = client.get("/api/v1/me").json
    assert me["user"]["email"] == "new@acme.example" and me["role"] == "admin"
    used = form_post(client, "/invitations/accept", data={"token": token, "answer": "accept"})
    assert used.status_code in (409, 410) and "X-Gatehouse-Error" in used.headers


def test_a_shareable_link_joins_only_a_signed_in_person(client: FlaskClient, inbox: Inbox) -> None:
    home, other = make_org("home"), make_org("acme")
    make_member(home, "ann@home.example")
    _invitation, token = invitations.create_invite_link(system_actor(), other)
    db.session.commit()
    anonymous = form_post(client, "/invitations/accept", data={"token": token, "answer": "accept"})
    assert anonymous.status_code == 401 and "/login?next=" in anonymous.text
    form_post(client, "/login", data={"email": "ann@home.example"})
    form_post(client, LINK.search(inbox.messages[0].body).group(1))
    joined = form_post(client, "/invitations/accept", data={"token": token, "answer": "accept"})
    assert joined.status_code == 303
    me = client.get("/api/v1/me").json
    assert me["org"]["slug"] == "acme"
    assert sorted(o["slug"] for o in me["orgs"]) == ["acme", "home"]


def test_declining_an_invitation(client: FlaskClient) -> None:
    _invitation, token = invitations.invite_by_email(
        system_actor(), make_org("acme"), email="new@acme.example"
    )
    db.session.commit()
    declined = form_post(client, "/invitations/accept", data={"token": token, "answer": "reject"})
    assert declined.status_code == 200 and sessions() == 0


def test_logout_ends_the_session_server_side(client: FlaskClient, inbox: Inbox) -> None:
    make_member(make_org("acme"), "ann@acme.example")
    form_post(client, "/login", data={"email": "ann@acme.example"})
    form_post(client, LINK.search(inbox.messages[0].body).group(1))
    cookie = client.get_cookie("gatehouse_session")
    assert form_post(client, "/logout").status_code == 303
    client.set_cookie("gatehouse_session", cookie.value)
    assert client.get("/api/v1/me").status_code == 401


def test_a_link_invitation_does_not_carry_another_orgs_sso_session_in(
    client: FlaskClient,
) -> None:
    home, other = make_org("home"), make_org("acme")
    connection = create_connection(
        system_actor(), home, kind=ConnectionKind.OIDC, name="Home IdP", settings={}, secret="s"
    )
    db.session.commit()
    _session, token = sign_in(
        connection,
        IdpAssertion(subject="ann", email="ann@home.example"),
        lifetime=timedelta(hours=1),
    )
    _invitation, invite = invitations.create_invite_link(system_actor(), other)
    db.session.commit()
    with client.application.test_request_context():
        client.set_cookie("gatehouse_session", signed_session_cookie(token))
    joined = form_post(client, "/invitations/accept", data={"token": invite, "answer": "accept"})
    # Home's IdP did not prove the address (home verified no domain): the link asks the
    # person to sign in by email first, and joins no one meanwhile.
    assert joined.status_code == 403
    assert joined.headers["X-Gatehouse-Error"] == "email_proof_required"
    assert client.get("/api/v1/me").json["org"]["slug"] == "home"  # the session stayed home
    assert not db.session.scalar(select(Membership.id).where(Membership.org_id == other.id))
