"""Starting, finding, moving and revoking sessions; which orgs a session may enter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, select, update

from idp import telemetry
from idp.actors import Actor, ActorKind
from idp.apps.tokens import revoke_member_tokens
from idp.audit.services import record_org_event
from idp.connections.models import Connection
from idp.crypto import new_token, token_digest
from idp.db import db, new_id, utcnow
from idp.orgs.models import Organization
from idp.policies.chain import org_policy
from idp.policies.enforcement import Action, Attempt, enforce, violation, violations
from idp.sessions.models import EmailLink, Session, SessionMethod
from idp.users.models import User

SESSION_TOKEN_PREFIX = "ghc"  # noqa: S105 - a public prefix for secret scanners ("cookie")
# How stale ``last_seen_at`` may be before a use records itself: idle timeouts are kept to
# the minute, and a busy session writes at most once a minute.
TOUCH_EVERY = timedelta(minutes=1)

_LIVE_SESSION = select(Session).where(
    Session.token_digest == bindparam("digest"),
    Session.revoked_at.is_(None),
    Session.expires_at > bindparam("now"),
)


def start_session(
    user: User,
    org: Organization | None,
    *,
    method: SessionMethod,
    lifetime: timedelta,
    connection_id: str | None = None,
    amr: Sequence[str] = (),
    acr: str | None = None,
    auth_time: datetime | None = None,
    mfa: bool = False,
) -> tuple[Session, str]:
    """A new session; the token (for the cookie) is returned once, here, and stored hashed."""
    now = utcnow()
    token = new_token(SESSION_TOKEN_PREFIX)
    session = Session(
        id=new_id("ses"),
        token_digest=token_digest(token),
        workspace_id=user.workspace_id,
        user_id=user.id,
        user=user,
        org_id=org.id if org else None,
        method=method,
        connection_id=connection_id,
        amr=list(amr),
        acr=acr,
        auth_time=auth_time or now,
        mfa=mfa,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
    )
    db.session.add(session)
    db.session.flush()
    telemetry.sign_in_succeeded(
        db.session, method.value, org_id=session.org_id, user_id=user.id, session_id=session.id
    )
    return session, token


def find_live_session(token: str) -> Session | None:
    """The unexpired, unrevoked session of a cookie token, in one indexed query."""
    if not token.startswith(SESSION_TOKEN_PREFIX + "_"):
        return None
    return db.session.scalar(_LIVE_SESSION, {"digest": token_digest(token), "now": utcnow()})


class SessionFacts(Protocol):
    mfa: bool
    created_at: datetime
    last_seen_at: datetime | None


def session_attempt(
    session: SessionFacts,
    org_id: str,
    connection_org_id: str | None,
    now: datetime,
    *,
    email: str | None,
) -> Attempt:
    """The policy's view of a session of the person with ``email`` entering (or staying in)
    ``org_id``."""
    return Attempt(
        Action.SESSION,
        now=now,
        email=email,
        via_org_connection=connection_org_id is not None and connection_org_id == org_id,
        mfa=session.mfa,
        started_at=session.created_at,
        last_seen_at=session.last_seen_at,
    )


def session_violation(
    session: Session, org: Organization, now: datetime | None = None
) -> str | None:
    """The policy key of ``org`` this session breaks (age, idle, SSO, MFA, the person's email
    domain), or ``None``."""
    policy = org_policy(org)
    connection_org = None
    if session.connection_id is not None and policy.sso_required:
        connection_org = db.session.scalar(
            select(Connection.org_id).where(Connection.id == session.connection_id)
        )
    attempt = session_attempt(
        session, org.id, connection_org, now or utcnow(), email=session.user.email
    )
    return violation(policy, attempt)


def touch_session(session: Session, now: datetime | None = None) -> None:
    """Record a use of the session (to the minute) for idle timeouts."""
    now = now or utcnow()
    if session.last_seen_at is None or now - session.last_seen_at >= TOUCH_EVERY:
        session.last_seen_at = now
        db.session.flush()


def move_session(session: Session, org: Organization) -> None:
    """Point the session at another org (the caller checked the org admits it)."""
    session.org_id = org.id
    db.session.flush()


def revoke_session(session: Session, reason: str) -> None:
    if session.revoked_at is None:
        session.revoked_at, session.revoked_reason = utcnow(), reason
        db.session.flush()


def revoke_member_sessions(org_id: str, user_id: str, reason: str) -> int:
    """End every live session of the person in that org at once (suspension, removal)."""
    result = db.session.execute(
        update(Session)
        .where(
            Session.user_id == user_id,
            Session.org_id == org_id,
            Session.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount


def cut_member_access(org_id: str, user_id: str, reason: str) -> None:
    """End everything that lets the person into that org now: their sessions there and the
    tokens apps hold for them there (suspension, removal, a merge)."""
    revoke_member_sessions(org_id, user_id, reason)
    revoke_member_tokens(org_id, user_id, reason)


# --- one-time email links --------------------------------------------------------------

EMAIL_LINK_TTL = timedelta(minutes=10)
EMAIL_LINK_PREFIX = "ghl"  # a public prefix for secret scanners ("link")


def issue_email_link(
    email: str,
    *,
    org_id: str | None = None,
    return_to: str = "/",
    pending_sign_in: dict[str, Any] | None = None,
    browser: str | None = None,
) -> tuple[EmailLink, str]:
    """A link that proves ``email`` (10 minutes, single use); the token is returned once.

    With ``pending_sign_in`` it finishes an SSO sign-in that waits for the address, and only
    in the browser whose login cookie token is ``browser``.
    """
    token = new_token(EMAIL_LINK_PREFIX)
    link = EmailLink(
        id=new_id("eml"),
        token_digest=token_digest(token),
        email=email,
        org_id=org_id,
        return_to=return_to,
        pending_sign_in=pending_sign_in,
        browser_digest=token_digest(browser) if browser else None,
        expires_at=utcnow() + EMAIL_LINK_TTL,
    )
    db.session.add(link)
    db.session.flush()
    return link, token


def consume_email_link(
    token: str, *, pending: bool = False, browser: str | None = None
) -> EmailLink | None:
    """The link of ``token``, used up now; ``None`` if unknown, expired or already used.

    ``pending``: a link finishing an SSO sign-in, taken only by the browser that began it
    (another browser uses nothing up); otherwise a plain sign-in link.
    """
    if not token.startswith(EMAIL_LINK_PREFIX + "_"):
        return None
    link = db.session.scalar(select(EmailLink).where(EmailLink.token_digest == token_digest(token)))
    if link is None or (link.pending_sign_in is not None) is not pending:
        return None
    if pending and (not browser or link.browser_digest != token_digest(browser)):
        return None
    now = utcnow()
    taken = db.session.execute(
        update(EmailLink)
        .where(EmailLink.id == link.id, EmailLink.used_at.is_(None), EmailLink.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return link if taken.rowcount == 1 else None


def email_sign_in(email: str | None) -> Attempt:
    """An email link (or emailed invitation) proves the address: no org connection, no MFA."""
    return Attempt(Action.SIGN_IN, email=email)


def admits_email_sign_in(org: Organization, email: str | None) -> bool:
    """Whether the org's policy lets this address in by an email link."""
    return violation(org_policy(org), email_sign_in(email)) is None


