"""The edge (``idp.edge``): every browser POST refused cross-site or without its token
(login CSRF first), the security headers on every kind of answer, CORS for the OIDC
endpoints a browser-based app reads."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.credentials.services import create_scim_token
from idp.db import db
from idp.edge import EXEMPT_BLUEPRINTS, EXEMPT_ENDPOINTS
from idp.oauth.services import create_client, revoke_client
from idp.orgs.roles import Role
from idp.sessions.models import EmailLink, Session
from idp.sessions.services import issue_email_link
from tests.builders import auth, make_key, make_member, make_org, signed_in_cookie, workspace
from tests.conftest import ISSUER
from tests.forms import csrf_token

EVIL = "https://evil.example"


def unsafe_browser_routes(app: Flask) -> list[tuple[str, str]]:
    """(endpoint, a URL) of every POST route the wall guards, placeholders filled in."""
    found = []
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()) or rule.endpoint in EXEMPT_ENDPOINTS:
            continue
        if rule.endpoint.partition(".")[0] in EXEMPT_BLUEPRINTS:
            continue
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"x_\1", rule.rule)
        found.append((rule.endpoint, url))
    return found


def test_the_wall_covers_every_browser_post_and_exempts_only_the_named(app: Flask) -> None:
    endpoints = {endpoint for endpoint, _url in unsafe_browser_routes(app)}
    for expected in (
        "login.login_submit",
        "login.email_link_sign_in",
        "login.logout",
        "login.invitation_answer",
        "oauth.consent",
        "sso.confirm_address",
        "console.invite_member",
    ):
        assert expected in endpoints
    assert len([e for e in endpoints if e.startswith("console.")]) >= 30  # console and setup
    assert "sso.saml_acs" not in endpoints and "oauth.token" not in endpoints


ATTEMPTS = {
    "evil origin": ({"Origin": EVIL}, "token", 403, "cross_site_post"),
    "null origin": ({"Origin": "null"}, "token", 403, "cross_site_post"),
    "evil referer": ({"Referer": f"{EVIL}/page"}, "token", 403, "cross_site_post"),
    "sibling origin": ({"Origin": "http://other.gatehouse.test"}, "token", 403, "cross_site_post"),
    "sec-fetch-site": ({"Sec-Fetch-Site": "cross-site"}, "token", 403, "cross_site_post"),
    "no token": ({"Origin": ISSUER}, None, 400, "csrf_token_invalid"),
    "another session's token": ({"Origin": ISSUER}, "foreign", 400, "csrf_token_invalid"),
    "a forged token": ({"Origin": ISSUER}, "forged", 400, "csrf_token_invalid"),
}


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_every_browser_post_refuses_cross_site_and_tokenless_attempts(
    app: Flask, attempt: str
) -> None:
    headers, token_kind, status, code = ATTEMPTS[attempt]
    victim, attacker = app.test_client(), app.test_client()
    tokens = {
        "token": csrf_token(victim),  # the victim's own, valid: the origin alone refuses
        "foreign": csrf_token(attacker),
        "forged": "IjAwMDAi.Z0Z0Zw.abcdefghijklmnopqrstuvwxyz0",
        None: None,
    }
    routes = unsafe_browser_routes(app)
    refused = 0
    for endpoint, url in routes:
        data = {"csrf_token": tokens[token_kind]} if tokens[token_kind] else {}
        answer = victim.post(url, data=data, headers=headers)
        assert answer.status_code == status, (endpoint, answer.status_code)
        assert answer.headers["X-Gatehouse-Error"] == code, endpoint
        assert answer.mimetype == "text/html" and "Nothing was done" in answer.text
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert not any(
            h.startswith("gatehouse_session=") for h in answer.headers.getlist("Set-Cookie")
        )
        refused += 1
    assert refused == len(routes) >= 39  # 39 today: 6 sign-in flow posts, 33 console/setup


def test_login_csrf_with_the_attackers_own_link_starts_no_session(
    app: Flask, client: FlaskClient
) -> None:
    """The attack of issue 16: the attacker's own email link posted from their site."""
    make_member(make_org("acme"), "mallory@acme.example")
    _link, token = issue_email_link("mallory@acme.example", return_to="/")
    db.session.commit()
    for headers in ({"Origin": EVIL}, {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, {}):
        forged = client.post(f"/login/email?token={token}", headers=headers)
        assert forged.status_code in (400, 403)
        assert "gatehouse_session" not in forged.headers.get("Set-Cookie", "")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Session)) == 0
    assert db.session.scalar(select(EmailLink.used_at)) is None  # the link is not used up
    # The person who opened their own link from a mail client: the page, then its form.
    page = client.get(f"/login/email?token={token}")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    own = client.post(
        f"/login/email?token={token}",
        data={"csrf_token": csrf_token(client, f"/login/email?token={token}")},
        headers={"Origin": ISSUER, "Sec-Fetch-Site": "same-origin"},
    )
    assert own.status_code == 303 and "gatehouse_session=" in own.headers["Set-Cookie"]


