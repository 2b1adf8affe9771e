"""Logins in flight: single-use, short-lived, bound to the browser that began them.

Kept in the database so a login begun on one process finishes on any other.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update

from idp.connections.models import Connection
from idp.crypto import token_digest
from idp.db import db, new_id, utcnow
from idp.people.signin import LoginRefused
from idp.sso.models import LoginState

LOGIN_TTL = timedelta(minutes=10)


def begin_login(
    connection: Connection, *, handle: str, browser: str, data: dict[str, Any], return_to: str
) -> LoginState:
    """Remember a login: ``handle`` (OIDC state, SAML request id) comes back from the IdP,
    ``browser`` is the token of the browser's login cookie."""
    state = LoginState(
        id=new_id("lgn"),
        handle_digest=token_digest(handle),
        browser_digest=token_digest(browser),
        connection_id=connection.id,
        data=data,
        return_to=return_to,
        expires_at=utcnow() + LOGIN_TTL,
    )
    db.session.add(state)
    db.session.flush()
    return state


def finish_login(connection: Connection, *, handle: str, browser: str | None) -> LoginState:
    """Take the login this response answers, once: unknown, expired, used, another
    connection's or another browser's → ``invalid_state``.

    One UPDATE ... RETURNING: of concurrent requests with the same response only one sees
    ``used_at`` still null, and a response from another browser uses nothing up.
    """
    if not browser:
        raise _refused()
    now = utcnow()
    state = db.session.scalar(
        update(LoginState)
        .where(
            LoginState.handle_digest == token_digest(handle),
            LoginState.connection_id == connection.id,
            LoginState.browser_digest == token_digest(browser),
            LoginState.used_at.is_(None),
            LoginState.expires_at > now,
        )
        .values(used_at=now)
        .returning(LoginState),
        execution_options={"synchronize_session": False},
    )
    if state is None:
        raise _refused()
    return state


def _refused() -> LoginRefused:
    return LoginRefused("invalid_state", "This sign-in response does not match a login begun here")


def purge_expired_logins() -> int:
    """Delete logins past their expiry (housekeeping)."""
    return db.session.execute(delete(LoginState).where(LoginState.expires_at <= utcnow())).rowcount
