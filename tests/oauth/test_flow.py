"""The code flow end to end in-process: discovery, authorize, token, ID token, userinfo."""

from __future__ import annotations

from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import ISSUER
from tests.oauth.conftest import World, tokens_for, userinfo


def test_discovery_names_the_issuer_and_only_the_code_flow(browser: FlaskClient) -> None:
    body = browser.get("/.well-known/openid-configuration").json
    assert body["issuer"] == ISSUER
    assert body["response_types_supported"] == ["code"]
    assert body["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert body["jwks_uri"] == f"{ISSUER}/jwks"
    for name in ("end_session_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert body[name].startswith(ISSUER + "/oauth/")


def test_id_token_carries_the_org_role_and_session(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    keys = KeySet.import_key_set(browser.get("/jwks").json)
    claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["iss"] == ISSUER and claims["aud"] == [world.app.client_id]
    assert claims["sub"] == world.member.user_id
    assert claims["org"] == {"id": world.org.id, "slug": "acme", "name": "Acme Corp"}
    assert claims["role"] == "admin" and "members:invite" in claims["permissions"]
    assert claims["email"] == "ann@acme.example" and claims["amr"] == ["email"]
    assert claims["nonce"].startswith("n-") and claims["sid"]
    info = userinfo(browser, tokens["access_token"])
    assert info.status_code == 200, info.text
    assert info.json["org"]["slug"] == "acme" and info.json["sub"] == claims["sub"]
