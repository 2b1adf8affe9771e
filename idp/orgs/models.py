"""Workspace, organizations, memberships, teams and invitations."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.db import UTCDateTime, created_column, db, enum_column, id_column, updated_column
from idp.orgs.roles import Role
from idp.users.models import User

DEFAULT_MEMBER_CAP = 500


def role_key_column() -> String:
    """A role's key: a built-in (``Role``) or a custom role of the org or workspace."""
    return String(64)


class Workspace(db.Model):
    """The deployment's top container; holds the baseline policy every org inherits."""

    __tablename__ = "workspaces"

    id: Mapped[str] = id_column("wsp")
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    baseline_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Bumped by every change to custom roles or the app's permissions: a process keeps the
    # roles it read for as long as the number it reads with each request is the same.
    roles_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class Organization(db.Model):
    """A customer (tenant). Soft-deleted orgs keep their slug reserved."""

    __tablename__ = "organizations"
    __table_args__ = (UniqueConstraint("workspace_id", "slug"),)

    id: Mapped[str] = id_column("org")
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    member_cap: Mapped[int] = mapped_column(default=DEFAULT_MEMBER_CAP)
    # Departments: teams nested in teams. An org may keep a flat structure instead.
    nested_teams: Mapped[bool] = mapped_column(default=True, server_default="1")
    # Stored overrides (JSON form), each at least as strict as what the org inherited then.
    policy_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The strictest value of every key along baseline → parents → this org (JSON form),
    # kept up to date by idp.policies so that the hot paths read one column.
    effective_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    parent: Mapped[Organization | None] = relationship(remote_side=[id])


