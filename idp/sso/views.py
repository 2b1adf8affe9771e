"""The SSO blueprint's plumbing: one error page, commit once, finish a sign-in.

The protocol routes live in ``views_oidc`` and ``views_saml`` and register on ``bp``.
Every refusal is a 4xx page naming a stable code (also in ``X-Gatehouse-Error``); nothing
from the IdP's response is echoed back, and no session is created.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from html import escape

from flask import Blueprint, Response, g, redirect
from sqlalchemy.exc import IntegrityError

from idp.config import current_settings
from idp.connections.models import Connection
from idp.db import db, finish_request
from idp.errors import GatehouseError
from idp.login.cookies import bind_login_cookie, set_session_cookie
from idp.login.redirects import safe_return_to
from idp.sso.signin import IdpAssertion, sign_in

bp = Blueprint("sso", __name__, url_prefix="/sso")
log = logging.getLogger(__name__)


def error_page(status: int, code: str, message: str) -> Response:
    body = (
        "<!doctype html><title>Sign-in failed</title>"
        f'<h1>Sign-in failed</h1><p id="error" data-code="{escape(code)}">{escape(message)}</p>'
        '<p><a href="/login">Try again</a></p>'
    )
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.headers["X-Gatehouse-Error"] = code
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(GatehouseError)
def refused(exc: GatehouseError) -> Response:
    db.session.rollback()
    status = exc.status if exc.status < 500 else 500
    message = exc.message if status < 500 else "Something went wrong on our side"
    # The code only: a message could quote what the IdP sent.
    log.info("sso refused: %s (request %s)", exc.code, g.get("request_id"))
    return error_page(status, exc.code, message)


@bp.errorhandler(IntegrityError)
def conflict(_exc: IntegrityError) -> Response:
    db.session.rollback()
    return error_page(409, "conflict", "A concurrent sign-in conflicts with this one; try again")


@bp.after_request
def commit(response: Response) -> Response:
    response = bind_login_cookie(response)
    response.headers.setdefault("Cache-Control", "no-store")
    return finish_request(
        response, lambda: error_page(409, "conflict", "A concurrent change conflicts; try again")
    )


def session_lifetime() -> timedelta:
    return timedelta(hours=current_settings().session_hours)


def complete_sign_in(
    connection: Connection, assertion: IdpAssertion, return_to: str, *, unsolicited: bool = False
) -> Response:
    """Sign the person in (``idp.sso.signin``), set the session cookie, send them on."""
    lifetime = session_lifetime()
    try:
        with db.session.begin_nested():  # a refusal undoes the sign-in's own writes only
            _session, token = sign_in(
                connection,
                assertion,
                lifetime=lifetime,
                request_id=g.get("request_id"),
                unsolicited=unsolicited,
            )
    except GatehouseError:
        # A refused sign-in still uses up what it presented (the login state, the SAML
        # assertion id in the replay cache), so that it cannot be replayed once the reason
        # is gone (a policy loosened, a member reactivated): the one commit of a refusal.
        db.session.commit()
        raise
    response = redirect(safe_return_to(return_to), code=303)
    set_session_cookie(response, token, lifetime)
    return response
