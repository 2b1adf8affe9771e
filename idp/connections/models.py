"""An org's upstream identity: its email domains (proven by DNS TXT), its IdP connections and
the IdP subjects they have signed in."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.db import UTCDateTime, created_column, db, enum_column, id_column, updated_column
from idp.users.models import User

# The domain as stored: an IDNA A-label hostname, at most 253 characters (RFC 1035 §2.3.4).
MAX_DOMAIN = 253
_VERIFIED = text("status = 'verified'")


class DomainStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"


class Domain(db.Model):
    """One org's claim to an email domain.

    Several orgs may claim a domain (pending), each with its own token; at most one org of
    the workspace holds it verified, which the partial unique index enforces on its own.
    The unique (org_id, domain) key also serves the org's lookups, so org_id needs no index
    of its own.
    """

    __tablename__ = "domains"
    __table_args__ = (
        UniqueConstraint("org_id", "domain"),
        Index(
            "ix_domains_workspace_id_domain_verified",
            "workspace_id",
            "domain",
            unique=True,
            sqlite_where=_VERIFIED,
            postgresql_where=_VERIFIED,
        ),
    )

    id: Mapped[str] = id_column("dom")
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(MAX_DOMAIN))
    # Published in DNS by the org, so not a secret; it proves control of the zone.
    verification_token: Mapped[str] = mapped_column(String(64))
    status: Mapped[DomainStatus] = mapped_column(
        enum_column(DomainStatus, "domain_status"), default=DomainStatus.PENDING
    )
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()


class ConnectionKind(StrEnum):
    OIDC = "oidc"
    SAML = "saml"


class Connection(db.Model):
    """An org's upstream IdP. ``settings`` holds the protocol's public configuration;
    ``secret`` the one secret (OIDC client secret, SAML SP private key), encrypted."""

    __tablename__ = "connections"
    __table_args__ = (Index("ix_connections_org_id_id", "org_id", "id"),)

    id: Mapped[str] = id_column("con")
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[ConnectionKind] = mapped_column(enum_column(ConnectionKind, "connection_kind"))
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str] = mapped_column(String(20), default="generic")
    enabled: Mapped[bool] = mapped_column(default=True)
    # Made before the IdP gave its values (so the SP's URLs exist first): never enabled
    # until they are given.
    draft: Mapped[bool] = mapped_column(default=False, server_default="0")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class ExternalIdentity(db.Model):
    """Who a connection's subject (OIDC ``sub``, SAML NameID) is in its org's directory."""

    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("connection_id", "subject"),)

    id: Mapped[str] = id_column("xid")
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(512))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()

    user: Mapped[User] = relationship()


class ConnectionTest(db.Model):
    """A test sign-in through a connection (before it is switched on): the request it began
    and, once the IdP answered, each check's outcome. It never signs anyone in."""

    __tablename__ = "connection_tests"

    id: Mapped[str] = id_column("ctst")
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    started_by: Mapped[str] = mapped_column(String(200))  # the actor's label
    return_to: Mapped[str] = mapped_column(String(500))  # this site's page showing the result
    passed: Mapped[bool | None] = mapped_column()  # None: waiting for the IdP's answer
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # OIDC: the request's nonce and its PKCE verifier (encrypted); SAML: nothing.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = created_column()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
