"""SAML routes of the SSO blueprint: SP metadata, login (AuthnRequest), ACS."""

from __future__ import annotations

import secrets
from datetime import datetime
from html import escape
from urllib.parse import urlsplit

from flask import Response, redirect, request
from sqlalchemy import delete

from idp.connections.mfa import requested_authn_contexts
from idp.connections.models import Connection, ConnectionKind
from idp.connections.services import connection_secret, load_connection
from idp.db import db, dialect_insert, utcnow
from idp.errors import NotFound
from idp.login.cookies import login_browser_token, presented_login_token
from idp.login.redirects import safe_return_to
from idp.people.signin import LoginRefused
from idp.sso import saml, testing
from idp.sso.models import SeenAssertion
from idp.sso.states import begin_login, finish_login
from idp.sso.views import bp, complete_sign_in

PURGE_ONE_IN = 50  # ACS posts per purge of expired replay-cache rows, on average


def _saml_connection(connection_id: str) -> Connection:
    connection = load_connection(connection_id)
    if connection.kind is not ConnectionKind.SAML:
        raise NotFound("connection_not_found", "No such connection")
    return connection


@bp.get("/saml/<connection_id>/metadata")
def saml_metadata(connection_id: str) -> Response:
    connection = _saml_connection(connection_id)
    xml = saml.sp_metadata(connection, connection_secret(connection))
    response = Response(xml, content_type="application/samlmetadata+xml; charset=utf-8")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/saml/<connection_id>/login")
def saml_login(connection_id: str) -> Response:
    connection = _saml_connection(connection_id)
    if not connection.enabled:
        raise LoginRefused("connection_disabled", "This sign-in connection is not available")
    key = connection_secret(connection)
    return_to = safe_return_to(request.args.get("next"))
    contexts = requested_authn_contexts(connection)
    if connection.settings.get("authn_request_binding") == "post":
        request_id, action, saml_request = saml.post_login_form(connection, key, contexts)
        response = Response(_auto_post(action, {"SAMLRequest": saml_request}))
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'unsafe-inline'; form-action " + _origin(action)
        )
    else:
        request_id, url = saml.redirect_login_url(connection, key, contexts)
        response = redirect(url, code=302)
    begin_login(
        connection,
        handle=request_id,
        browser=login_browser_token(),
        data={"request_id": request_id},
        return_to=return_to,
    )
    return response


@bp.post("/saml/<connection_id>/acs")
def saml_acs(connection_id: str) -> Response:
    connection = _saml_connection(connection_id)
    posted = request.form.get("SAMLResponse", "")
    test = testing.pending_test(connection, posted)
    if test is not None:  # a test sign-in's answer: checked and shown, nobody signed in
        testing.finish_test(
            connection, test, posted, saml.acs_request_data(connection, {"SAMLResponse": ""})
        )
        return redirect(test.return_to, code=303)
    assertion, in_response_to, assertion_id, not_on_or_after = saml.validate_response(
        connection,
        request.form.get("SAMLResponse", ""),
        saml.acs_request_data(connection, {"SAMLResponse": ""}),
    )
    _remember_assertion(connection, assertion_id, not_on_or_after)
    if in_response_to is not None:
        # SAML profiles §4.1.4.3: the response answers a request this browser made, once.
        state = finish_login(connection, handle=in_response_to, browser=presented_login_token())
        return_to = state.return_to
    elif connection.settings.get("allow_idp_initiated", False):
        return_to = safe_return_to(request.form.get("RelayState"))
    else:
        raise LoginRefused(
            "unsolicited_response", "Sign-in must start here, not at the identity provider"
        )
    return complete_sign_in(connection, assertion, return_to, unsolicited=in_response_to is None)


def _remember_assertion(connection: Connection, assertion_id: str, until: datetime) -> None:
    """The replay cache (SAML profiles §4.1.4.5): one use per assertion id, in the database
    so that every process sees it; a concurrent twin waits on the key and then finds it."""
    inserted = db.session.scalar(
        dialect_insert(SeenAssertion)
        .values(connection_id=connection.id, assertion_id=assertion_id, not_on_or_after=until)
        .on_conflict_do_nothing()
        .returning(SeenAssertion.assertion_id)
    )
    if inserted is None:
        raise LoginRefused("assertion_replayed", "This sign-in response was already used")
    if secrets.randbelow(PURGE_ONE_IN) == 0:
        purge_seen_assertions()


def purge_seen_assertions() -> int:
    """Forget assertions that can no longer be accepted anyway (housekeeping)."""
    return db.session.execute(
        delete(SeenAssertion).where(SeenAssertion.not_on_or_after <= utcnow())
    ).rowcount


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _auto_post(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )
    return (
        "<!doctype html><title>Signing in…</title>"
        '<body onload="document.forms[0].submit()">'
        f'<form method="post" action="{escape(action)}">{inputs}'
        "<noscript><button>Continue</button></noscript></form></body>"
    )
