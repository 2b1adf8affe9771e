"""What an org's IdP provisioned: the attributes it sent, kept as sent, beside the core model.

A provisioned user is a membership (the org's view of a workspace user); a provisioned
group is a team. The IdP's own attributes live in ``attributes`` (JSON) so they come back
exactly as sent; the columns beside them are the ones lookups must find fast.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.db import created_column, db, updated_column
from idp.orgs.models import Membership, Team

# JSONB on PostgreSQL so filters can reach inside documents; JSON text on SQLite.
Document = JSON().with_variant(JSONB(), "postgresql")


class DirectoryUser(db.Model):
    """A membership provisioned (or adopted) by the org's IdP; its SCIM id is the membership's."""

    __tablename__ = "directory_users"
    __table_args__ = (
        UniqueConstraint("org_id", "user_name_key"),
        Index("ix_directory_users_org_id_external_id", "org_id", "external_id"),
        Index("ix_directory_users_org_id_membership_id", "org_id", "membership_id"),
    )

    membership_id: Mapped[str] = mapped_column(
        ForeignKey("memberships.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(320))
    user_name_key: Mapped[str] = mapped_column(String(320))
    external_id: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(Document, default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    membership: Mapped[Membership] = relationship(lazy="joined", innerjoin=True)


class DirectoryGroup(db.Model):
    """A team provisioned by the org's IdP; its SCIM id is the team's."""

    __tablename__ = "directory_groups"
    __table_args__ = (Index("ix_directory_groups_org_id_team_id", "org_id", "team_id"),)

    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    attributes: Mapped[dict[str, Any]] = mapped_column(Document, default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    team: Mapped[Team] = relationship(lazy="joined", innerjoin=True)
