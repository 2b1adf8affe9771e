"""A signed-in browser: who, in which org, through what, until when."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.connections.models import Connection
from idp.db import UTCDateTime, created_column, db, enum_column, id_column
from idp.users.models import User


class SessionMethod(StrEnum):
    """How the session's person proved who they are."""

    OIDC = "oidc"  # an org's OIDC connection
    SAML = "saml"  # an org's SAML connection
    EMAIL_LINK = "email_link"  # a one-time link sent to the email address


class Session(db.Model):
    """One browser's sign-in. The cookie holds a random token; only its digest is stored."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_id_org_id", "user_id", "org_id"),)

    id: Mapped[str] = id_column("ses")
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The org the person is working in now; switching org moves the session.
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    method: Mapped[SessionMethod] = mapped_column(enum_column(SessionMethod, "session_method"))
    # The SSO connection that authenticated the person, when there was one.
    connection_id: Mapped[str | None] = mapped_column(
        ForeignKey(Connection.id, ondelete="CASCADE"), index=True
    )
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    acr: Mapped[str | None] = mapped_column(String(200))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    # Whether the sign-in proved multi-factor authentication (the IdP's amr/acr, as checked
    # by idp.connections.mfa); an email link never does.
    mfa: Mapped[bool] = mapped_column(default=False)
    # The last time the session was used, to the minute (idle timeout); null: never since.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = created_column()

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method.value,
            "connection_id": self.connection_id,
            "amr": list(self.amr),
            "auth_time": self.auth_time.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


class EmailLink(db.Model):
    """A one-time link sent to an address; only its token's digest is stored. Using it proves
    the address (``email``); links from before addresses were kept name their ``user_id``."""

    __tablename__ = "email_links"

    id: Mapped[str] = id_column("eml")
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(320))
    # An SSO sign-in waiting for the address to be proven (idp.people): the connection and
    # what its IdP asserted (no signature, no token), finished only in the browser that began
    # it (``browser_digest``, the digest of its login cookie).
    pending_sign_in: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    browser_digest: Mapped[str | None] = mapped_column(String(64))
    # The org the person asked to enter, if any.
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    return_to: Mapped[str] = mapped_column(String(2000), default="/")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()


class ForwardAuthCode(db.Model):
    """A one-time code that carries a session to an app on its own host (forward-auth's
    callback): short-lived, single use, for one host; only its digest is stored."""

    __tablename__ = "forward_auth_codes"

    id: Mapped[str] = id_column("fac")
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey(Session.id, ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(253))  # the app's host name, lowercase
    # The digest of the sign-in's state, which the browser must hold on the app's host.
    state_digest: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()
