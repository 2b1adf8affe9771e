"""OIDC relying party end to end: Gatehouse's /sso/oidc routes against the real
``oidc-provider`` on loopback, and forged ID tokens against the same verification path."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import import_key
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from idp.actors import system_actor
from idp.connections import services as connections
from idp.connections.models import Connection, ConnectionKind, ExternalIdentity
from idp.connections.services import create_connection
from idp.db import db, new_id
from idp.orgs.custom_roles import register_permission
from idp.orgs.models import Membership, MembershipSource, Organization
from idp.orgs.role_mappings import set_role_mapping
from idp.orgs.roles import Role
from idp.resources.models import ResourceGrant
from idp.resources.services import create_resource, create_resource_type
from idp.sessions.models import Session
from idp.sso import oidc, testing
from idp.sso.models import LoginState
from idp.users.models import User
from tests.builders import make_org
from tests.conftest import ISSUER
from tests.peers import Browser, OidcIdp, rsa_jwk

CONNECTION_ID = new_id("con")  # fixed, so the IdP can register the callback up front
CALLBACK_PATH = f"/sso/oidc/{CONNECTION_ID}/callback"
LOGIN_PATH = f"/sso/oidc/{CONNECTION_ID}/login"
CALLBACK = f"{ISSUER}{CALLBACK_PATH}"
CLIENT_ID = "gatehouse-rp"
CLIENT_SECRET = "gatehouse-client-secret-" + secrets.token_hex(16)
ACCOUNTS = {
    "alice": {
        "password": "alice-password",
        "claims": {
            "email": "alice@example.com",
            "email_verified": True,
            "name": "Alice Liddell",
            "groups": ["engineering", "admins"],
            "amr": ["pwd", "otp"],
        },
    }
}
SCOPES = ("openid", "email", "profile", "groups")


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIdp]:
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [CALLBACK]}
    with OidcIdp(clients=[client], accounts=ACCOUNTS) as server:
        yield server


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ALLOW_HTTP_LOOPBACK": True}


def acme_connection(idp: OidcIdp, monkeypatch: pytest.MonkeyPatch) -> Connection:
    """Acme's OIDC connection to ``idp``, with the id whose callback the IdP has registered."""
    org = make_org("acme")
    monkeypatch.setattr(connections, "new_id", lambda _prefix: CONNECTION_ID)
    made = create_connection(
        system_actor(),
        org,
        kind=ConnectionKind.OIDC,
        name="Acme IdP",
        settings=oidc.build_settings(idp.issuer, CLIENT_ID, scopes=SCOPES),
        secret=CLIENT_SECRET,
    )
    db.session.commit()
    return made


@pytest.fixture
def connection(app: Flask, idp: OidcIdp, monkeypatch: pytest.MonkeyPatch) -> Connection:
    return acme_connection(idp, monkeypatch)


# --- helpers ---


def session_count() -> int:
    db.session.rollback()  # see what the requests committed
    return int(db.session.scalar(select(func.count()).select_from(Session)) or 0)


def begin(client: FlaskClient, next_url: str | None = None) -> str:
    """Start a login at Gatehouse; the authorization URL it redirects to."""
    response = client.get(LOGIN_PATH, query_string={"next": next_url} if next_url else {})
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def url_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def with_params(url: str, **changes: str | None) -> str:
    """The URL with query parameters replaced (None removes one)."""
    parts = urlsplit(url)
    params = {**url_params(url), **changes}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return urlunsplit(parts._replace(query=query))


def idp_login(idp: OidcIdp, authorize_url: str) -> dict[str, str]:
    """Alice signs in at the IdP; the parameters of its redirect back to Gatehouse."""
    browser = Browser([idp.base_url])
    page = browser.get(authorize_url)
    assert page.status == 200, page.text
    done = browser.submit_form(page, {"login": "alice", "password": "alice-password"})
    assert done.location is not None, done.text
    assert done.location.startswith(CALLBACK + "?")
    return done.redirect_params()


def callback(client: FlaskClient, params: dict[str, str]) -> TestResponse:
    response = client.get(CALLBACK_PATH, query_string=params)
    return response


def full_login(client: FlaskClient, idp: OidcIdp, next_url: str | None = None) -> TestResponse:
    return callback(client, idp_login(idp, begin(client, next_url)))