def test_the_saml_acs_takes_a_cross_site_post(client: FlaskClient) -> None:
    """Posted by the IdP's page (SAML Bindings §3.5.4): the wall lets it through to the ACS,
    which binds it by InResponseTo (an unknown connection here: its own 404)."""
    answer = client.post(
        "/sso/saml/con_nope/acs",
        data={"SAMLResponse": "x"},
        headers={"Origin": "https://idp.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert answer.status_code == 404 and answer.headers["X-Gatehouse-Error"] != "cross_site_post"


# --- headers ---------------------------------------------------------------------------


def assert_headers(response: Any, *, page: bool) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    if page:
        assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"
    else:
        assert csp.startswith("default-src 'none'") and "sandbox" in csp


def test_every_kind_of_answer_carries_the_headers(app: Flask) -> None:
    app.add_url_rule("/boom", "boom", lambda: 1 / 0)  # the 500 path
    client = app.test_client()
    org = make_org("acme")
    key = make_key()
    _row, scim = create_scim_token(system_actor(), org, name="idp")
    owner = make_member(org, "owner@acme.example", Role.OWNER)
    db.session.commit()
    pages = {
        "sign-in page": client.get("/login"),
        "redirect": client.get("/"),
        "sso error page": client.get("/sso/oidc/con_nope/login"),
        "login error page": client.post(
            "/login/email?token=nope", data={"csrf_token": csrf_token(client)}
        ),
        "console 404 page": client.get("/console/orgs/nope/members"),
        "refusal": client.post("/logout", headers={"Origin": EVIL}),
    }
    documents = {
        "admin API": client.get("/api/v1/orgs", headers=auth(key)),
        "admin API error": client.get("/api/v1/orgs"),
        "SCIM": client.get("/scim/v2/acme/Users", headers=auth(scim)),
        "SCIM error": client.get("/scim/v2/acme/Users"),
        "404": client.get("/no/such/page"),
        "405": client.get("/logout"),
        "500": client.get("/boom"),
        "discovery": client.get("/.well-known/openid-configuration"),
        "jwks": client.get("/jwks"),
        "health": client.get("/healthz"),
    }
    assert pages["redirect"].status_code == 303 and pages["sso error page"].status_code == 404
    assert documents["404"].status_code == 404 and documents["405"].status_code == 405
    assert documents["500"].status_code == 500
    for name, response in pages.items():
        assert response.mimetype == "text/html", name
        assert_headers(response, page=True)
        assert "Strict-Transport-Security" not in response.headers  # an http issuer
    for name, response in documents.items():
        assert response.mimetype != "text/html", name
        assert_headers(response, page=False)
    client.set_cookie("gatehouse_session", signed_in_cookie(owner))
    console = client.get("/console/orgs/acme/members")
    assert console.status_code == 200
    assert_headers(console, page=True)
    assert "script-src 'nonce-" in console.headers["Content-Security-Policy"]


@pytest.mark.parametrize("settings_overrides", [{"ISSUER": "https://gatehouse.test"}])
def test_an_https_issuer_sends_hsts_on_every_answer(client: FlaskClient) -> None:
    for response in (
        client.get("/login", base_url="https://gatehouse.test"),
        client.get("/jwks", base_url="https://gatehouse.test"),
        client.get("/no/such/page", base_url="https://gatehouse.test"),
    ):
        assert response.headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains"
        )


# --- CORS ------------------------------------------------------------------------------

SPA = "https://spa.example"


def preflight(client: FlaskClient, path: str, origin: str, method: str = "POST") -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )


