"""Registering apps: the admin API (workspace keys) and ``gatehouse client create``."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from idp.apps.models import OAuthClient
from idp.db import db
from tests.builders import auth, make_key, make_org
from tests.oauth.conftest import World, introspect, tokens_for


def test_admin_api_creates_lists_and_revokes_clients(
    browser: FlaskClient, world: World, root_key: str
) -> None:
    created = browser.post(
        "/api/v1/clients",
        json={"name": "Portal", "redirect_uris": ["https://portal.example/cb"]},
        headers=auth(root_key),
    )
    assert created.status_code == 201, created.json
    assert created.json["client_secret"].startswith("ghs_")
    row = db.session.scalar(select(OAuthClient).where(OAuthClient.name == "Portal"))
    assert row.secret_digest and created.json["client_secret"] not in row.secret_digest
    listed = browser.get("/api/v1/clients", headers=auth(root_key)).json["data"]
    assert "Portal" in {c["name"] for c in listed}
    assert all("client_secret" not in c and "secret_digest" not in c for c in listed)

    tokens = tokens_for(browser, world)
    gone = browser.delete(f"/api/v1/clients/{world.app.client_id}", headers=auth(root_key))
    assert gone.status_code == 204
    assert introspect(browser, _confidential(browser, root_key), tokens["access_token"]) == {
        "active": False
    }
    again = browser.delete(f"/api/v1/clients/{world.app.client_id}", headers=auth(root_key))
    assert again.status_code == 404


def _confidential(browser: FlaskClient, root_key: str) -> Any:
    from tests.oauth.conftest import App

    made = browser.post(
        "/api/v1/clients",
        json={"name": "RS", "redirect_uris": ["https://rs.example/cb"]},
        headers=auth(root_key),
    ).json
    return App(None, made["client_id"], made["client_secret"])  # type: ignore[arg-type]


def test_public_clients_get_no_secret(browser: FlaskClient, root_key: str) -> None:
    created = browser.post(
        "/api/v1/clients",
        json={"name": "SPA", "redirect_uris": ["https://spa.example/cb"], "is_public": True},
        headers=auth(root_key),
    )
    assert created.status_code == 201 and "client_secret" not in created.json


def test_redirect_uris_must_be_absolute_without_fragment(
    browser: FlaskClient, root_key: str
) -> None:
    for uri in ("/relative", "https://x.example/cb#frag", "javascript:alert(1)"):
        response = browser.post(
            "/api/v1/clients", json={"name": "X", "redirect_uris": [uri]}, headers=auth(root_key)
        )
        assert response.status_code == 400, (uri, response.json)


def test_org_keys_cannot_manage_clients(browser: FlaskClient) -> None:
    token = make_key(make_org("acme"))
    assert browser.get("/api/v1/clients", headers=auth(token)).status_code == 404


def test_cli_creates_a_client_and_prints_the_secret_once(runner: Any) -> None:
    result = runner.invoke(
        args=[
            "client",
            "create",
            "--name",
            "Intranet",
            "--redirect-uri",
            "https://intranet.example/cb",
            "--redirect-uri",
            "https://intranet.example/cb2",
            "--third-party",
        ]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    row = db.session.scalar(select(OAuthClient).where(OAuthClient.client_id == out["client_id"]))
    assert row.redirect_uris == ["https://intranet.example/cb", "https://intranet.example/cb2"]
    assert row.first_party is False and row.check_client_secret(out["client_secret"])
    public = runner.invoke(
        args=[
            "client",
            "create",
            "--name",
            "SPA",
            "--redirect-uri",
            "https://s.example/cb",
            "--public",
        ]
    )
    assert public.exit_code == 0 and set(json.loads(public.output)) == {"client_id"}
