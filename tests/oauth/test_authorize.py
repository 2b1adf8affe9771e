"""The authorization endpoint's browser side: sign-in redirects, re-authentication, the org
chooser and switch, consent for third-party apps, RP-initiated logout, deprovisioning."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from sqlalchemy import select

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.connections.models import ConnectionKind
from idp.connections.services import create_connection
from idp.db import db, utcnow
from idp.orgs.models import Membership
from idp.orgs.roles import Role
from idp.sessions.models import Session
from tests.builders import make_member
from tests.forms import TOKEN
from tests.oauth.conftest import (
    LOGOUT_URI,
    REDIRECT_URI,
    World,
    authorize,
    exchange,
    get_code,
    introspect,
    make_app,
    params,
    refresh,
    sign_in,
    tokens_for,
    userinfo,
)
from tests.scim.conftest import DEACTIVATE, scim_for


def _login_next(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith("/login?"), location
    return params(location)["next"]


def test_no_session_goes_to_login_and_back(browser: FlaskClient, world: World) -> None:
    response = authorize(browser, world.app)
    next_url = _login_next(response)
    assert next_url.startswith("/oauth/authorize?") and params(next_url)["state"] == "st-1"
    sign_in(browser, world.member)
    back = browser.get(next_url)
    assert back.headers["Location"].startswith(REDIRECT_URI + "?code=")


def test_prompt_none_without_session_is_login_required(browser: FlaskClient, world: World) -> None:
    response = authorize(browser, world.app, prompt="none")
    assert params(response.headers["Location"])["error"] == "login_required"


def test_prompt_login_forces_a_new_sign_in(browser: FlaskClient, world: World) -> None:
    old = sign_in(browser, world.member)
    old.created_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    next_url = _login_next(authorize(browser, world.app, prompt="login"))
    assert "prompt" not in params(next_url) and "gh_auth_after" in params(next_url)
    # The old session is not fresh enough for the resumed request either.
    assert browser.get(next_url).headers["Location"].startswith("/login?")
    sign_in(browser, world.member)
    assert "code=" in browser.get(next_url).headers["Location"]


def test_max_age_forces_a_new_sign_in(browser: FlaskClient, world: World) -> None:
    session = sign_in(browser, world.member)
    session.auth_time = utcnow() - timedelta(hours=1)
    session.created_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    _login_next(authorize(browser, world.app, max_age="60"))
    assert "code=" in authorize(browser, world.app, max_age="7200").headers["Location"]


def test_login_hint_for_another_person_asks_to_sign_in(browser: FlaskClient, world: World) -> None:
    sign_in(browser, world.member)
    response = authorize(browser, world.app, login_hint="bob@acme.example")
    assert params(response.headers["Location"])["login_hint"] == "bob@acme.example"
    same = authorize(browser, world.app, login_hint="ANN@acme.example")
    assert "code=" in same.headers["Location"]


def test_member_of_several_orgs_chooses(browser: FlaskClient, world: World) -> None:
    make_member(world.other, "ann@acme.example", Role.MEMBER)
    sign_in(browser, world.member)
    page = authorize(browser, world.app)
    assert page.status_code == 200 and "Choose an organization" in page.text
    assert "organization=beta" in page.text and "organization=acme" in page.text


def test_switching_org_silently_when_admitted_and_audited(
    browser: FlaskClient, world: World
) -> None:
    make_member(world.other, "ann@acme.example", Role.MEMBER)
    session = sign_in(browser, world.member)  # an email-link session: every org admits it
    tokens = exchange(browser, world.app, get_code(browser, world.app, organization="beta")).json
    assert userinfo(browser, tokens["access_token"]).json["org"]["slug"] == "beta"
    assert userinfo(browser, tokens["access_token"]).json["role"] == "member"
    db.session.expire_all()
    assert db.session.get(Session, session.id).org_id == world.other.id
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "session.org_switched"))
    assert event is not None and event.org_id == world.other.id


def test_switching_to_an_org_that_needs_its_own_sso(browser: FlaskClient, world: World) -> None:
    make_member(world.other, "ann@acme.example", Role.MEMBER)
    connection = create_connection(
        system_actor(), world.org, kind=ConnectionKind.OIDC, name="acme", settings={}, secret="s"
    )
    db.session.commit()
    session = sign_in(browser, world.member)
    session.connection_id = connection.id  # signed in through acme's IdP
    db.session.commit()
    response = authorize(browser, world.app, organization="beta")
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and params(response.headers["Location"])["org"] == "beta"


def test_not_a_member_after_a_fresh_sign_in_is_access_denied(
    browser: FlaskClient, world: World
) -> None:
    sign_in(browser, world.member)
    next_url = _login_next(authorize(browser, world.app, organization="beta"))
    assert params(next_url)["organization"] == "beta"
    sign_in(browser, world.member)
    response = browser.get(next_url)
    assert params(response.headers["Location"])["error"] == "access_denied"


def test_third_party_apps_ask_consent_once(browser: FlaskClient, world: World) -> None:
    third = make_app(first_party=False)
    sign_in(browser, world.member)
    page = authorize(browser, third)
    assert page.status_code == 200 and "Allow access?" in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    next_url = page.text.split('name="next" value="')[1].split('"')[0].replace("&amp;", "&")
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    forged = browser.post(
        "/oauth/consent",
        data={
            "csrf_token": token,
            "csrf": "x",
            "client_id": third.client_id,
            "scope": "openid",
            "next": next_url,
        },
    )
    assert forged.status_code == 400
    answer = browser.post(
        "/oauth/consent",
        data={
            "csrf_token": token,
            "csrf": csrf,
            "client_id": third.client_id,
            "scope": "openid profile email",
            "next": next_url,
            "answer": "allow",
        },
    )
    assert answer.status_code == 303
    assert "code=" in browser.get(answer.headers["Location"]).headers["Location"]
    assert "code=" in authorize(browser, third, scope="openid email").headers["Location"]
    # The first-party app never asks.
    assert "code=" in authorize(browser, world.app).headers["Location"]


def test_consent_denied_is_access_denied(browser: FlaskClient, world: World) -> None:
    third = make_app(first_party=False)
    sign_in(browser, world.member)
    page = authorize(browser, third)
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    next_url = page.text.split('name="next" value="')[1].split('"')[0].replace("&amp;", "&")
    answer = browser.post(
        "/oauth/consent",
        data={
            "csrf_token": TOKEN.search(page.text).group(1),  # type: ignore[union-attr]
            "csrf": csrf,
            "client_id": third.client_id,
            "next": next_url,
            "answer": "deny",
        },
    )
    assert params(browser.get(answer.headers["Location"]).headers["Location"])["error"] == (
        "access_denied"
    )


def test_rp_initiated_logout(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    bad = browser.get(
        "/oauth/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": LOGOUT_URI + "/x",
        },
    )
    assert bad.status_code == 400 and "Location" not in bad.headers
    response = browser.get(
        "/oauth/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": LOGOUT_URI,
            "state": "s",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == LOGOUT_URI + "?state=s"
    assert introspect(browser, world.app, tokens["access_token"]) == {"active": False}
    assert authorize(browser, world.app).headers["Location"].startswith("/login?")


def test_scim_deactivation_revokes_the_members_tokens(browser: FlaskClient, world: World) -> None:
    scim = scim_for(browser, world.org)
    created = scim("POST", "/Users", {"userName": "sam@acme.example", "externalId": "00u9"})
    assert created.status_code == 201, created.text
    sign_in(browser, db.session.get(Membership, created.json["id"]))
    tokens = exchange(browser, world.app, get_code(browser, world.app)).json
    assert introspect(browser, world.app, tokens["access_token"])["active"] is True

    assert scim("PATCH", f"/Users/{created.json['id']}", DEACTIVATE).status_code == 200

    assert refresh(browser, world.app, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert introspect(browser, world.app, tokens["access_token"]) == {"active": False}
    assert userinfo(browser, tokens["access_token"]).status_code == 401
