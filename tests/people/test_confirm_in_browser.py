"""The address confirmation of an SSO sign-in, in a real browser: chromium signs in at the real
``oidc-provider`` through the org's connection, is asked to confirm by mail, and the mailed link
finishes the sign-in only in that browser -- another browser opening it is refused and uses
nothing up."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect

from idp.actors import system_actor
from idp.connections import services as connections
from idp.connections.models import ConnectionKind
from idp.db import db, new_id
from idp.orgs.roles import Role
from idp.sso import oidc
from tests.browser import chromium, new_page
from tests.builders import invite_mailed, make_member, make_org
from tests.peers import OidcIdp
from tests.proxies import free_port, serve_app
from tests.test_mail import Inbox

HOST = "gatehouse.test"
CONNECTION = new_id("con")
CLIENT = ("acme-portal", "portal-secret-" + secrets.token_hex(8))
ANN = {
    "ann": {
        "password": "ann-password",
        "claims": {"email": "ann@acme.example", "email_verified": True, "name": "Ann Example"},
    }
}


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def issuer(port: int) -> str:
    return f"http://{HOST}:{port}"


@pytest.fixture(scope="module")
def idp(issuer: str) -> Iterator[OidcIdp]:
    client = {
        "client_id": CLIENT[0],
        "client_secret": CLIENT[1],
        "redirect_uris": [f"{issuer}/sso/oidc/{CONNECTION}/callback"],
    }
    with OidcIdp(clients=[client], accounts=ANN) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(hosts=[HOST]) as launched:
        yield launched


@pytest.fixture
def settings_overrides(inbox: Inbox, issuer: str) -> dict[str, Any]:
    return {
        "ISSUER": issuer,
        "ALLOW_HTTP_LOOPBACK": True,
        "SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
    }


@pytest.fixture
def served(app: Flask, port: int) -> Iterator[None]:
    with serve_app(app, port):
        yield


def test_the_mailed_link_finishes_the_sign_in_only_in_the_browser_that_began_it(
    app: Flask,
    served: None,
    browser: Browser,
    idp: OidcIdp,
    inbox: Inbox,
    issuer: str,
    monkeypatch: Any,
) -> None:
    org = make_org("acme")  # acme.example is not verified: the IdP alone proves nothing
    make_member(org, "boss@elsewhere.example", Role.OWNER)
    invite_mailed(org, "ann@acme.example", Role.ADMIN)  # the org knows the address
    monkeypatch.setattr(connections, "new_id", lambda _prefix: CONNECTION)
    connections.create_connection(
        system_actor(),
        org,
        kind=ConnectionKind.OIDC,
        name="Acme IdP",
        settings=oidc.build_settings(idp.issuer, CLIENT[0], scopes=("openid", "email", "profile")),
        secret=CLIENT[1],
    )
    db.session.commit()

    # Ann signs in at her IdP in her browser; Gatehouse asks her to confirm by mail.
    ann = new_page(browser)
    ann.goto(f"{issuer}/sso/oidc/{CONNECTION}/login?next=/api/v1/me")
    ann.fill("input[name=login]", "ann")
    ann.fill("input[name=password]", "ann-password")
    ann.get_by_role("button", name="Sign in").click()
    expect(ann.locator("#pending")).to_contain_text("open the link we just sent")
    assert ann.url.startswith(f"{issuer}/sso/oidc/{CONNECTION}/callback")
    assert not [c for c in ann.context.cookies() if c["name"] == "gatehouse_session"]
    mail = inbox.messages[-1]
    assert mail.rcpt_tos == ["ann@acme.example"]
    link = re.search(rf"{re.escape(issuer)}/sso/confirm\?token=\S+", mail.body).group(0)  # type: ignore[union-attr]

    # Someone else's browser (a forwarded mail, a scanner that clicks): asked, then refused,
    # and the link is not used up.
    other = new_page(browser)
    other.goto(link)
    other.get_by_role("button", name="Confirm and sign in").click()
    expect(other.locator("body")).to_contain_text("another browser")
    assert not [c for c in other.context.cookies() if c["name"] == "gatehouse_session"]

    # Opening the link shows a question first; confirming in her browser signs her in.
    ann.goto(link)
    expect(ann.get_by_role("heading")).to_have_text("Confirm your email address")
    assert not [c for c in ann.context.cookies() if c["name"] == "gatehouse_session"]
    ann.get_by_role("button", name="Confirm and sign in").click()
    ann.wait_for_url(f"{issuer}/api/v1/me")
    me = ann.evaluate("() => JSON.parse(document.body.innerText)")
    assert [(o["slug"], o["role"]) for o in me["orgs"]] == [("acme", "admin")]
    assert [c for c in ann.context.cookies() if c["name"] == "gatehouse_session"]

    # The link is now used: her second click, or anyone's, finishes nothing.
    again = new_page(browser)
    again.goto(link)
    again.get_by_role("button", name="Confirm and sign in").click()
    expect(again.locator("body")).to_contain_text("used")
