"""OIDC provider fixtures: a registered app, a signed-in browser, and the code flow's steps."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.apps.models import OAuthClient
from idp.db import db
from idp.login.cookies import SESSION_COOKIE, signed_session_cookie
from idp.oauth.services import create_client
from idp.orgs.models import Membership, Organization
from idp.orgs.roles import Role
from idp.sessions.models import Session, SessionMethod
from idp.sessions.services import start_session
from tests.builders import make_member, make_org, workspace

REDIRECT_URI = "https://app.example/callback"
LOGOUT_URI = "https://app.example/signed-out"


@dataclass
class App:
    client: OAuthClient
    client_id: str
    secret: str | None

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def make_app(public: bool = False, first_party: bool = True, **kwargs: Any) -> App:
    client, secret = create_client(
        workspace().id,
        name="Public app" if public else "Web app",
        redirect_uris=[REDIRECT_URI],
        post_logout_redirect_uris=[LOGOUT_URI],
        is_public=public,
        first_party=first_party,
        **kwargs,
    )
    db.session.commit()
    return App(client, client.client_id, secret)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def sign_in(
    browser: FlaskClient, membership: Membership, org: Organization | None = None
) -> Session:
    """Start a session for the member (as an email link would) and give the browser its cookie."""
    session, token = start_session(
        membership.user,
        org or db.session.get(Organization, membership.org_id),
        method=SessionMethod.EMAIL_LINK,
        lifetime=timedelta(hours=1),
        amr=["email"],
    )
    db.session.commit()
    browser.set_cookie(SESSION_COOKIE, signed_session_cookie(token))
    return session


def params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def authorize(browser: FlaskClient, app: App, **extra: str) -> TestResponse:
    query = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": "n-" + secrets.token_hex(4),
        **extra,
    }
    return browser.get("/oauth/authorize", query_string={k: v for k, v in query.items() if v})


def get_code(browser: FlaskClient, app: App, **extra: str) -> str:
    response = authorize(browser, app, **extra)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    got = params(location)
    assert "code" in got, got
    return got["code"]


def exchange(
    browser: FlaskClient, app: App, code: str, verifier: str | None = None
) -> TestResponse:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier:
        form["code_verifier"] = verifier
    if app.secret is None:
        form["client_id"] = app.client_id
        return browser.post("/oauth/token", data=form)
    return browser.post("/oauth/token", data=form, headers=app.basic())


def refresh(browser: FlaskClient, app: App, refresh_token: str) -> TestResponse:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return browser.post("/oauth/token", data=form, headers=app.basic())


def introspect(browser: FlaskClient, app: App, token: str) -> dict[str, Any]:
    response = browser.post("/oauth/introspect", data={"token": token}, headers=app.basic())
    assert response.status_code == 200, response.text
    return response.json


def userinfo(browser: FlaskClient, access_token: str) -> TestResponse:
    return browser.get("/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"})


@dataclass
class World:
    org: Organization
    other: Organization
    member: Membership
    app: App


@pytest.fixture
def world(app: Flask) -> World:
    org, other = make_org("acme", "Acme Corp"), make_org("beta", "Beta Inc")
    member = make_member(org, "ann@acme.example", Role.ADMIN)
    return World(org, other, member, make_app())


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def tokens_for(browser: FlaskClient, world: World, **extra: str) -> dict[str, Any]:
    """Sign in, authorize and exchange: the token response."""
    sign_in(browser, world.member)
    response = exchange(browser, world.app, get_code(browser, world.app, **extra))
    assert response.status_code == 200, response.text
    return response.json
