"""A browser-based public client (PKCE, no secret) completes its sign-in from its own origin
in a real browser: its page's fetch() reads discovery, exchanges the code at the token
endpoint and reads userinfo. A page from an origin no app registered cannot read the
token or userinfo answers (CORS), though discovery is public."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect

from idp.db import db
from idp.oauth.services import create_client
from idp.orgs.roles import Role
from tests.browser import chromium, new_page
from tests.builders import make_member, make_org, signed_in_cookie, workspace
from tests.proxies import free_port, serve_app

# Gatehouse on a loopback address (authlib takes plain http only there, RFC 8252 §7.3), the
# app's pages on two names mapped to loopback: two more origins.
GATEHOUSE, SPA, OTHER = "127.0.0.1", "spa.test", "other.test"

# The app's page: what a single-page app's OIDC library does after the redirect.
_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>App</title>
<p id="result">working</p>
<script>
const config = %(config)s;
const show = (text) => { document.getElementById("result").textContent = text; };
async function readable(url, options) {
  try { const r = await fetch(url, options); return [r.status, await r.json()]; }
  catch (e) { return ["blocked", null]; }  // CORS: the answer is withheld from the page
}
(async () => {
  const [, discovery] = await readable(config.issuer + "/.well-known/openid-configuration");
  const code = new URLSearchParams(location.search).get("code") || "none";
  const [tokenStatus, tokens] = await readable(discovery.token_endpoint, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code", code, redirect_uri: config.redirect_uri,
      client_id: config.client_id, code_verifier: config.verifier,
    }),
  });
  const bearer = tokens && tokens.access_token ? tokens.access_token : "none";
  const [infoStatus, info] = await readable(discovery.userinfo_endpoint, {
    headers: { Authorization: "Bearer " + bearer },  // not safelisted: a preflight first
  });
  show(`discovery:${discovery.issuer === config.issuer} token:${tokenStatus} ` +
       `userinfo:${infoStatus} email:${info ? info.email : "-"}`);
})();
</script></html>"""


class _AppPages(BaseHTTPRequestHandler):
    page = ""

    def do_GET(self) -> None:
        body = self.page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def issuer(port: int) -> str:
    return f"http://{GATEHOUSE}:{port}"


@pytest.fixture
def settings_overrides(issuer: str) -> dict[str, Any]:
    return {"ISSUER": issuer}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(hosts=[SPA, OTHER]) as launched:
        yield launched


@pytest.fixture
def app_pages() -> Iterator[tuple[type[_AppPages], int]]:
    handler = type("Pages", (_AppPages,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, server.server_port
    finally:
        server.shutdown()
        server.server_close()


def test_a_public_client_signs_in_from_its_own_origin_and_no_other_can_read(
    app: Flask, port: int, issuer: str, browser: Browser, app_pages: Any
) -> None:
    handler, app_port = app_pages
    redirect_uri = f"http://{SPA}:{app_port}/callback"
    client, secret = create_client(
        workspace().id, name="SPA", redirect_uris=[redirect_uri], is_public=True
    )
    ann = make_member(make_org("acme"), "ann@acme.example", Role.MEMBER)
    db.session.commit()
    assert secret is None
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    config = {
        "issuer": issuer,
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "verifier": verifier,
    }
    handler.page = _PAGE % {"config": json.dumps(config)}

    with serve_app(app, port):
        page = new_page(browser)
        page.context.add_cookies(
            [{"name": "gatehouse_session", "value": signed_in_cookie(ann), "url": issuer}]
        )
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "state": "s1",
            "nonce": "n1",
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        page.goto(f"{issuer}/oauth/authorize?{urlencode(query)}")
        expect(page.locator("#result")).to_have_text(
            "discovery:true token:200 userinfo:200 email:ann@acme.example"
        )

        # Another origin (no app registered it): discovery yes; token and userinfo no.
        other = new_page(browser)
        other.goto(f"http://{OTHER}:{app_port}/callback?code=stolen")
        expect(other.locator("#result")).to_have_text(
            "discovery:true token:blocked userinfo:blocked email:-"
        )
