"""Connections through the admin API and the CLI: OIDC discovered from the real IdP, SAML from
metadata or by hand; the secret stored encrypted and never shown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from idp.connections.models import Connection
from idp.connections.services import SECRET
from idp.db import db
from idp.sso.saml import new_sp_keypair
from tests.builders import auth, make_key, make_org
from tests.peers import OidcIdp, SamlIdp, SamlSp
from tests.test_cli import fails, ok

SECRET_VALUE = "oidc-client-secret-that-must-stay-hidden"


@pytest.fixture(scope="module")
def oidc_idp() -> Iterator[OidcIdp]:
    client = {"client_id": "gh", "client_secret": SECRET_VALUE, "redirect_uris": ["http://x/cb"]}
    with OidcIdp(clients=[client], accounts={}) as server:
        yield server


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ALLOW_HTTP_LOOPBACK": True}


def test_an_oidc_connection_is_discovered_and_its_secret_kept_encrypted(
    client: FlaskClient, oidc_idp: OidcIdp
) -> None:
    org = make_org("acme")
    headers = auth(make_key(org))
    body = {
        "kind": "oidc",
        "name": "Okta",
        "preset": "okta",
        "issuer": oidc_idp.issuer,
        "client_id": "gh",
        "client_secret": SECRET_VALUE,
    }
    created = client.post("/api/v1/orgs/acme/connections", json=body, headers=headers)
    assert created.status_code == 201, created.json
    shown = created.get_data(as_text=True)
    assert SECRET_VALUE not in shown
    settings = created.json["settings"]
    assert settings["issuer"] == oidc_idp.issuer
    assert settings["redirect_uri"].endswith(f"/sso/oidc/{created.json['id']}/callback")
    stored = db.session.get(Connection, created.json["id"])
    assert SECRET_VALUE not in stored.secret
    assert SECRET.decrypt(stored.id, stored.secret).decode() == SECRET_VALUE

    listed = client.get("/api/v1/orgs/acme/connections", headers=headers)
    assert [c["id"] for c in listed.json["data"]] == [created.json["id"]]
    disabled = client.patch(
        f"/api/v1/orgs/acme/connections/{stored.id}", json={"enabled": False}, headers=headers
    )
    assert disabled.status_code == 200 and disabled.json["enabled"] is False


def test_an_issuer_that_names_itself_otherwise_is_refused(
    client: FlaskClient, oidc_idp: OidcIdp
) -> None:
    org = make_org("acme")
    body = {
        "kind": "oidc",
        "name": "Okta",
        "issuer": oidc_idp.issuer + "/",  # discovery answers with the issuer without the slash
        "client_id": "gh",
        "client_secret": "s",
    }
    refused = client.post("/api/v1/orgs/acme/connections", json=body, headers=auth(make_key(org)))
    assert refused.status_code == 400
    assert refused.json["error"] and "Traceback" not in refused.get_data(as_text=True)
    assert db.session.query(Connection).count() == 0


def test_the_cli_adds_an_oidc_connection_and_prints_only_its_id(
    app: Flask, runner: FlaskCliRunner, oidc_idp: OidcIdp
) -> None:
    make_org("acme")
    result = ok(
        runner,
        "connection",
        "add",
        "acme",
        "--oidc-issuer",
        oidc_idp.issuer,
        "--client-id",
        "gh",
        "--client-secret",
        SECRET_VALUE,
    )
    connection_id = result.stdout.strip()
    assert connection_id.startswith("con_") and db.session.get(Connection, connection_id)
    assert SECRET_VALUE not in result.stdout + result.stderr
    listed = ok(runner, "connection", "list", "acme")
    assert listed.stdout.split("\t")[:2] == [connection_id, "oidc"]
    ok(runner, "connection", "remove", "acme", connection_id)
    assert db.session.get(Connection, connection_id) is None


def test_the_cli_adds_a_saml_connection_from_the_idps_metadata_file(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    make_org("acme")
    with SamlIdp(sps=[SamlSp("http://sp.test/metadata", "http://sp.test/acs")], users={}) as idp:
        metadata = tmp_path / "idp.xml"
        metadata.write_text(idp.metadata_xml())
        result = ok(runner, "connection", "add", "acme", "--saml-metadata", str(metadata))
        connection = db.session.get(Connection, result.stdout.strip())
        assert connection.settings["idp_entity_id"] == idp.entity_id
        assert connection.settings["sso_url"] == idp.sso_url
    assert "PRIVATE KEY" not in connection.secret  # the SP key, encrypted
    assert "PRIVATE KEY" in SECRET.decrypt(connection.id, connection.secret).decode()
    fails(runner, "connection", "add", "nope", "--saml-metadata", str(metadata))


def test_a_saml_connection_by_hand_shows_the_urls_to_give_the_idp(client: FlaskClient) -> None:
    org = make_org("acme")
    cert, _ = new_sp_keypair("idp.test")
    body = {
        "kind": "saml",
        "name": "ADFS",
        "idp_entity_id": "https://adfs.acme.example/adfs/services/trust",
        "sso_url": "https://adfs.acme.example/adfs/ls/",
        "idp_certs": [cert],
        "authn_request_binding": "post",
    }
    created = client.post("/api/v1/orgs/acme/connections", json=body, headers=auth(make_key(org)))
    assert created.status_code == 201, created.json
    settings = created.json["settings"]
    base = f"/sso/saml/{created.json['id']}"
    assert settings["acs_url"].endswith(f"{base}/acs")
    assert settings["sp_metadata_url"].endswith(f"{base}/metadata")
    assert "PRIVATE KEY" not in created.get_data(as_text=True)
    insecure = {**body, "sso_url": "http://adfs.acme.example/adfs/ls/"}
    refused = client.post(
        "/api/v1/orgs/acme/connections", json=insecure, headers=auth(make_key(org))
    )
    assert refused.status_code == 400 and refused.json["error"] == "insecure_sso_url"


def test_saml_certificate_rollover_through_the_api(client: FlaskClient) -> None:
    org = make_org("acme")
    headers = auth(make_key(org))
    current, _ = new_sp_keypair("idp.test")
    following, _ = new_sp_keypair("idp.test")
    body = {
        "kind": "saml",
        "name": "Okta",
        "idp_entity_id": "https://idp.example/saml",
        "sso_url": "https://idp.example/sso",
        "idp_certs": [current],
    }
    created = client.post("/api/v1/orgs/acme/connections", json=body, headers=headers).json
    url = f"/api/v1/orgs/acme/connections/{created['id']}"
    both = client.patch(url, json={"idp_certs": [current, following]}, headers=headers)
    assert both.status_code == 200 and len(both.json["settings"]["idp_certs"]) == 2
    refused = client.patch(url, json={"idp_certs": ["not a certificate"]}, headers=headers)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_certificate"
    assert client.patch(url, json={"idp_certs": []}, headers=headers).status_code == 400


# --- drafts: the SP's values first, the IdP's later -------------------------------------


def test_a_saml_draft_shows_the_sp_values_first_and_takes_the_idps_later(
    client: FlaskClient,
) -> None:
    org = make_org("acme")
    headers = auth(make_key(org))
    created = client.post(
        "/api/v1/orgs/acme/connections", json={"kind": "saml", "name": "Entra"}, headers=headers
    )
    assert created.status_code == 201, created.json
    draft = created.json
    assert (draft["draft"], draft["enabled"]) == (True, False)
    base = f"/sso/saml/{draft['id']}"
    assert draft["settings"]["acs_url"].endswith(f"{base}/acs")
    metadata = client.get(f"{base}/metadata")
    assert metadata.status_code == 200 and draft["settings"]["acs_url"] in metadata.text
    url = f"/api/v1/orgs/acme/connections/{draft['id']}"
    refused = client.patch(url, json={"enabled": True}, headers=headers)
    assert refused.status_code == 409 and refused.json["error"] == "connection_draft"
    assert client.get(f"{base}/login").status_code == 403  # nobody signs in through a draft
    with SamlIdp(
        sps=[SamlSp(draft["settings"]["sp_entity_id"], draft["settings"]["acs_url"])], users={}
    ) as idp:
        given = client.patch(url, json={"metadata_url": idp.metadata_url}, headers=headers)
    assert given.status_code == 200, given.json
    assert (given.json["draft"], given.json["settings"]["idp_entity_id"]) == (False, idp.entity_id)
    # The SP's key pair is the one the IdP was given.
    assert given.json["settings"]["sp_cert"] == draft["settings"]["sp_cert"]
    enabled = client.patch(url, json={"enabled": True}, headers=headers)
    assert enabled.status_code == 200 and enabled.json["enabled"] is True


def test_a_saml_connection_without_certificates_is_a_clear_400(client: FlaskClient) -> None:
    org = make_org("acme")
    body = {
        "kind": "saml",
        "name": "X",
        "idp_entity_id": "https://i.example",
        "sso_url": "https://i.example/sso",
    }
    refused = client.post("/api/v1/orgs/acme/connections", json=body, headers=auth(make_key(org)))
    assert refused.status_code == 400 and refused.json["error"] == "invalid_settings"
    assert db.session.query(Connection).count() == 0


def test_an_oidc_draft_gives_its_redirect_uri_first_and_its_scopes_can_change(
    client: FlaskClient, oidc_idp: OidcIdp
) -> None:
    org = make_org("acme")
    headers = auth(make_key(org))
    body = {"kind": "oidc", "name": "Okta", "preset": "okta"}
    draft = client.post("/api/v1/orgs/acme/connections", json=body, headers=headers).json
    assert draft["draft"] is True
    assert draft["settings"]["redirect_uri"].endswith(f"/sso/oidc/{draft['id']}/callback")
    assert draft["settings"]["scopes"] == ["openid", "email", "profile", "groups"]  # Okta's
    url = f"/api/v1/orgs/acme/connections/{draft['id']}"
    no_secret = client.patch(
        url, json={"issuer": oidc_idp.issuer, "client_id": "gh"}, headers=headers
    )
    assert no_secret.status_code == 400 and no_secret.json["error"] == "invalid_client_secret"
    given = client.patch(
        url,
        json={"issuer": oidc_idp.issuer, "client_id": "gh", "client_secret": SECRET_VALUE},
        headers=headers,
    )
    assert given.status_code == 200, given.json
    assert given.json["draft"] is False and given.json["settings"]["issuer"] == oidc_idp.issuer
    scoped = client.patch(
        url, json={"scopes": ["email", "groups"], "claims": {"groups": "roles"}}, headers=headers
    )
    assert scoped.status_code == 200, scoped.json
    assert scoped.json["settings"]["scopes"] == ["openid", "email", "groups"]
    assert scoped.json["settings"]["claims"]["groups"] == "roles"
    for bad in (
        {"scopes": "openid email"},
        {"claims": {"password": "x"}},
        {"claims": {"subject": []}},
    ):
        refused = client.patch(url, json=bad, headers=headers)
        assert refused.status_code == 400, (bad, refused.json)
    assert db.session.get(Connection, draft["id"]).settings["claims"]["groups"] == "roles"
