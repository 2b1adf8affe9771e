"""The browser's cookies: the session and the login binding, each signed and HttpOnly.

The session cookie carries only the session's random token (stored hashed). The login cookie
binds a login in flight to the browser that began it: the state a response names must have
been created by a browser holding the same cookie.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Response, current_app, g, request
from itsdangerous import BadSignature, Signer
from werkzeug.http import dump_cookie

from idp.config import current_settings

SESSION_COOKIE = "gatehouse_session"
# On an app's own host (forward-auth's callback): the session's id and its proof for the host.
FORWARD_COOKIE = "gatehouse_forward"
# On an app's own host, from the refusal to its callback: binds the sign-in to this browser.
STATE_COOKIE = "gatehouse_state"
STATE_COOKIE_AGE = timedelta(minutes=15)
LOGIN_COOKIE = "gatehouse_login"
LOGIN_COOKIE_AGE = timedelta(minutes=15)


def _signer(purpose: str) -> Signer:
    return Signer(current_app.config["SECRET_KEY"], salt=f"gatehouse.cookie.{purpose}")


def _is_https() -> bool:
    return current_settings().issuer.startswith("https://")


def _read(name: str) -> str | None:
    raw = request.cookies.get(name)
    if not raw:
        return None
    try:
        return _signer(name).unsign(raw).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


def session_token() -> str | None:
    """The session token of this browser, if its cookie is present and signed by us."""
    return _read(SESSION_COOKIE)


def signed_session_cookie(token: str) -> str:
    """The session cookie's value for ``token``."""
    return _signer(SESSION_COOKIE).sign(token).decode()


def set_session_cookie(response: Response, token: str, max_age: timedelta) -> None:
    """The session cookie: the issuer's host only, or ``COOKIE_DOMAIN`` and every host in it."""
    response.set_cookie(
        SESSION_COOKIE,
        signed_session_cookie(token),
        max_age=int(max_age.total_seconds()),
        httponly=True,
        secure=_is_https(),
        samesite="Lax",
        path="/",
        domain=current_settings().cookie_domain or None,
    )


def clear_session_cookie(response: Response) -> None:
    """Clear the session cookie where it was set; with ``COOKIE_DOMAIN``, a host-only one
    from before the setting too."""
    domain = current_settings().cookie_domain
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=_is_https())
    if domain:
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, secure=_is_https(), domain=domain
        )


def app_credential() -> str | None:
    """The app-host credential this browser sent (``FORWARD_COOKIE``), if signed by us."""
    return _read(FORWARD_COOKIE)


def set_app_cookie(response: Response, credential: str, max_age: timedelta, secure: bool) -> None:
    """The app-host cookie set by forward-auth's callback: that host only (no Domain)."""
    response.set_cookie(
        FORWARD_COOKIE,
        _signer(FORWARD_COOKIE).sign(credential).decode(),
        max_age=max(int(max_age.total_seconds()), 0),
        httponly=True,
        secure=secure,
        samesite="Lax",
        path="/",
    )


def state_cookie_header(state: str, secure: bool, path: str) -> str:
    """The ``Set-Cookie`` value that a proxy passes on with a refusal on an app's host: the
    state of the sign-in it starts, for that host's callback only (OAuth's ``state``,
    RFC 6749 §10.12: a code from another browser's sign-in is refused there)."""
    return dump_cookie(
        STATE_COOKIE,
        state,
        max_age=int(STATE_COOKIE_AGE.total_seconds()),
        path=path,
        secure=secure,
        httponly=True,
        samesite="Lax",
    )


def presented_state() -> str:
    """The sign-in state this browser holds on the app's host (at the callback)."""
    return request.cookies.get(STATE_COOKIE, "")


def clear_state_cookie(response: Response, path: str, secure: bool) -> None:
    response.delete_cookie(STATE_COOKIE, path=path, httponly=True, secure=secure)


def login_browser_token() -> str:
    """This browser's login-binding token: the cookie's, or a new one set on the response
    (``bind_login_cookie``) when the browser has none yet."""
    token = _read(LOGIN_COOKIE)
    if token is None:
        token = g.get("new_login_token") or secrets.token_urlsafe(32)
        g.new_login_token = token
    return token


def presented_login_token() -> str | None:
    """The login-binding token the browser sent back (at the callback or ACS)."""
    return _read(LOGIN_COOKIE)


def bind_login_cookie(response: Response) -> Response:
    """Set the login cookie if ``login_browser_token`` made a new one in this request.

    SAML's POST binding returns through a cross-site form post, which a SameSite=Lax cookie
    does not follow; over https the cookie is SameSite=None (and Secure) for that reason.
    """
    token = g.pop("new_login_token", None)
    if token:
        https = _is_https()
        response.set_cookie(
            LOGIN_COOKIE,
            _signer(LOGIN_COOKIE).sign(token).decode(),
            max_age=int(LOGIN_COOKIE_AGE.total_seconds()),
            httponly=True,
            secure=https,
            samesite="None" if https else "Lax",
            path="/sso/",
        )
    return response