class MembershipSource(StrEnum):
    INVITE = "invite"
    SCIM = "scim"
    JIT = "jit"
    ADMIN = "admin"


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Membership(db.Model):
    """A user's place in an org: one row per (org, user)."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("org_id", "user_id"),
        # One membership per address in an org, whatever route names it (idp.people).
        UniqueConstraint("org_id", "email_key"),
        Index("ix_memberships_org_id_id", "org_id", "id"),
        Index("ix_memberships_org_id_role", "org_id", "role"),
        Index("ix_memberships_org_id_status", "org_id", "status"),
        Index("ix_memberships_user_id", "user_id"),
    )

    id: Mapped[str] = id_column("mem")
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The effective role: the highest of the hand-set one and those mapped from IdP groups.
    role: Mapped[str] = mapped_column(role_key_column())
    # The role set by hand (invitation, admin, CLI); null on rows older than role mappings.
    assigned_role: Mapped[str | None] = mapped_column(role_key_column())
    source: Mapped[MembershipSource] = mapped_column(
        enum_column(MembershipSource, "membership_source")
    )
    status: Mapped[MembershipStatus] = mapped_column(
        enum_column(MembershipStatus, "membership_status"), default=MembershipStatus.ACTIVE
    )
    # What this org knows of the person, and shows: the address it names them by (matched
    # within this org only, case-insensitively) and the name it set. Null key: a duplicate
    # from before one membership per address (``gatehouse people duplicates``).
    email: Mapped[str | None] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    # The groups the org's IdP asserted at this member's last SSO login (role mapping input).
    sso_groups: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class TeamSource(StrEnum):
    ADMIN = "admin"
    SCIM = "scim"


class Team(db.Model):
    """A group inside an org, optionally nested; a SCIM Group is a team with source ``scim``."""

    __tablename__ = "teams"
    __table_args__ = (
        # Not unique: an externalId is the IdP's, and the IdP keeps it unique (RFC 7643 §3.1).
        Index("ix_teams_org_id_external_id", "org_id", "external_id"),
        Index("ix_teams_org_id_id", "org_id", "id"),
        Index("ix_teams_org_id_name", "org_id", "name"),
    )

    id: Mapped[str] = id_column("team")
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("teams.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[TeamSource] = mapped_column(
        enum_column(TeamSource, "team_source"), default=TeamSource.ADMIN
    )
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class TeamMember(db.Model):
    """A member of a team; removed with the org membership it hangs on."""

    __tablename__ = "team_members"

    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    membership_id: Mapped[str] = mapped_column(
        ForeignKey("memberships.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    is_lead: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = created_column()

    membership: Mapped[Membership] = relationship(lazy="joined", innerjoin=True)


class InvitationKind(StrEnum):
    EMAIL = "email"
    LINK = "link"


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Invitation(db.Model):
    """An email invitation (one use, role pre-assigned) or a shareable link (member role)."""

    __tablename__ = "invitations"
    __table_args__ = (
        Index("ix_invitations_org_id_id", "org_id", "id"),
        Index("ix_invitations_org_id_status", "org_id", "status"),
        Index("ix_invitations_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[str] = id_column("inv")
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[InvitationKind] = mapped_column(enum_column(InvitationKind, "invitation_kind"))
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(role_key_column())
    team_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Its target below the org (a tenant, a project) and the role there; null: the org.
    resource_id: Mapped[str | None] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    resource_role_id: Mapped[str | None] = mapped_column(ForeignKey("resource_roles.id"))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[InvitationStatus] = mapped_column(
        enum_column(InvitationStatus, "invitation_status"), default=InvitationStatus.PENDING
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_uses: Mapped[int | None]
    use_count: Mapped[int] = mapped_column(default=0)
    invited_by: Mapped[str] = mapped_column(String(200))
    # The role the sender (or the last to resend) acted with: acceptance asks the policy again
    # on their word. Invitations are sent by credentials, whose role never changes (an org key
    # keeps the role it was made with, workspace keys and the CLI act as owners), so this is
    # the inviter's current role. A key revoked since does not void what it sent: revoking a
    # credential is not a verdict on the people it invited, and the invitation can be revoked.
    # Null: sent before this was kept (``invitations.UNRECORDED_INVITER``).
    inviter_role: Mapped[str | None] = mapped_column(role_key_column())
    # The digest of a second secret that only the invitation mail carries (never the API's
    # answer): accepting with it proves the address, not just possession of the token.
    proof_digest: Mapped[str | None] = mapped_column(String(64))
    accepted_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    def status_at(self, now: datetime) -> InvitationStatus:
        """The status as of ``now``: a pending invitation past its expiry reads as expired."""
        if self.status is InvitationStatus.PENDING and self.expires_at <= now:
            return InvitationStatus.EXPIRED
        return self.status

    def snapshot(self) -> dict[str, Any]:
        """What the audit log keeps of it (never the token)."""
        return {
            "kind": self.kind.value,
            "email": self.email,
            "role": self.role,
            "resource_id": self.resource_id,
            "resource_role_id": self.resource_role_id,
            "status": self.status.value,
            "expires_at": self.expires_at.isoformat(),
            "max_uses": self.max_uses,
            "use_count": self.use_count,
        }


class RoleMapping(db.Model):
    """ "IdP group → role" for one org, org-wide or at one of its resources; the group is
    named by its displayName or externalId.

    Only groups the IdP provisions (teams with source ``scim``) or asserts at SSO count, so
    nobody can grant themselves a role by naming a hand-made team after a mapped group.
    """

    __tablename__ = "role_mappings"
    __table_args__ = (
        # One org-wide mapping per group, and one per group at each resource.
        Index(
            "uq_role_mappings_org_id_group_key",
            "org_id",
            "group_key",
            unique=True,
            sqlite_where=text("resource_id IS NULL"),
            postgresql_where=text("resource_id IS NULL"),
        ),
        UniqueConstraint("org_id", "group_key", "resource_id", name="uq_role_mappings_resource"),
    )

    id: Mapped[str] = id_column("rmap")
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    group: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(String(255))
    # The org role's key; at a resource, the key of the resource role (``resource_role_id``).
    role: Mapped[str] = mapped_column(role_key_column())
    resource_id: Mapped[str | None] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    resource_role_id: Mapped[str | None] = mapped_column(
        ForeignKey("resource_roles.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = created_column()


class CustomRole(db.Model):
    """A role defined as data: a workspace template (``org_id`` null, offered to every org) or
    an org's own. ``scope`` is the org id or ``""`` (one unique key per scope, on both
    databases); ``permissions`` are Gatehouse's and the app's permission keys."""

    __tablename__ = "custom_roles"
    __table_args__ = (
        UniqueConstraint("workspace_id", "scope", "key", name="uq_custom_roles_scope_key"),
    )

    id: Mapped[str] = id_column("role")
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    rank: Mapped[int]
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class AppPermission(db.Model):
    """A permission of the app's own (``tunnels:use``), registered by the workspace.
    ``granted_from``: the lowest built-in role that holds it (and every role above)."""

    __tablename__ = "app_permissions"
    __table_args__ = (UniqueConstraint("workspace_id", "key", name="uq_app_permissions_key"),)

    id: Mapped[str] = id_column("perm")
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(127))
    description: Mapped[str] = mapped_column(String(1000), default="")
    granted_from: Mapped[Role] = mapped_column(enum_column(Role, "app_permission_granted_from"))
    created_at: Mapped[datetime] = created_column()