def assert_refused(response: TestResponse, code: str, status: int = 403) -> None:
    assert response.status_code == status, response.text
    assert response.headers["X-Gatehouse-Error"] == code
    assert "gatehouse_session=" not in response.headers.get("Set-Cookie", "")


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- happy path ---


def test_login_through_real_idp_signs_in_and_provisions_member(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    authorize_url = begin(client, "/dashboard")
    assert authorize_url.startswith(idp.authorization_endpoint + "?")
    request = url_params(authorize_url)
    assert request["response_type"] == "code"
    assert request["client_id"] == CLIENT_ID
    assert request["redirect_uri"] == CALLBACK
    assert request["code_challenge_method"] == "S256"
    assert request["scope"] == " ".join(SCOPES)
    assert len(request["state"]) >= 32 and len(request["nonce"]) >= 32

    response = callback(client, idp_login(idp, authorize_url))

    assert response.status_code == 303, response.text
    assert response.headers["Location"] == "/dashboard"
    assert client.get_cookie("gatehouse_session") is not None
    assert session_count() == 1
    membership = db.session.scalars(select(Membership)).one()
    assert membership.source is MembershipSource.JIT
    assert membership.role == Role.MEMBER
    assert sorted(membership.sso_groups) == ["admins", "engineering"]
    user = db.session.get(User, membership.user_id)
    assert user is not None and user.email == "alice@example.com"
    session = db.session.scalars(select(Session)).one()
    assert session.connection_id == CONNECTION_ID
    assert list(session.amr) == ["pwd", "otp"]
    identity = db.session.scalars(select(ExternalIdentity)).one()
    assert (identity.subject, identity.user_id) == ("alice", user.id)

    # The same subject again: the same person, a second session.
    second = full_login(client, idp)
    assert second.status_code == 303
    assert client.get_cookie("gatehouse_session") is not None
    assert session_count() == 2
    assert db.session.scalar(select(func.count()).select_from(User)) == 1
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 1


def test_groups_claim_with_role_mapping_gives_mapped_role(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    org = db.session.get(Organization, connection.org_id)
    assert org is not None
    set_role_mapping(system_actor(), org, group="admins", role=Role.ADMIN)
    db.session.commit()

    assert full_login(client, idp).status_code == 303
    membership = db.session.scalars(select(Membership)).one()
    assert membership.role == Role.ADMIN


def test_groups_claim_mapped_at_a_resource_gives_the_role_there(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    org = db.session.get(Organization, connection.org_id)
    assert org is not None
    system = system_actor()
    register_permission(system, org.workspace_id, key="projects:deploy")
    create_resource_type(
        system,
        org.workspace_id,
        key="project",
        roles=[{"key": "developer", "permissions": ["projects:deploy"]}],
    )
    create_resource(system, org, type="project", id="p1")
    set_role_mapping(
        system, org, group="engineering", role="developer", resource={"type": "project", "id": "p1"}
    )
    db.session.commit()

    assert full_login(client, idp).status_code == 303
    membership = db.session.scalars(select(Membership)).one()
    assert membership.role == Role.MEMBER  # nothing org-wide
    grant = db.session.scalars(select(ResourceGrant)).one()
    assert (grant.membership_id, grant.mapping_id is not None) == (membership.id, True)


def test_connection_settings_hold_discovered_metadata(idp: OidcIdp, connection: Connection) -> None:
    settings = connection.settings
    assert settings["issuer"] == idp.issuer
    assert settings["token_endpoint"] == idp.token_endpoint
    assert settings["jwks_uri"] == idp.discovery()["jwks_uri"]
    assert settings["authorization_response_iss_parameter_supported"] is True
    assert settings["id_token_signing_alg_values_supported"]
    assert all(
        not alg.startswith("HS") for alg in settings["id_token_signing_alg_values_supported"]
    )
    assert settings["claims"]["email"] == ["email"]
    assert CLIENT_SECRET not in json.dumps(settings)


# --- state, nonce, PKCE, iss (through the real IdP) ---


def test_unknown_state_is_refused(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    params = idp_login(idp, begin(client))
    assert_refused(
        callback(client, {**params, "state": secrets.token_urlsafe(32)}), "invalid_state"
    )
    assert_refused(
        callback(client, {k: v for k, v in params.items() if k != "state"}), "invalid_state"
    )
    assert session_count() == 0


def test_replayed_state_is_refused(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    params = idp_login(idp, begin(client))
    assert callback(client, params).status_code == 303
    assert_refused(callback(client, params), "invalid_state")
    assert session_count() == 1


def test_state_from_another_browser_is_refused(
    app: Flask, client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    params = idp_login(idp, begin(client))
    other = app.test_client()
    begin(other)  # the other browser holds a login cookie of its own
    assert other.get_cookie("gatehouse_login", path="/sso/") is not None
    assert_refused(callback(other, params), "invalid_state")
    assert session_count() == 0
    # Still usable by the browser that began it: the refusal did not burn it.
    assert callback(client, params).status_code == 303


def test_missing_login_cookie_is_refused(
    app: Flask, client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    params = idp_login(idp, begin(client))
    assert_refused(callback(app.test_client(), params), "invalid_state")
    assert session_count() == 0


def test_nonce_other_than_ours_is_refused(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    authorize_url = with_params(begin(client), nonce=secrets.token_urlsafe(32))
    assert_refused(callback(client, idp_login(idp, authorize_url)), "invalid_nonce")
    assert session_count() == 0


def test_wrong_pkce_challenge_makes_idp_refuse_exchange(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    other = pkce_challenge(secrets.token_urlsafe(64))
    authorize_url = with_params(begin(client), code_challenge=other)
    assert_refused(callback(client, idp_login(idp, authorize_url)), "token_exchange_failed")
    assert session_count() == 0


def test_code_issued_without_pkce_is_refused(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    authorize_url = with_params(begin(client), code_challenge=None, code_challenge_method=None)
    assert_refused(callback(client, idp_login(idp, authorize_url)), "token_exchange_failed")
    assert session_count() == 0


def test_state_without_verifier_is_refused(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    params = idp_login(idp, begin(client))
    state = db.session.scalars(select(LoginState)).one()
    state.data = {"nonce": state.data["nonce"]}
    db.session.commit()
    assert_refused(callback(client, params), "invalid_state")
    assert session_count() == 0


def test_iss_parameter_must_name_the_connections_issuer(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    params = idp_login(idp, begin(client))
    assert params["iss"] == idp.issuer
    assert_refused(callback(client, {**params, "iss": "http://127.0.0.1:9"}), "invalid_iss")
    # The IdP advertises RFC 9207 support, so a response without iss is refused too.
    without = {k: v for k, v in params.items() if k != "iss"}
    assert_refused(callback(client, without), "invalid_iss")
    assert session_count() == 0


def test_idp_error_response_is_refused(client: FlaskClient, connection: Connection) -> None:
    state = url_params(begin(client))["state"]
    response = callback(client, {"error": "access_denied", "state": state, "iss": "x"})
    assert_refused(response, "idp_error")
    assert session_count() == 0


@pytest.mark.parametrize(
    "next_url", ["//evil.example", "https://evil.example/x", "/\\evil.example"]
)
def test_open_redirect_in_next_ends_at_root(
    client: FlaskClient, idp: OidcIdp, connection: Connection, next_url: str
) -> None:
    response = full_login(client, idp, next_url)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_disabled_connection_does_not_start_a_login(
    client: FlaskClient, connection: Connection
) -> None:
    connection.enabled = False
    db.session.commit()
    assert_refused(client.get(LOGIN_PATH), "connection_disabled")
    assert client.get("/sso/oidc/con_nope/login").status_code == 404


def test_secrets_are_not_logged(
    client: FlaskClient,
    idp: OidcIdp,
    connection: Connection,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    real = oidc.request_tokens

    def recording(conn: Connection, code: str, verifier: str) -> dict[str, Any]:
        seen["code"], seen["verifier"] = code, verifier
        seen.update(tokens := real(conn, code, verifier))
        return tokens

    monkeypatch.setattr(oidc, "request_tokens", recording)
    caplog.set_level(logging.DEBUG)
    assert full_login(client, idp).status_code == 303
    assert seen["id_token"]
    for secret in (CLIENT_SECRET, seen["code"], seen["verifier"], seen["id_token"]):
        assert secret not in caplog.text
    assert seen["access_token"] not in caplog.text


# --- forged ID tokens, fed through the token response ---


@pytest.fixture
def forged_login(
    client: FlaskClient, idp: OidcIdp, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Callable[[str], str]], TestResponse]:
    """Begin a real login, then answer the callback with the token ``make(nonce)`` builds."""

    def run(make: Callable[[str], str]) -> TestResponse:
        request = url_params(begin(client))
        token = make(request["nonce"])
        monkeypatch.setattr(oidc, "request_tokens", lambda *_args: {"id_token": token})
        return callback(client, {"state": request["state"], "code": "c", "iss": idp.issuer})

    return run


def claims_for(idp: OidcIdp, nonce: str, /, **changes: Any) -> dict[str, Any]:
    """Claims of a token signed now; a ``timedelta`` in ``changes`` is a time from now."""
    now = int(time.time())
    changes = {
        k: now + int(v.total_seconds()) if isinstance(v, timedelta) else v
        for k, v in changes.items()
    }
    claims = {
        "iss": idp.issuer,
        "aud": CLIENT_ID,
        "sub": "mallory",
        "email": "mallory@example.com",
        "nonce": nonce,
        "iat": now,
        "exp": now + 300,
        **changes,
    }
    return {k: v for k, v in claims.items() if v is not None}


def signed(
    idp: OidcIdp, claims: dict[str, Any], *, key_index: int = 0, kid: str | None = None
) -> str:
    jwk = idp.signing_keys[key_index]
    header = {"alg": jwk["alg"], "kid": kid or jwk["kid"]}
    return jwt.encode(header, claims, import_key(jwk), algorithms=[jwk["alg"]])


def test_correctly_signed_forged_token_is_accepted(
    idp: OidcIdp, forged_login: Callable[[Callable[[str], str]], TestResponse]
) -> None:
    # The control for the attacks below: the harness itself does not cause refusals.
    assert forged_login(lambda n: signed(idp, claims_for(idp, n))).status_code == 303
    assert forged_login(lambda n: signed(idp, claims_for(idp, n), key_index=1)).status_code == 303
    assert session_count() == 2


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"iss": "http://127.0.0.1:9"}, "invalid_issuer"),
        ({"aud": "someone-else"}, "invalid_audience"),
        ({"aud": [CLIENT_ID, "someone-else"]}, "invalid_audience"),
        ({"aud": [CLIENT_ID, "someone-else"], "azp": "someone-else"}, "invalid_audience"),
        ({"exp": timedelta(seconds=-120), "iat": timedelta(seconds=-900)}, "expired_id_token"),
        ({"iat": timedelta(seconds=600), "exp": timedelta(seconds=900)}, "invalid_id_token"),
        ({"nonce": "not-the-nonce"}, "invalid_nonce"),
        ({"nonce": None}, "invalid_nonce"),
        ({"sub": None}, "invalid_subject"),
    ],
)
def test_forged_claims_are_refused(
    idp: OidcIdp,
    forged_login: Callable[[Callable[[str], str]], TestResponse],
    changes: dict[str, Any],
    code: str,
) -> None:
    assert_refused(forged_login(lambda n: signed(idp, claims_for(idp, n, **changes))), code)
    assert session_count() == 0


def test_multiple_audiences_with_azp_are_accepted(
    idp: OidcIdp, forged_login: Callable[[Callable[[str], str]], TestResponse]
) -> None:
    claims = {"aud": [CLIENT_ID, "other"], "azp": CLIENT_ID}
    assert forged_login(lambda n: signed(idp, claims_for(idp, n, **claims))).status_code == 303


def test_alg_none_is_refused(
    idp: OidcIdp, forged_login: Callable[[Callable[[str], str]], TestResponse]
) -> None:
    def unsigned(nonce: str) -> str:
        header = {"alg": "none", "kid": idp.signing_keys[0]["kid"]}
        body = claims_for(idp, nonce)
        return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}."

    assert_refused(forged_login(unsigned), "unsupported_id_token_alg")
    assert session_count() == 0


def test_hs256_keyed_with_idp_public_key_is_refused(
    idp: OidcIdp, forged_login: Callable[[Callable[[str], str]], TestResponse]
) -> None:
    public_pem = import_key(idp.public_jwks()["keys"][0]).as_pem(private=False)

    def confused(nonce: str) -> str:
        header = {"alg": "HS256", "kid": idp.signing_keys[0]["kid"]}
        body = claims_for(idp, nonce)
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(mac)}"

    assert_refused(forged_login(confused), "unsupported_id_token_alg")
    assert session_count() == 0


def test_tampered_signature_is_refused(
    idp: OidcIdp, forged_login: Callable[[Callable[[str], str]], TestResponse]
) -> None:
    def tampered(nonce: str) -> str:
        head, body, signature = signed(idp, claims_for(idp, nonce)).split(".")
        middle = len(signature) // 2
        flipped = "A" if signature[middle] != "A" else "B"
        return f"{head}.{body}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"

    def swapped_claims(nonce: str) -> str:
        head, _body, signature = signed(idp, claims_for(idp, nonce)).split(".")
        other = claims_for(idp, nonce, sub="alice")
        return f"{head}.{b64(json.dumps(other).encode())}.{signature}"

    assert_refused(forged_login(tampered), "invalid_id_token_signature")
    assert_refused(forged_login(swapped_claims), "invalid_id_token_signature")
    assert session_count() == 0


def test_token_signed_by_a_foreign_key_with_known_kid_is_refused(
    idp: OidcIdp, forged_login: Callable[[Callable[[str], str]], TestResponse]
) -> None:
    kid = idp.signing_keys[0]["kid"]
    foreign = rsa_jwk(rsa.generate_private_key(65537, 2048), kid)

    def forged(nonce: str) -> str:
        header = {"alg": "RS256", "kid": kid}
        return jwt.encode(header, claims_for(idp, nonce), import_key(foreign), algorithms=["RS256"])

    assert_refused(forged_login(forged), "invalid_id_token_signature")
    assert session_count() == 0


@pytest.fixture
def jwks_fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    fetched: list[str] = []
    real = oidc._get_json

    def counting(url: str, what: str) -> dict[str, Any]:
        if what == "JWKS":
            fetched.append(url)
        return real(url, what)

    monkeypatch.setattr(oidc, "_get_json", counting)
    return fetched


def age_jwks(connection_id: str, seconds: float, keys: list[dict[str, Any]] | None = None) -> None:
    """Pretend the cached JWKS was fetched ``seconds`` ago (optionally holding ``keys``)."""
    db.session.rollback()
    row = db.session.get(Connection, connection_id)
    assert row is not None
    settings = {**row.settings, "jwks_fetched_at": time.time() - seconds}
    if keys is not None:
        settings["jwks"] = {"keys": keys}
    row.settings = settings
    db.session.commit()


def test_unknown_kid_refetches_once_then_is_rate_limited(
    idp: OidcIdp,
    connection: Connection,
    forged_login: Callable[[Callable[[str], str]], TestResponse],
    jwks_fetches: list[str],
) -> None:
    good = forged_login(lambda n: signed(idp, claims_for(idp, n)))
    assert good.status_code == 303
    assert len(jwks_fetches) == 1  # the first login fetched the key set
    age_jwks(connection.id, 120)

    unknown = "kid-nobody-has"
    response = forged_login(lambda n: signed(idp, claims_for(idp, n), kid=unknown))
    assert_refused(response, "unknown_signing_key")
    assert len(jwks_fetches) == 2  # one forced refetch, still unknown

    # Within 60 s of that refetch, another unknown kid does not reach the IdP again.
    response = forged_login(lambda n: signed(idp, claims_for(idp, n), kid=unknown + "2"))
    assert_refused(response, "unknown_signing_key")
    assert len(jwks_fetches) == 2
    assert session_count() == 1


def test_rotated_key_is_found_by_one_refetch(
    idp: OidcIdp,
    connection: Connection,
    forged_login: Callable[[Callable[[str], str]], TestResponse],
    jwks_fetches: list[str],
) -> None:
    # The cache only knows the EC key; the IdP now signs with its RSA key.
    age_jwks(connection.id, 120, keys=[idp.public_jwks()["keys"][1]])
    assert forged_login(lambda n: signed(idp, claims_for(idp, n))).status_code == 303
    assert len(jwks_fetches) == 1


# --- settings ---


def test_discovery_requires_exact_issuer(app: Flask, idp: OidcIdp) -> None:
    with pytest.raises(oidc.DiscoveryError) as refused:
        oidc.discover(idp.issuer + "/")
    assert refused.value.code == "issuer_mismatch"


def test_plain_http_refused_off_loopback_or_without_the_setting(
    app: Flask, idp: OidcIdp, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(oidc.DiscoveryError) as refused:
        oidc.discover("http://idp.example")
    assert refused.value.code == "insecure_idp_url"
    settings = app.extensions["gatehouse.settings"]
    monkeypatch.setitem(
        app.extensions,
        "gatehouse.settings",
        dataclasses.replace(settings, allow_http_loopback=False),
    )
    with pytest.raises(oidc.DiscoveryError) as refused:
        oidc.discover(idp.issuer)
    assert refused.value.code == "insecure_idp_url"


def test_entra_preset_maps_oid_and_fallback_email() -> None:
    claims = {
        "sub": "pairwise-sub",
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": "tenant-1",
        "preferred_username": "carol@contoso.example",
        "name": "Carol",
        "groups": ["9f1c0d2e-group-object-id"],
    }
    entra = Connection(settings={"claims": oidc.PRESETS["entra"], "tenant_id": "tenant-1"})
    assertion = oidc.assertion_from_claims(entra, claims)
    assert assertion.subject == "pairwise-sub"
    assert assertion.external_id == claims["oid"]
    assert assertion.email == "carol@contoso.example"
    assert list(assertion.groups) == claims["groups"]
    other_tenant = Connection(settings={"claims": oidc.PRESETS["entra"], "tenant_id": "tenant-2"})
    with pytest.raises(oidc.LoginRefused):
        oidc.assertion_from_claims(other_tenant, claims)


def test_unverified_email_is_not_used() -> None:
    generic = Connection(settings={"claims": oidc.PRESETS["generic"]})
    claims = {"sub": "s", "email": "x@example.com", "email_verified": False}
    assert oidc.assertion_from_claims(generic, claims).email is None


# --- test sign-ins ---


def test_a_test_sign_in_checks_the_answer_and_signs_nobody_in(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    org = db.session.get(Organization, connection.org_id)
    connections.update_connection(system_actor(), org, connection, enabled=False)  # not on yet
    test, url = testing.start_test(system_actor(), org, connection, lambda t: f"/results/{t}")
    db.session.commit()
    assert url_params(url)["state"] == test.request_id
    answered = callback(client, idp_login(idp, url))
    assert answered.status_code == 303 and answered.headers["Location"] == f"/results/{test.id}"
    assert session_count() == 0
    db.session.refresh(test)
    checks = {c["key"]: c for c in test.checks}
    assert test.passed is True, checks
    assert checks["email"]["received"] == "alice@example.com"
    assert checks["audience"]["received"] == CLIENT_ID
    assert checks["clock"]["passed"] and checks["clock"]["received"].endswith("seconds")
    assert "email" in checks["attributes"]["received"]
    kept = json.dumps(test.checks)
    assert CLIENT_SECRET not in kept and "eyJ" not in kept  # no token, no secret
    assert test.data == {}  # the nonce and verifier are gone with their one use
    assert testing.has_passed_test(connection)
    # The same answer again is a login's answer now: the connection is off, refused.
    assert callback(client, idp_login(idp, url)).status_code >= 400


def test_a_test_sign_in_names_a_failed_exchange(
    client: FlaskClient, idp: OidcIdp, connection: Connection
) -> None:
    org = db.session.get(Organization, connection.org_id)
    connections.update_connection(system_actor(), org, connection, secret="not-the-secret")
    test, url = testing.start_test(system_actor(), org, connection, lambda t: f"/results/{t}")
    db.session.commit()
    callback(client, idp_login(idp, url))
    db.session.refresh(test)
    failed = [c["key"] for c in test.checks if c["passed"] is False]
    assert test.passed is False and failed == ["exchange"]
    assert test.checks[-1]["received"] == "token_exchange_failed"
