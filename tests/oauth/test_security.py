"""The provider's security rules: exact redirect URIs, PKCE S256, single-use codes, refresh
rotation with reuse detection, key retirement, org binding, RFC 6749 §5.2 errors, no
secrets in logs."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.apps.models import OAuthToken, SigningKey
from idp.db import db, utcnow
from idp.orgs.roles import Role
from tests.builders import make_member
from tests.conftest import ISSUER
from tests.forms import form_post
from tests.oauth.conftest import (
    REDIRECT_URI,
    World,
    authorize,
    exchange,
    get_code,
    introspect,
    make_app,
    params,
    pkce,
    refresh,
    sign_in,
    tokens_for,
    userinfo,
)

# --- redirect URIs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/callback/",
        "https://app.example/callback?x=1",
        "https://app.example/callbackx",
        "https://evil.example/callback",
        "http://app.example/callback",
        "https://APP.example/callback",
    ],
)
def test_redirect_uri_must_match_exactly_and_mismatch_is_never_redirected(
    browser: FlaskClient, world: World, uri: str
) -> None:
    sign_in(browser, world.member)
    response = authorize(browser, world.app, redirect_uri=uri)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "text/html" in response.content_type


def test_unknown_client_gets_a_page_not_a_redirect(browser: FlaskClient, world: World) -> None:
    sign_in(browser, world.member)
    response = authorize(browser, world.app, client_id="nope")
    assert response.status_code == 400 and "Location" not in response.headers


def test_authorization_response_carries_iss(browser: FlaskClient, world: World) -> None:
    sign_in(browser, world.member)
    response = authorize(browser, world.app)
    got = params(response.headers["Location"])
    assert got["iss"] == ISSUER and got["state"] == "st-1"


def test_no_implicit_flow(browser: FlaskClient, world: World) -> None:
    sign_in(browser, world.member)
    response = authorize(browser, world.app, response_type="token")
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        got = params(response.headers["Location"])
        assert got["error"] in ("unsupported_response_type", "unauthorized_client")
        assert "access_token" not in response.headers["Location"]


# --- PKCE ----------------------------------------------------------------------------------


def test_public_clients_must_use_pkce(browser: FlaskClient, world: World) -> None:
    public = make_app(public=True)
    sign_in(browser, world.member)
    response = authorize(browser, public)
    assert params(response.headers["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize("method", ["plain", None])
def test_plain_pkce_is_refused(browser: FlaskClient, world: World, method: str | None) -> None:
    public = make_app(public=True)
    sign_in(browser, world.member)
    verifier, _ = pkce()
    extra = {"code_challenge": verifier}
    if method:
        extra["code_challenge_method"] = method
    response = authorize(browser, public, **extra)
    assert params(response.headers["Location"])["error"] == "invalid_request"


def test_public_client_without_verifier_is_refused(browser: FlaskClient, world: World) -> None:
    public = make_app(public=True)
    sign_in(browser, world.member)
    _verifier, challenge = pkce()
    code = get_code(browser, public, code_challenge=challenge, code_challenge_method="S256")
    assert exchange(browser, public, code).json["error"] == "invalid_request"  # no verifier


def test_public_client_with_s256_and_verifier(browser: FlaskClient, world: World) -> None:
    public = make_app(public=True)
    sign_in(browser, world.member)
    verifier, challenge = pkce()
    code = get_code(browser, public, code_challenge=challenge, code_challenge_method="S256")
    wrong = exchange(browser, public, code, verifier=pkce()[0])
    assert wrong.status_code == 400 and wrong.json["error"] == "invalid_grant"
    code = get_code(browser, public, code_challenge=challenge, code_challenge_method="S256")
    response = exchange(browser, public, code, verifier=verifier)
    assert response.status_code == 200, response.text
    assert response.json["access_token"] and response.json["refresh_token"]


# --- codes -----------------------------------------------------------------------------------


def test_a_code_works_once_and_its_replay_revokes_what_it_issued(
    browser: FlaskClient, world: World
) -> None:
    sign_in(browser, world.member)
    code = get_code(browser, world.app)
    first = exchange(browser, world.app, code)
    assert first.status_code == 200
    assert introspect(browser, world.app, first.json["access_token"])["active"] is True

    again = exchange(browser, world.app, code)

    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    assert introspect(browser, world.app, first.json["access_token"]) == {"active": False}
    assert refresh(browser, world.app, first.json["refresh_token"]).status_code == 400


def test_code_is_bound_to_its_client_and_redirect_uri(browser: FlaskClient, world: World) -> None:
    other = make_app()
    sign_in(browser, world.member)
    code = get_code(browser, world.app)
    assert exchange(browser, other, code).json["error"] == "invalid_grant"
    code = get_code(browser, world.app)
    response = browser.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI + "x"},
        headers=world.app.basic(),
    )
    assert response.json["error"] == "invalid_grant"


# --- refresh tokens ----------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    rotated = refresh(browser, world.app, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert rotated.json["refresh_token"] != tokens["refresh_token"]
    assert introspect(browser, world.app, rotated.json["access_token"])["active"] is True

    reuse = refresh(browser, world.app, tokens["refresh_token"])

    assert reuse.status_code == 400 and reuse.json["error"] == "invalid_grant"
    assert introspect(browser, world.app, rotated.json["access_token"]) == {"active": False}
    assert refresh(browser, world.app, rotated.json["refresh_token"]).status_code == 400


def test_token_endpoint_errors_follow_rfc6749(browser: FlaskClient, world: World) -> None:
    cases = [
        ({"grant_type": "password", "username": "a", "password": "b"}, world.app.basic(), 400),
        ({"grant_type": "implicit"}, world.app.basic(), 400),
        ({"grant_type": "authorization_code", "code": "x"}, {}, 401),
        ({"grant_type": "refresh_token", "refresh_token": "ghr_nope"}, world.app.basic(), 400),
        ({"grant_type": "authorization_code"}, world.app.basic(), 400),
    ]
    codes = []
    for form, headers, status in cases:
        response = browser.post("/oauth/token", data=form, headers=headers)
        assert response.status_code == status, response.text
        assert response.is_json and "error" in response.json
        assert response.headers["Cache-Control"] == "no-store"
        codes.append(response.json["error"])
    assert codes == [
        "unsupported_grant_type",
        "unsupported_grant_type",
        "invalid_client",
        "invalid_grant",
        "invalid_request",
    ]


def test_wrong_client_secret_is_invalid_client(browser: FlaskClient, world: World) -> None:
    world.app.secret = "ghs_wrong"
    response = browser.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "ghr_x"},
        headers=world.app.basic(),
    )
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


# --- keys ---------------------------------------------------------------------------------


def test_tokens_of_a_long_retired_key_are_refused(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    assert userinfo(browser, tokens["access_token"]).status_code == 200
    for key in db.session.scalars(select(SigningKey)):
        key.retired_at = utcnow() - timedelta(days=1)
    db.session.commit()
    assert userinfo(browser, tokens["access_token"]).status_code == 401
    assert introspect(browser, world.app, tokens["access_token"]) == {"active": False}
    kids = {k["kid"] for k in browser.get("/jwks").json["keys"]}
    assert not kids & {k.kid for k in db.session.scalars(select(SigningKey)) if k.retired_at}


def test_rotation_keeps_the_old_key_published(browser: FlaskClient, world: World, runner) -> None:  # type: ignore[no-untyped-def]
    tokens = tokens_for(browser, world)
    before = {k["kid"] for k in browser.get("/jwks").json["keys"]}
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    after = {k["kid"] for k in browser.get("/jwks").json["keys"]}
    assert before < after and len(after) == len(before) + 2
    assert userinfo(browser, tokens["access_token"]).status_code == 200
    again = tokens_for(browser, world)
    assert again["access_token"].split(".")[0] != tokens["access_token"].split(".")[0]


def test_private_keys_are_stored_encrypted(browser: FlaskClient, world: World) -> None:
    browser.get("/jwks")
    for key in db.session.scalars(select(SigningKey)):
        assert key.private_key.startswith("v1.") and "PRIVATE" not in key.private_key


# --- orgs ----------------------------------------------------------------------------------


def test_token_is_bound_to_its_org(browser: FlaskClient, world: World) -> None:
    make_member(world.other, "ann@acme.example", Role.MEMBER)
    tokens = tokens_for(browser, world, organization="acme")
    assert introspect(browser, world.app, tokens["access_token"])["org"]["slug"] == "acme"
    assert userinfo(browser, tokens["access_token"]).json["org"]["slug"] == "acme"
    response = browser.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "organization": "beta",
        },
        headers=world.app.basic(),
    )
    assert response.status_code == 200
    assert introspect(browser, world.app, response.json["access_token"])["org"]["slug"] == "acme"


def test_refresh_refused_after_membership_suspended(browser: FlaskClient, world: World) -> None:
    from idp.actors import system_actor
    from idp.orgs.models import MembershipStatus
    from idp.orgs.services import set_member_status

    tokens = tokens_for(browser, world)
    set_member_status(system_actor(), world.org, world.member.user_id, MembershipStatus.SUSPENDED)
    db.session.commit()
    assert refresh(browser, world.app, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert introspect(browser, world.app, tokens["access_token"]) == {"active": False}
    assert userinfo(browser, tokens["access_token"]).status_code == 401
    rows = db.session.scalars(select(OAuthToken)).all()
    assert rows and all(r.revoked_reason == "member_suspended" for r in rows)


# --- revocation -------------------------------------------------------------------------------


def test_revoking_a_refresh_token_ends_its_family(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    response = browser.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"]}, headers=world.app.basic()
    )
    assert response.status_code == 200
    assert introspect(browser, world.app, tokens["access_token"]) == {"active": False}
    assert refresh(browser, world.app, tokens["refresh_token"]).status_code == 400


def test_revoking_an_access_token(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    response = browser.post(
        "/oauth/revoke", data={"token": tokens["access_token"]}, headers=world.app.basic()
    )
    assert response.status_code == 200
    assert userinfo(browser, tokens["access_token"]).status_code == 401


def test_introspection_needs_a_confidential_client(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    public = make_app(public=True)
    response = browser.post(
        "/oauth/introspect", data={"token": tokens["access_token"], "client_id": public.client_id}
    )
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_session_revoked_makes_tokens_inactive(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    assert form_post(browser, "/logout").status_code == 303
    assert introspect(browser, world.app, tokens["access_token"]) == {"active": False}
    assert refresh(browser, world.app, tokens["refresh_token"]).status_code == 400


# --- logs ------------------------------------------------------------------------------------


def test_no_codes_tokens_or_secrets_in_logs(
    browser: FlaskClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sign_in(browser, world.member)
    code = get_code(browser, world.app)
    tokens = exchange(browser, world.app, code).json
    rotated = refresh(browser, world.app, tokens["refresh_token"]).json
    exchange(browser, world.app, code)  # a replay, refused
    introspect(browser, world.app, rotated["access_token"])
    userinfo(browser, rotated["access_token"])
    secrets = [
        code,
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
        rotated["refresh_token"],
        world.app.secret,
    ]
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert caplog.records, "nothing was logged at all: the test would prove nothing"
    for secret in secrets:
        assert secret and secret not in text
        assert secret[:16] not in text


def test_expired_access_token_is_refused(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    for row in db.session.scalars(select(OAuthToken)):
        row.access_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert introspect(browser, world.app, tokens["access_token"]) == {"active": False}
    assert userinfo(browser, tokens["access_token"]).status_code == 401


def test_es256_id_tokens_for_clients_that_ask(browser: FlaskClient, world: World) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    world.app = make_app(id_token_alg="ES256")
    tokens = tokens_for(browser, world)
    keys = KeySet.import_key_set(browser.get("/jwks").json)
    decoded = jwt.decode(tokens["id_token"], keys, algorithms=["ES256"])
    assert decoded.header["alg"] == "ES256" and decoded.claims["org"]["slug"] == "acme"