def test_token_userinfo_and_revocation_answer_only_registered_origins(
    client: FlaskClient,
) -> None:
    spa, _ = create_client(
        workspace().id, name="SPA", redirect_uris=[f"{SPA}/callback"], is_public=True
    )
    create_client(workspace().id, name="Web", redirect_uris=["https://web.example:8443/cb"])
    db.session.commit()
    allowed = [SPA, "https://web.example:8443"]
    refused = [
        EVIL,
        "null",
        "https://spa.example.evil.example",
        "http://spa.example",  # another scheme
        "https://spa.example:8443",  # another port
        "https://SPA.example",  # no browser sends it so: not an origin it serializes
        "https://web.example",
    ]
    counted = 0
    for path, method in (
        ("/oauth/token", "POST"),
        ("/oauth/userinfo", "GET"),
        ("/oauth/revoke", "POST"),
    ):
        for origin in allowed:
            answer = preflight(client, path, origin, method)
            assert answer.status_code == 200, (path, origin)
            assert answer.headers["Access-Control-Allow-Origin"] == origin
            assert "Origin" in answer.headers["Vary"]
            assert method in answer.headers["Access-Control-Allow-Methods"]
            assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
            assert "Access-Control-Allow-Credentials" not in answer.headers
        for origin in refused:
            answer = preflight(client, path, origin, method)
            assert "Access-Control-Allow-Origin" not in answer.headers, (path, origin)
            assert "Access-Control-Allow-Methods" not in answer.headers
            assert "Origin" in answer.headers["Vary"]
            counted += 1
    # The actual request (not only the preflight) echoes the origin too.
    token = client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": "nope", "client_id": spa.client_id},
        headers={"Origin": SPA},
    )
    assert token.status_code == 400 and token.headers["Access-Control-Allow-Origin"] == SPA
    info = client.get("/oauth/userinfo", headers={"Origin": SPA})
    assert info.status_code == 401 and info.headers["Access-Control-Allow-Origin"] == SPA
    assert "WWW-Authenticate" in info.headers["Access-Control-Expose-Headers"]
    # A revoked app's origin is no longer one.
    revoke_client(spa.workspace_id, spa.client_id)
    db.session.commit()
    assert "Access-Control-Allow-Origin" not in preflight(client, "/oauth/token", SPA).headers
    assert counted == 21


def test_discovery_and_jwks_are_public_documents(client: FlaskClient) -> None:
    for path in ("/.well-known/openid-configuration", "/jwks"):
        answer = client.get(path, headers={"Origin": EVIL})
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in answer.headers
        assert preflight(client, path, EVIL, "GET").headers["Access-Control-Allow-Origin"] == "*"


def test_other_endpoints_send_no_cors(client: FlaskClient, root_key: str) -> None:
    for answer in (
        client.get("/api/v1/orgs", headers={**auth(root_key), "Origin": SPA}),
        client.get("/api/v1/me", headers={"Origin": SPA}),
        client.post("/oauth/introspect", headers={"Origin": SPA}),
    ):
        assert "Access-Control-Allow-Origin" not in answer.headers
