"""Sessions carried to apps on their own hosts (forward-auth's callback pattern).

A browser's Gatehouse cookie never reaches an app on an unrelated domain, so after sign-in
Gatehouse sends the browser to the app host's callback with a one-time code (as an OAuth
authorization code, RFC 6749 §4.1.2: short-lived, single use, bound to its recipient). The
callback trades it for an app-host credential derived from the session: the session's id and
an HMAC of the host keyed by the session's token digest. Only the database holds that digest,
so the credential cannot be made without the session, and revoking the session ends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import delete, or_, select, update

from idp.crypto import new_token, token_digest
from idp.db import db, utcnow
from idp.errors import BadRequest
from idp.sessions.models import ForwardAuthCode, Session

CODE_PREFIX = "ghf"  # a public prefix for secret scanners ("forward")
CODE_TTL = timedelta(seconds=60)


def issue_forward_code(session: Session, host: str, state: str) -> str:
    """A new code for ``session`` at ``host`` (the caller has checked the host is mapped),
    for the browser holding ``state`` there."""
    code = new_token(CODE_PREFIX)
    now = utcnow()
    # The session's spent codes go as it gets a new one (its index): the table stays small.
    db.session.execute(
        delete(ForwardAuthCode)
        .where(
            ForwardAuthCode.session_id == session.id,
            or_(ForwardAuthCode.used_at.is_not(None), ForwardAuthCode.expires_at <= now),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.add(
        ForwardAuthCode(
            code_digest=token_digest(code),
            session_id=session.id,
            host=host.lower(),
            state_digest=token_digest(state),
            created_at=now,
            expires_at=now + CODE_TTL,
        )
    )
    db.session.flush()
    return code


def redeem_forward_code(code: str, host: str, state: str) -> Session:
    """The live session a code was issued for, using the code up; refused clearly if the
    code is unknown, used, expired, for another host or another browser (``state``, the
    browser's, is not the sign-in's), or its session has ended."""
    if not code.startswith(CODE_PREFIX + "_") or len(code) > 100:
        raise BadRequest("invalid_code", "This sign-in code is not one Gatehouse issued")
    digest = token_digest(code)
    row = db.session.scalar(select(ForwardAuthCode).where(ForwardAuthCode.code_digest == digest))
    if row is None:
        raise BadRequest("invalid_code", "This sign-in code is not one Gatehouse issued")
    now = utcnow()
    if row.used_at is not None:
        raise BadRequest("code_used", "This sign-in code was used already; sign in again")
    if row.expires_at <= now:
        raise BadRequest("code_expired", "This sign-in code has expired; sign in again")
    if not hmac.compare_digest(row.host, host.lower()):
        raise BadRequest("wrong_host", "This sign-in code was issued for another site")
    if not hmac.compare_digest(row.state_digest, token_digest(state)):
        raise BadRequest(
            "state_mismatch",
            "This sign-in did not begin in this browser: open the site again to sign in",
        )
    # Single use even when two requests race: only one update finds it unused.
    used = db.session.execute(
        update(ForwardAuthCode)
        .where(ForwardAuthCode.id == row.id, ForwardAuthCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:
        raise BadRequest("code_used", "This sign-in code was used already; sign in again")
    session = db.session.get(Session, row.session_id)
    if session is None or session.revoked_at is not None or session.expires_at <= now:
        raise BadRequest("session_ended", "This sign-in has ended; sign in again")
    return session


def host_binding(session_token_digest: str, host: str) -> str:
    """The app-host credential's proof for ``host``: HMAC-SHA256 keyed by the session's
    token digest, so that only a holder of the session (or the database) can make it."""
    mac = hmac.new(
        session_token_digest.encode(),
        b"gatehouse.forward-auth|" + host.lower().encode(),
        hashlib.sha256,
    ).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def derive_app_credential(session: Session, host: str) -> str:
    """The app-host cookie's payload for ``session`` at ``host``: ``<session id>.<binding>``."""
    return f"{session.id}.{host_binding(session.token_digest, host)}"
