"""Forward-auth for apps on hosts the session cookie cannot reach: the shared parent domain
(``COOKIE_DOMAIN``), and the callback pattern -- a one-time code, bound to the session and the
app's host, traded at the app host's callback for that host's own cookie. Attacks on the code
and the cookie, the one-query hot path with the app cookie, Traefik's redirect mode, and Caddy
through docs/proxies/Caddyfile for real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from idp.actors import system_actor
from idp.config import ConfigError, load_settings
from idp.crypto import token_digest
from idp.db import db, utcnow
from idp.login.cookies import FORWARD_COOKIE, SESSION_COOKIE, STATE_COOKIE, set_session_cookie
from idp.orgs.models import MembershipStatus, Organization
from idp.orgs.roles import Role
from idp.orgs.services import set_member_status
from idp.sessions.models import ForwardAuthCode, Session
from idp.sessions.services import revoke_session
from idp.users.models import User
from tests.builders import make_member, make_org
from tests.forms import form_post
from tests.login.test_forward_auth import check, cookie, session_for
from tests.login.test_forward_auth import statements as statements  # the fixture
from tests.proxies import (
    ProxyUnavailable,
    echo_upstream,
    free_port,
    install_caddy,
    render_caddyfile,
    run_caddy,
    serve_app,
)

ISSUER = "http://gatehouse.test"
APP = "http://app.acme.test"
HOSTS = "app.acme.test=acme,other-app.test=acme,app.gatehouse.test=acme,app.acme.example=acme"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"FORWARD_AUTH_HOSTS": HOSTS}


@pytest.fixture
def ann(app: Flask) -> tuple[Organization, User, Session, str]:
    """Ann, a member of acme, signed in at Gatehouse (by email link)."""
    org = make_org("acme")
    make_member(org, "owner@acme.example", Role.OWNER)
    user = make_member(org, "ann@acme.example", Role.MEMBER).user
    session, token = session_for(user, org)
    return org, user, session, token


STATE = "s" * 43  # as the refusal's state cookie gave this browser on the app's host


def start(client: FlaskClient, url: str, state: str = STATE) -> TestResponse:
    return client.get("/auth/start?" + urlencode({"next": url, "state": state}))


def code_for(client: FlaskClient, url: str) -> str:
    response = start(client, url)
    assert response.status_code == 302, response.data
    return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


def callback(client: FlaskClient, host: str, state: str = STATE, **query: str) -> TestResponse:
    client.set_cookie(STATE_COOKIE, state)  # the test client sends it to /auth/callback
    return client.get(
        "/auth/callback?" + urlencode(query),
        headers={"X-Forwarded-Host": host, "X-Forwarded-Proto": "http"},
    )


def app_cookie(response: TestResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        jar.load(header)
    return jar


def check_at(client: FlaskClient, url: str, credential: str | None) -> TestResponse:
    client.delete_cookie(SESSION_COOKIE)  # the app's host never receives Gatehouse's cookie
    client.delete_cookie(FORWARD_COOKIE)
    if credential is not None:
        client.set_cookie(FORWARD_COOKIE, credential)
    return check(client, X_Original_URL=url)


# --- the callback pattern ------------------------------------------------------------------


def test_a_refused_check_on_an_app_host_sends_sign_in_through_start(
    client: FlaskClient, ann: Any
) -> None:
    response = check(client, X_Original_URL=f"{APP}/dashboard?x=1")
    assert response.status_code == 401
    login = urlsplit(response.headers["X-Gatehouse-Login-URL"])
    assert f"{login.scheme}://{login.netloc}{login.path}" == f"{ISSUER}/auth/start"
    query = parse_qs(login.query)
    state = query.pop("state")[0]
    assert query == {"next": [f"{APP}/dashboard?x=1"]}
    # The state, as a cookie of the app's host for its callback, for the proxy to pass on.
    jar: SimpleCookie = SimpleCookie(response.headers["X-Gatehouse-Set-Cookie"])
    given = jar[STATE_COOKIE]
    assert (given.value, given["path"], given["httponly"], given["samesite"]) == (
        state,
        "/_gatehouse/callback",
        True,
        "Lax",
    )
    assert not given["domain"] and not given["secure"]  # this host; http here
    again = check(client, X_Original_URL=f"{APP}/")
    assert parse_qs(urlsplit(again.headers["X-Gatehouse-Login-URL"]).query)["state"] != [state]
    secure = check(client, X_Original_URL="https://app.acme.test/")
    assert "Secure" in secure.headers["X-Gatehouse-Set-Cookie"]
    # A host under the issuer's own (no callback): no state.
    assert "X-Gatehouse-Set-Cookie" not in check(client, X_Gatehouse_Org="acme").headers
    # Not signed in at Gatehouse: its sign-in page for the host's org first, then back.
    signed_out = start(client, f"{APP}/dashboard?x=1", state)
    assert signed_out.status_code == 303
    there = urlsplit(signed_out.headers["Location"])
    assert there.path == "/login"
    again_url = "/auth/start?" + urlencode({"next": f"{APP}/dashboard?x=1", "state": state})
    assert parse_qs(there.query) == {"org": ["acme"], "next": [again_url]}
    # Without a state from the site, no sign-in starts.
    for bad in ("", "short", "x" * 43 + "!"):
        refused = start(client, f"{APP}/", bad)
        assert refused.status_code == 400
        assert refused.headers["X-Gatehouse-Error"] == "invalid_state"


def test_sign_in_reaches_the_app_host_through_a_one_time_code(
    client: FlaskClient, ann: Any, statements: list[str], is_postgres: bool
) -> None:
    _, user, session, token = ann
    user_id, session_id = user.id, session.id
    cookie(client, token)
    response = start(client, f"{APP}/dashboard?x=1")
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{APP}/_gatehouse/callback"
    query = parse_qs(target.query)
    code = query["code"][0]
    assert query["next"] == [f"{APP}/dashboard?x=1"]
    stored = db.session.scalar(select(ForwardAuthCode))
    assert (stored.session_id, stored.host) == (session_id, "app.acme.test")
    assert stored.code_digest == token_digest(code) and code not in stored.code_digest
    assert timedelta(0) < stored.expires_at - utcnow() <= timedelta(seconds=60)

    traded = callback(client, "app.acme.test", code=code, next=f"{APP}/dashboard?x=1")
    assert traded.status_code == 302
    assert traded.headers["Location"] == f"{APP}/dashboard?x=1"
    (header,) = [h for h in traded.headers.getlist("Set-Cookie") if h.startswith(FORWARD_COOKIE)]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert "domain" not in attributes  # this host only
    assert {"httponly", "path", "max-age"} <= attributes and "SameSite=Lax" in header
    credential = app_cookie(traded)[FORWARD_COOKIE].value
    assert token not in credential

    check(client, X_Original_URL=f"{APP}/")  # the org's roles are read once per process
    statements.clear()
    passed = check_at(client, f"{APP}/reports", credential)
    # The hot path stays one query (after PostgreSQL's row-level security declaration).
    assert len(statements) == (2 if is_postgres else 1), statements
    assert passed.status_code == 200
    assert (passed.headers["X-Gatehouse-User"], passed.headers["X-Gatehouse-Org"]) == (
        user_id,
        "acme",
    )

    # Signing out at Gatehouse (the session revoked) ends the app host's cookie too.
    revoke_session(db.session.get(Session, session_id), "logout")
    db.session.commit()
    denied = check_at(client, f"{APP}/reports", credential)
    assert denied.status_code == 401
    assert urlsplit(denied.headers["X-Gatehouse-Login-URL"]).path == "/auth/start"


def test_suspending_the_member_ends_the_app_cookie_on_the_next_request(
    client: FlaskClient, ann: Any
) -> None:
    org, user, _, token = ann
    cookie(client, token)
    traded = callback(client, "app.acme.test", code=code_for(client, f"{APP}/"), next=f"{APP}/")
    credential = app_cookie(traded)[FORWARD_COOKIE].value
    assert check_at(client, f"{APP}/", credential).status_code == 200
    set_member_status(system_actor(), org, user.id, MembershipStatus.SUSPENDED)
    db.session.commit()
    assert check_at(client, f"{APP}/", credential).status_code == 401
    # Nor does Gatehouse hand out a code for the org any more: sign in again.
    cookie(client, token)
    assert start(client, f"{APP}/").status_code == 303
    assert db.session.query(ForwardAuthCode).count() == 1


def test_a_code_is_refused_replayed_on_another_host_expired_forged_or_tampered(
    client: FlaskClient, ann: Any
) -> None:
    *_, token = ann
    cookie(client, token)

    def refused(response: TestResponse, code: str) -> None:
        assert response.status_code == 400, response.data
        assert response.headers["X-Gatehouse-Error"] == code
        assert FORWARD_COOKIE not in app_cookie(response)
        assert b"Traceback" not in response.data

    code = code_for(client, f"{APP}/")
    refused(callback(client, "other-app.test", code=code), "wrong_host")
    refused(callback(client, "evil.test", code=code), "unknown_host")
    assert callback(client, "app.acme.test", code=code).status_code == 302
    refused(callback(client, "app.acme.test", code=code), "code_used")  # replay

    # Login CSRF: a code from the attacker's own sign-in, sent to a victim's browser whose
    # state on the app's host is another (or none): refused, and still unused.
    planted = code_for(client, f"{APP}/")
    refused(callback(client, "app.acme.test", state="v" * 43, code=planted), "state_mismatch")
    refused(callback(client, "app.acme.test", state="", code=planted), "state_mismatch")
    assert callback(client, "app.acme.test", code=planted).status_code == 302

    expired = code_for(client, f"{APP}/")
    db.session.execute(
        update(ForwardAuthCode)
        .where(ForwardAuthCode.code_digest == token_digest(expired))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    refused(callback(client, "app.acme.test", code=expired), "code_expired")

    fresh = code_for(client, f"{APP}/")
    tampered = fresh[:-1] + ("A" if fresh[-1] != "A" else "B")
    refused(callback(client, "app.acme.test", code=tampered), "invalid_code")
    refused(callback(client, "app.acme.test", code="ghf_" + "x" * 43), "invalid_code")
    refused(callback(client, "app.acme.test", code="not a code"), "invalid_code")
    refused(callback(client, "app.acme.test"), "invalid_code")
    assert callback(client, "app.acme.test", code=fresh).status_code == 302  # still good

    # A code whose session has ended since is refused too.
    ended = code_for(client, f"{APP}/")
    db.session.execute(update(Session).values(revoked_at=utcnow()))
    db.session.commit()
    refused(callback(client, "app.acme.test", code=ended), "session_ended")


def test_the_app_cookie_holds_only_for_its_own_host_and_unaltered(
    client: FlaskClient, ann: Any
) -> None:
    *_, token = ann
    cookie(client, token)
    traded = callback(client, "app.acme.test", code=code_for(client, f"{APP}/"), next=f"{APP}/")
    credential = app_cookie(traded)[FORWARD_COOKIE].value
    assert check_at(client, f"{APP}/", credential).status_code == 200
    # The cookie of one app, replayed by that app's operator at another: refused.
    assert check_at(client, "http://other-app.test/", credential).status_code == 401
    assert check_at(client, "http://app.gatehouse.test/", credential).status_code == 401
    # Without the proxied URL the host is unknown: refused.
    client.set_cookie(FORWARD_COOKIE, credential)
    assert check(client).status_code == 401
    # Altered or unsigned: refused.
    session_id = credential.split(".")[0]
    for forged in (credential[:-2] + "xx", f"{session_id}.AAAA", session_id, "x"):
        assert check_at(client, f"{APP}/", forged).status_code == 401, forged


def test_the_callback_returns_only_to_its_own_host(client: FlaskClient, ann: Any) -> None:
    *_, token = ann
    cookie(client, token)
    for bad in ("http://evil.test/", "//evil.test/", "/\\evil.test", "javascript:alert(1)", ""):
        traded = callback(client, "app.acme.test", code=code_for(client, f"{APP}/"), next=bad)
        assert traded.status_code == 302
        assert traded.headers["Location"] == "/", bad  # this host's front page
    traded = callback(
        client, "app.acme.test", code=code_for(client, f"{APP}/"), next=f"{APP}:8443/x"
    )
    assert traded.headers["Location"] == f"{APP}:8443/x"  # the same host (any port)
    # Each new code cleared the session's spent ones: only the last is left.
    assert db.session.query(ForwardAuthCode).count() == 1


def test_start_gives_no_code_for_an_unmapped_host(client: FlaskClient, ann: Any) -> None:
    *_, token = ann
    cookie(client, token)
    for bad in (
        "http://evil.test/",
        "http://user@evil.test/",
        "ftp://app.acme.test/",
        "http://app.acme.test:99999/",
        "/relative",
        "http://gatehouse.test/",  # Gatehouse's own host: its cookie is there already
        "",
    ):
        response = start(client, bad)
        assert response.status_code == 400, bad
        assert response.headers["X-Gatehouse-Error"] == "unknown_host"
    assert db.session.query(ForwardAuthCode).count() == 0
    # A user-info part cannot steer the callback elsewhere: the host is rebuilt.
    response = start(client, "http://evil@app.acme.test/")
    assert response.headers["Location"].startswith(f"{APP}/_gatehouse/callback?")


def test_traefik_asks_for_a_redirect_instead_of_a_401(client: FlaskClient, ann: Any) -> None:
    response = client.get("/auth/check?redirect=1", headers={"X-Original-URL": f"{APP}/x"})
    assert response.status_code == 302
    assert response.headers["Location"] == response.headers["X-Gatehouse-Login-URL"]
    assert response.headers["Location"].startswith(f"{ISSUER}/auth/start?")
    # Traefik passes the refusal on as it is: the state cookie is the response's own.
    assert response.headers["Set-Cookie"] == response.headers["X-Gatehouse-Set-Cookie"]
    assert response.headers["Set-Cookie"].startswith(f"{STATE_COOKIE}=")


# --- the shared parent domain --------------------------------------------------------------------


def test_the_cookie_domain_must_hold_the_issuer() -> None:
    base = {"ENV": "testing", "ISSUER": "https://auth.gatehouse.test"}
    for good, stored in (
        (".gatehouse.test", "gatehouse.test"),
        ("gatehouse.test", "gatehouse.test"),
        ("auth.gatehouse.test", "auth.gatehouse.test"),
    ):
        settings = load_settings({**base, "COOKIE_DOMAIN": good}, environ={})
        assert settings.cookie_domain == stored
    for bad in ("other.test", "test.gatehouse.test", "atehouse.test", "test", "127.0.0.1", "a..b"):
        with pytest.raises(ConfigError, match="COOKIE_DOMAIN"):
            load_settings({**base, "COOKIE_DOMAIN": bad}, environ={})
    assert load_settings(base, environ={}).cookie_domain == ""


@pytest.mark.parametrize("settings_overrides", [{"COOKIE_DOMAIN": ".gatehouse.test"}])
def test_sign_in_and_sign_out_use_the_cookie_domain(client: FlaskClient, ann: Any) -> None:
    with client.application.test_request_context():
        response = Response()
        set_session_cookie(response, "ghc_x", timedelta(hours=1))
    (header,) = response.headers.getlist("Set-Cookie")
    assert "Domain=gatehouse.test" in header
    *_, token = ann
    cookie(client, token)
    out = form_post(client, "/logout")
    assert out.status_code == 303, out.data
    cleared = [h for h in out.headers.getlist("Set-Cookie") if h.startswith(SESSION_COOKIE)]
    # Cleared with the domain, and a host-only cookie from before the setting as well.
    assert any("Domain=gatehouse.test" in h for h in cleared)
    assert any("Domain=" not in h for h in cleared)
    assert all("Max-Age=0" in h for h in cleared)
    # A host under the domain is not a callback host: its sign-in is the usual one.
    login = check(client, X_Original_URL="http://app.gatehouse.test/")
    assert urlsplit(login.headers["X-Gatehouse-Login-URL"]).path == "/login"


# --- Caddy, for real ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def caddy_binary() -> str:
    try:
        return install_caddy()
    except ProxyUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def caddy(app: Flask, caddy_binary: str, tmp_path: Path) -> Iterator[Any]:
    """Caddy (docs/proxies/Caddyfile) → Gatehouse over HTTP, and → the echoing app."""
    with serve_app(app) as gatehouse, echo_upstream() as upstream:
        port = free_port()
        caddyfile = render_caddyfile(port, gatehouse, upstream)
        with run_caddy(caddy_binary, tmp_path / "caddy", caddyfile, port) as server:
            yield server


def test_caddy_signs_in_an_app_on_its_own_domain_through_the_callback(
    client: FlaskClient, ann: Any, caddy: Any
) -> None:
    org, user, _, token = ann
    host = f"app.acme.example:{caddy.port}"
    origin = f"http://{host}"
    anonymous = caddy.get("/dashboard?x=1", {"Host": host})
    assert anonymous.status == 302, caddy.error_log()
    assert anonymous.getheader("Cache-Control") == "no-store"
    login = urlsplit(anonymous.getheader("Location"))
    assert login.path == "/auth/start", (anonymous.getheaders(), caddy.error_log())
    query = parse_qs(login.query)
    state = query.pop("state")[0]
    assert query == {"next": [f"{origin}/dashboard?x=1"]}
    given: SimpleCookie = SimpleCookie(anonymous.getheader("Set-Cookie"))
    assert given[STATE_COOKIE].value == state  # passed on by Caddy

    cookie(client, token)  # the browser, signed in at Gatehouse, follows the redirect there
    handed = client.get(f"/auth/start?{login.query}")
    assert handed.status_code == 302
    back = urlsplit(handed.headers["Location"])
    assert back.netloc == host and back.path == "/_gatehouse/callback"

    at_callback = {"Host": host, "Cookie": f"{STATE_COOKIE}={state}"}
    assert caddy.get(f"{back.path}?{back.query}", {"Host": host}).status == 400  # no state
    traded = caddy.get(f"{back.path}?{back.query}", at_callback)
    assert traded.status == 302, (traded.body, caddy.error_log())
    assert traded.getheader("Location") == f"{origin}/dashboard?x=1"
    jar: SimpleCookie = SimpleCookie(traded.getheader("Set-Cookie"))
    credential = jar[FORWARD_COOKIE]
    assert not credential["domain"]
    browser = {"Host": host, "Cookie": f"{FORWARD_COOKIE}={credential.value}"}
    forged = {**browser, "X-Gatehouse-Role": "owner", "X-Gatehouse-Org": "evil"}
    passed = caddy.get("/dashboard?x=1", forged)
    assert passed.status == 200, caddy.error_log()
    seen = json.loads(passed.body)
    assert seen["path"] == "/dashboard?x=1"
    assert seen["headers"]["X-Gatehouse-User"] == user.id
    assert (seen["headers"]["X-Gatehouse-Org"], seen["headers"]["X-Gatehouse-Role"]) == (
        "acme",
        "member",
    )
    replayed = caddy.get(f"{back.path}?{back.query}", at_callback)
    assert replayed.status == 400  # the code was used

    set_member_status(system_actor(), org, user.id, MembershipStatus.SUSPENDED)
    db.session.commit()
    assert caddy.get("/dashboard?x=1", browser).status == 302


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "FORWARD_AUTH_HOSTS": HOSTS + ",acme.local:8080=acme",
            "RETURN_ORIGINS": "http://a.test:81, x; script-src *",
        }
    ],
)
def test_pages_let_forms_redirect_to_the_app_hosts_only(client: FlaskClient) -> None:
    """CSP ``form-action`` holds for a form's redirects: a sign-in confirmed by a form post
    must be allowed on to the apps (their callback), and nowhere else."""
    csp = client.get("/login").headers["Content-Security-Policy"]
    (form_action,) = [d.strip() for d in csp.split(";") if d.strip().startswith("form-action")]
    assert form_action.split() == [
        "form-action",
        "'self'",
        "http://a.test:81",
        "app.acme.test:*",
        "other-app.test:*",
        "app.gatehouse.test:*",
        "app.acme.example:*",
        "acme.local:8080",
    ]
    assert "script-src *" not in csp
