"""OIDC routes of the SSO blueprint: start a login at the org's IdP, and take its answer."""

from __future__ import annotations

import hmac
import logging
import re
import secrets

from flask import Response, redirect, request

from idp.connections.mfa import requested_acr_values
from idp.connections.models import Connection, ConnectionKind
from idp.connections.services import load_connection
from idp.crypto import DecryptionError, decrypt_secret, encrypt_secret, token_digest
from idp.db import db
from idp.errors import NotFound
from idp.login.cookies import login_browser_token, presented_login_token
from idp.login.redirects import safe_return_to
from idp.people.signin import LoginRefused
from idp.sso import oidc, testing
from idp.sso.states import begin_login, finish_login
from idp.sso.views import bp, complete_sign_in

log = logging.getLogger(__name__)

MAX_PARAM = 2048
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


def _verifier_context(state: str) -> str:
    """Binds the encrypted PKCE verifier to the login it belongs to."""
    return f"login_states.verifier:{token_digest(state)}"


def _oidc_connection(connection_id: str, *, enabled: bool = True) -> Connection:
    connection = load_connection(connection_id)
    if connection.kind is not ConnectionKind.OIDC:
        raise NotFound("connection_not_found", "No such connection")
    if enabled and not connection.enabled:
        raise LoginRefused("connection_disabled", "This sign-in connection is not available")
    return connection


@bp.get("/oidc/<connection_id>/login")
def oidc_login(connection_id: str) -> Response:
    """Begin a login: state, nonce and PKCE verifier, then off to the IdP."""
    connection = _oidc_connection(connection_id)
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters (RFC 7636 §4.1: 43-128)
    begin_login(
        connection,
        handle=state,
        browser=login_browser_token(),
        data={"nonce": nonce, "verifier": encrypt_secret(verifier, _verifier_context(state))},
        return_to=safe_return_to(request.args.get("next")),
    )
    url = oidc.authorization_url(
        connection, state, nonce, verifier, requested_acr_values(connection)
    )
    return redirect(url, code=302)


def _check_iss(connection: Connection, iss: str | None) -> None:
    """RFC 9207 §2.4: the authorization response's ``iss`` names our IdP (mix-up defence)."""
    expected = connection.settings["issuer"]
    if iss is None:
        if connection.settings.get("authorization_response_iss_parameter_supported") is True:
            raise LoginRefused("invalid_iss", "The sign-in response does not name its issuer")
        return
    if not hmac.compare_digest(iss.encode(), expected.encode()):
        raise LoginRefused("invalid_iss", "The sign-in response comes from another issuer")


@bp.get("/oidc/<connection_id>/callback")
def oidc_callback(connection_id: str) -> Response:
    """The authorization response (OpenID Connect Core §3.1.2.5): check, exchange, sign in."""
    args = request.args
    connection = _oidc_connection(connection_id, enabled=False)
    test = testing.pending_oidc_test(connection, args.get("state", ""))
    if test is not None:  # a test sign-in's answer: checked and shown, nobody signed in
        error = args.get("error")
        shown_error = (
            None if error is None else (error if _ERROR_CODE.fullmatch(error) else "unknown")
        )
        testing.finish_oidc_test(connection, test, args.get("code", "")[:MAX_PARAM], shown_error)
        return redirect(test.return_to, code=303)
    if not connection.enabled:
        raise LoginRefused("connection_disabled", "This sign-in connection is not available")
    if "error" in args:
        error = args["error"] if _ERROR_CODE.fullmatch(args["error"]) else "unknown"
        log.info("oidc: %s answered with error %s", connection.id, error)
        raise LoginRefused("idp_error", "The identity provider did not sign you in")
    handle, code = args.get("state", ""), args.get("code", "")
    if not handle or len(handle) > MAX_PARAM:
        raise LoginRefused(
            "invalid_state", "This sign-in response does not match a login begun here"
        )
    if not code or len(code) > MAX_PARAM:
        raise LoginRefused("invalid_request", "The sign-in response carries no code")
    _check_iss(connection, args.get("iss"))
    state = finish_login(connection, handle=handle, browser=presented_login_token())
    try:
        nonce = str(state.data["nonce"])
        verifier = decrypt_secret(state.data["verifier"], _verifier_context(handle)).decode()
    except (KeyError, TypeError, DecryptionError):
        raise LoginRefused(
            "invalid_state", "This sign-in response does not match a login begun here"
        ) from None
    try:
        assertion = oidc.exchange_and_verify(connection, code, verifier, nonce)
    except LoginRefused:
        # Keep what a refusal should not undo: the login state stays used, and a JWKS
        # refetch stays recorded, so its rate limit holds. Nothing else was written yet.
        db.session.commit()
        raise
    return complete_sign_in(connection, assertion, state.return_to)
