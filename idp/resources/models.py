"""Scopes below the org: the app's resource types (``tenant``, ``project`` under ``tenant``)
with their roles, the org's resources, and who holds a role on which resource."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import created_column, db, id_column


class ResourceType(db.Model):
    """A kind of resource the app declares, workspace-wide; ``parent``: the type its
    resources sit in (none: directly in the org)."""

    __tablename__ = "resource_types"
    __table_args__ = (UniqueConstraint("workspace_id", "key", name="uq_resource_types_key"),)

    id: Mapped[str] = id_column("rtyp")
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("resource_types.id"))
    # Whether people outside the org may be invited to one (they join as guests, holding
    # only that); otherwise its invitations go to the org's members only.
    invite_outsiders: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[datetime] = created_column()


class ResourceRole(db.Model):
    """A role on resources of one type (Project developer: ``deploys:create``, ...)."""

    __tablename__ = "resource_roles"
    __table_args__ = (UniqueConstraint("type_id", "key", name="uq_resource_roles_key"),)

    id: Mapped[str] = id_column("rrol")
    type_id: Mapped[str] = mapped_column(ForeignKey("resource_types.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class Resource(db.Model):
    """One of the org's resources, by the app's own id; in its parent, if its type has one."""

    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("org_id", "type_id", "external_id", name="uq_resources_external_id"),
        Index("ix_resources_parent_id", "parent_id"),
        Index("ix_resources_org_id_type_id_id", "org_id", "type_id", "id"),
    )

    id: Mapped[str] = id_column("res")
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    type_id: Mapped[str] = mapped_column(ForeignKey("resource_types.id"))
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("resources.id"))
    created_at: Mapped[datetime] = created_column()


class ResourceGrant(db.Model):
    """A member, or a team (its members inherit it), holding a role on a resource and so on
    everything below it; given by hand, or by a role mapping of a group the member is in.
    Removing the member from the org removes their grants."""

    __tablename__ = "resource_grants"
    __table_args__ = (
        # A member's own grant, one per resource; beside it, one per mapping of a group
        # they are in (``mapping_id``: made and taken away as their groups change).
        Index(
            "uq_resource_grants_member",
            "resource_id",
            "membership_id",
            unique=True,
            sqlite_where=text("mapping_id IS NULL"),
            postgresql_where=text("mapping_id IS NULL"),
        ),
        UniqueConstraint("mapping_id", "membership_id", name="uq_resource_grants_mapping"),
        UniqueConstraint("resource_id", "team_id", name="uq_resource_grants_team"),
        CheckConstraint("(membership_id IS NULL) <> (team_id IS NULL)", name="one_principal"),
        # A member's (or team's) grants by type, in resource order: the lookup's first page
        # of the type's direct grants is read straight off these.
        Index("ix_resource_grants_member_type", "membership_id", "type_id", "resource_id"),
        Index("ix_resource_grants_team_type", "team_id", "type_id", "resource_id"),
    )

    id: Mapped[str] = id_column("rgr")
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    type_id: Mapped[str] = mapped_column(ForeignKey("resource_types.id"))  # the resource's
    membership_id: Mapped[str | None] = mapped_column(
        ForeignKey("memberships.id", ondelete="CASCADE")
    )
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    role_id: Mapped[str] = mapped_column(ForeignKey("resource_roles.id"))
    mapping_id: Mapped[str | None] = mapped_column(
        ForeignKey("role_mappings.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = created_column()
