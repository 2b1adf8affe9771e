"""End to end over real HTTP: a relying party built on Authlib's Flask client signs a person
in through Gatehouse, which brokers to the real upstream ``oidc-provider`` through the org's
OIDC connection; the RP reads ``org`` and ``role`` from the ID token."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify, url_for
from werkzeug.serving import make_server

from idp.actors import system_actor
from idp.connections import services as connections
from idp.connections.models import ConnectionKind
from idp.connections.services import create_connection
from idp.db import db, new_id
from idp.oauth.services import create_client
from idp.orgs.role_mappings import set_role_mapping
from idp.orgs.roles import Role
from idp.sso import oidc
from tests.builders import make_org, workspace
from tests.peers import Browser, OidcIdp


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


GATEHOUSE = f"http://127.0.0.1:{_free_port()}"
RP = f"http://127.0.0.1:{_free_port()}"
CONNECTION_ID = new_id("con")
UPSTREAM_CLIENT = "gatehouse-broker"
UPSTREAM_SECRET = "upstream-secret-" + secrets.token_hex(16)
ACCOUNTS = {
    "alice": {
        "password": "alice-password",
        "claims": {
            "email": "alice@example.com",
            "email_verified": True,
            "name": "Alice Liddell",
            "groups": ["admins"],
            "amr": ["pwd", "otp"],
        },
    }
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[OidcIdp]:
    client = {
        "client_id": UPSTREAM_CLIENT,
        "client_secret": UPSTREAM_SECRET,
        "redirect_uris": [f"{GATEHOUSE}/sso/oidc/{CONNECTION_ID}/callback"],
    }
    with OidcIdp(clients=[client], accounts=ACCOUNTS) as server:
        yield server


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ISSUER": GATEHOUSE, "ALLOW_HTTP_LOOPBACK": True}


def _serve(app: Flask, base_url: str) -> Iterator[None]:
    port = int(base_url.rsplit(":", 1)[1])
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def gatehouse(app: Flask) -> Iterator[None]:
    """The test's app, served over HTTP at ``GATEHOUSE`` (its issuer)."""
    yield from _serve(app, GATEHOUSE)


def make_rp(client_id: str, client_secret: str) -> Flask:
    """The app: Authlib's Flask client, configured from Gatehouse's discovery document."""
    rp = Flask("rp")
    rp.config["SECRET_KEY"] = secrets.token_hex(16)
    oauth = OAuth(rp)
    oauth.register(
        "gatehouse",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{GATEHOUSE}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )

    @rp.get("/login")
    def login() -> Any:
        callback = url_for("callback", _external=True)
        return oauth.gatehouse.authorize_redirect(callback, organization="acme")

    @rp.get("/callback")
    def callback() -> Any:
        token = oauth.gatehouse.authorize_access_token()
        info = oauth.gatehouse.userinfo(token=token)
        return jsonify(id_token=dict(token["userinfo"]), userinfo=dict(info))

    return rp


def test_rp_signs_in_through_gatehouse_brokering_to_the_upstream_idp(
    gatehouse: None, upstream: OidcIdp, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = make_org("acme", "Acme Corp")
    monkeypatch.setattr(connections, "new_id", lambda _prefix: CONNECTION_ID)
    create_connection(
        system_actor(),
        org,
        kind=ConnectionKind.OIDC,
        name="Acme IdP",
        settings=oidc.build_settings(
            upstream.issuer, UPSTREAM_CLIENT, scopes=("openid", "email", "profile", "groups")
        ),
        secret=UPSTREAM_SECRET,
    )
    set_role_mapping(system_actor(), org, group="admins", role=Role.ADMIN)
    client, secret = create_client(workspace().id, name="The app", redirect_uris=[f"{RP}/callback"])
    db.session.commit()
    assert secret is not None
    browser = Browser([GATEHOUSE, RP, upstream.base_url])

    with _serving(make_rp(client.client_id, secret), RP):
        page = browser.get(f"{RP}/login")
        assert page.status == 200 and page.url.startswith(upstream.base_url), page.text[:500]
        done = browser.submit_form(page, {"login": "alice", "password": "alice-password"})

    assert done.status == 200, done.text[:2000]
    body = json.loads(done.text)
    claims = body["id_token"]
    assert claims["iss"] == GATEHOUSE and claims["aud"] == [client.client_id]
    assert claims["org"]["slug"] == "acme" and claims["org"]["name"] == "Acme Corp"
    assert claims["role"] == "admin" and "members:invite" in claims["permissions"]
    assert claims["email"] == "alice@example.com" and claims["amr"] == ["pwd", "otp"]
    assert body["userinfo"]["sub"] == claims["sub"] and body["userinfo"]["org"]["id"] == org.id


class _serving:
    """Serve ``app`` at ``base_url`` for the ``with`` block."""

    def __init__(self, app: Flask, base_url: str) -> None:
        self._gen = _serve(app, base_url)

    def __enter__(self) -> None:
        next(self._gen)

    def __exit__(self, *exc: object) -> None:
        next(self._gen, None)
