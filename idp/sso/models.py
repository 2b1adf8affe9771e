"""Logins in flight and the SAML replay cache: the protocol state of upstream federation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.connections.models import Connection
from idp.db import UTCDateTime, created_column, db, id_column


class LoginState(db.Model):
    """A login begun at Gatehouse and not yet finished: single use, short-lived.

    ``handle_digest`` is the digest of the OIDC ``state`` or the SAML request id, which the
    IdP sends back; ``browser_digest`` that of a cookie set on the browser that began the
    login, so a response delivered to another browser finds no state.
    """

    __tablename__ = "login_states"

    id: Mapped[str] = id_column("lgn")
    handle_digest: Mapped[str] = mapped_column(String(64), unique=True)
    browser_digest: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[str] = mapped_column(
        ForeignKey(Connection.id, ondelete="CASCADE"), index=True
    )
    # Protocol values to check on return (OIDC nonce, PKCE verifier encrypted; SAML request id).
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    return_to: Mapped[str] = mapped_column(String(2000), default="/")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()


class SeenAssertion(db.Model):
    """SAML replay cache: an assertion id is accepted once per connection until it expires."""

    __tablename__ = "seen_assertions"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey(Connection.id, ondelete="CASCADE"), primary_key=True
    )
    assertion_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    not_on_or_after: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
