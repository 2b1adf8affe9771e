"""The SSO blueprint's plumbing: one error page, commit once, finish a sign-in.

The protocol routes live in ``views_oidc`` and ``views_saml`` and register on ``bp``.
Every refusal is a 4xx page naming a stable code (also in ``X-Gatehouse-Error``); nothing
from the IdP's response is echoed back, and no session is created.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from html import escape
from urllib.parse import quote

from flask import Blueprint, Response, g, redirect, request
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import IntegrityError

from idp import telemetry
from idp.config import current_settings
from idp.connections.models import Connection
from idp.connections.services import load_connection
from idp.db import db, declare_workspace_wide, finish_request
from idp.errors import GatehouseError
from idp.login.cookies import (
    bind_login_cookie,
    login_browser_token,
    presented_login_token,
    set_session_cookie,
)
from idp.login.redirects import safe_return_to
from idp.mail import Mail, queue_mail
from idp.people.services import EmailProofRequired
from idp.people.signin import IdpAssertion, LoginRefused, sign_in
from idp.ratelimit import Credential, guarded_view
from idp.sessions.services import consume_email_link, issue_email_link
from idp.users.models import normalize_email

bp = Blueprint("sso", __name__, url_prefix="/sso")
log = logging.getLogger(__name__)
# The routes that are a sign-in (a refusal there is a refused sign-in), and its method.
_SIGN_IN_METHODS = {
    "sso.oidc_login": "oidc",
    "sso.oidc_callback": "oidc",
    "sso.saml_login": "saml",
    "sso.saml_acs": "saml",
    "sso.confirm_address": "email_link",  # the link that finishes an SSO sign-in
}


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
    method = _SIGN_IN_METHODS.get(request.endpoint or "")
    if method is not None:
        telemetry.sign_in_refused(method, exc.code, policy=exc.details.get("key"))
    else:
        log.info("sso refused: %s", exc.code)
    return error_page(status, exc.code, message)


@bp.errorhandler(IntegrityError)
def conflict(_exc: IntegrityError) -> Response:
    db.session.rollback()
    return error_page(409, "conflict", "A concurrent sign-in conflicts with this one; try again")


@bp.before_request
def start_workspace_wide() -> None:
    """Row-level security: a sign-in decides who a person is across orgs (a link to another
    org's member needs that org's verified domain or proof), so it is workspace-wide."""
    declare_workspace_wide()


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
    connection: Connection,
    assertion: IdpAssertion,
    return_to: str,
    *,
    unsolicited: bool = False,
    address_proven: bool = False,
) -> Response:
    """Sign the person in (``idp.people.signin``), set the session cookie, send them on; or,
    when the org knows the asserted address and its IdP alone does not prove it, mail the
    address a link that finishes this sign-in in this browser."""
    lifetime = session_lifetime()
    try:
        with db.session.begin_nested():  # a refusal undoes the sign-in's own writes only
            _session, token = sign_in(
                connection,
                assertion,
                lifetime=lifetime,
                request_id=g.get("request_id"),
                unsolicited=unsolicited,
                address_proven=address_proven,
            )
    except EmailProofRequired as needed:
        return _ask_for_address(connection, assertion, return_to, unsolicited, needed.email)
    except GatehouseError:
        # A refused sign-in still uses up what it presented (the login state, the SAML
        # assertion id in the replay cache), so that it cannot be replayed once the reason
        # is gone (a policy loosened, a member reactivated): the one commit of a refusal.
        db.session.commit()
        raise
    response = redirect(safe_return_to(return_to), code=303)
    set_session_cookie(response, token, lifetime)
    return response


_CONFIRM_SENT = """<!doctype html><title>Confirm your email address</title>
<h1>Confirm your email address</h1>
<p id="pending" data-code="email_proof_required">This organization already knows your email
address. To link this sign-in to it, open the link we just sent to that address, in this
browser, within 10 minutes.</p>"""
_CONFIRM_PAGE = """<!doctype html><title>Confirm your email address</title>
<h1>Confirm your email address</h1>
<form method="post"><input type="hidden" name="csrf_token" value="{csrf_token}">
<p>Finish signing in with this address?</p>
<button>Confirm and sign in</button></form>"""


def _ask_for_address(
    connection: Connection,
    assertion: IdpAssertion,
    return_to: str,
    unsolicited: bool,
    email: str,
) -> Response:
    """Keep the sign-in waiting and mail its address a link that finishes it."""
    pending = {
        "connection_id": connection.id,
        "return_to": return_to,
        "unsolicited": unsolicited,
        "assertion": assertion.as_dict(),
    }
    _link, token = issue_email_link(
        email, org_id=connection.org_id, pending_sign_in=pending, browser=login_browser_token()
    )
    url = f"{current_settings().issuer}/sso/confirm?token={quote(token)}"
    queue_mail(
        db.session(),
        Mail(
            to=email,
            subject="Confirm your email address to sign in",
            body=f"Finish signing in here (once, within 10 minutes, in the browser you began "
            f"in):\n{url}\n\nIf you did not just sign in, ignore this message.\n",
        ),
    )
    db.session.commit()  # the used login state and the link, though no session is started
    response = Response(_CONFIRM_SENT, content_type="text/html; charset=utf-8")
    response.headers["X-Gatehouse-Pending"] = "email_proof_required"
    return response


@bp.get("/confirm")
def confirm_page() -> Response:
    """Ask before finishing: mail scanners that fetch links must not use them up."""
    page = _CONFIRM_PAGE.format(csrf_token=escape(generate_csrf()))
    return Response(page, content_type="text/html; charset=utf-8")


@bp.post("/confirm")
@guarded_view(Credential.EMAIL_LINK, "token", "invalid_link")
def confirm_address() -> Response:
    """The address is proven by its link, in the browser that signed in at the IdP: finish
    that sign-in as the member the address names."""
    link = consume_email_link(
        request.args.get("token", ""), pending=True, browser=presented_login_token()
    )
    if link is None or link.pending_sign_in is None:
        raise LoginRefused(
            "invalid_link", "This link is unknown, used, expired, or for another browser"
        )
    pending = link.pending_sign_in
    connection = load_connection(pending["connection_id"])
    assertion = IdpAssertion.from_dict(pending["assertion"])
    if normalize_email(assertion.email or "") != normalize_email(link.email or ""):
        raise LoginRefused("invalid_link", "This link is for another address")
    return complete_sign_in(
        connection,
        assertion,
        pending["return_to"],
        unsolicited=bool(pending.get("unsolicited")),
        address_proven=True,
    )
