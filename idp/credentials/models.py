"""Bearer credentials: API keys, SCIM tokens and setup links, stored as digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from idp.db import UTCDateTime, created_column, db, id_column


class SecretCredential:
    """What every bearer credential keeps: the token's digest, never the token."""

    name: Mapped[str] = mapped_column(String(200))
    hint: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_column()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @declared_attr
    def token_digest(cls) -> Mapped[str]:
        return mapped_column(String(64), unique=True)


class ApiKey(SecretCredential, db.Model):
    """Workspace-scoped when ``org_id`` is null (owner authority in every org), else org-scoped."""

    __tablename__ = "api_keys"

    id: Mapped[str] = id_column("key")
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str | None] = mapped_column(String(64))  # a role key, as memberships hold
    # A team's own key (for CI/CD): no role in the org, the team's scope on that team, and
    # what the team was granted on resources.
    team_id: Mapped[str | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ScimToken(SecretCredential, db.Model):
    """A bearer token for one org's SCIM endpoint (its IdP's provisioning client)."""

    __tablename__ = "scim_tokens"

    id: Mapped[str] = id_column("scim")
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # The last request refused (status, scimType, message): what the IT admin sees to mend
    # their IdP's side. Never the request itself.
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SetupLink(SecretCredential, db.Model):
    """A link for a customer's IT admin to set up one org's SSO, directory and domains without
    an account: the ``intents`` say which, until ``expires_at`` or revocation."""

    __tablename__ = "setup_links"

    id: Mapped[str] = id_column("setl")
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    intents: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