def offers_email_sign_in(org: Organization) -> bool:
    """Whether an email link can let anyone into the org (no own IdP, no MFA required), for
    the login page, which does not know the address yet: the link asks about it when used."""
    refused = violations(org_policy(org), email_sign_in(None))
    return all(key == "allowed_email_domains" for key, _message in refused)


def start_email_session(
    user: User, org: Organization, *, lifetime: timedelta, request_id: str | None = None
) -> tuple[Session, str]:
    """A session for a person who just proved their address (an email link, an invitation's
    mail) or, for an org's own person, its token: the sign-in is audited. An org whose
    policy requires its own IdP or MFA, or other email domains, refuses it
    (``policy_violation``)."""
    enforce(org_policy(org), email_sign_in(user.email))
    session, token = start_session(
        user, org, method=SessionMethod.EMAIL_LINK, lifetime=lifetime, amr=["email"]
    )
    actor = Actor(
        ActorKind.USER,
        user.id,
        user.email or user.id,
        user_id=user.id,
        org_id=org.id,
        request_id=request_id,
        workspace_id=user.workspace_id,
    )
    record_org_event(
        actor,
        org,
        "session.started",
        "user",
        user.id,
        after={"session_id": session.id, "method": SessionMethod.EMAIL_LINK.value},
    )
    return session, token
