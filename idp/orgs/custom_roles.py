"""Custom roles and the app's own permissions: one function per action.

A workspace template (``org`` None) is offered to every org and needs workspace authority; an
org's own role needs ``roles:write`` there and never holds a permission its creator lacks.
Built-in roles are not rows and cannot be changed. A role still held (by a member, a pending
invitation, a role mapping or an API key) cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import func, or_, select

from idp.actors import Actor
from idp.audit.services import record_event, record_org_event
from idp.credentials.models import ApiKey
from idp.db import db, lock_row
from idp.errors import BadRequest, Conflict, Forbidden, NotFound
from idp.orgs.models import (
    AppPermission,
    CustomRole,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    RoleMapping,
)
from idp.orgs.role_book import RoleBook, bump_roles_version, role_book
from idp.orgs.roles import (
    BUILTIN_ROLES,
    DEFAULT_CUSTOM_RANK,
    MAX_CUSTOM_RANK,
    MIN_CUSTOM_RANK,
    PERMISSION_KEY,
    ROLE_KEY,
    Permission,
    Role,
    RoleDef,
)
from idp.orgs.services import (
    check_permission,
    check_workspace_authority,
    unsafe_character,
    validate_name,
)

MAX_PERMISSIONS = 200
MAX_DESCRIPTION = 1000
# What only the Owner role holds: a custom role with these would be an owner in all but name.
RESERVED = frozenset({Permission.OWNERS_MANAGE.value, Permission.ORG_TRANSFER.value})


def role_snapshot(role: CustomRole) -> dict[str, Any]:
    return {
        "key": role.key,
        "name": role.name,
        "rank": role.rank,
        "permissions": sorted(role.permissions),
        "org_id": role.org_id,
    }


def _scope(org: Organization | None) -> str:
    return org.id if org else ""


def _audit(
    actor: Actor,
    workspace_id: str,
    org: Organization | None,
    action: str,
    target: str,
    **changes: Any,
) -> None:
    if org is not None:
        record_org_event(actor, org, action, "role", target, **changes)
    else:
        record_event(
            actor,
            action,
            workspace_id=workspace_id,
            org_id=None,
            target_type="role",
            target_id=target,
            **changes,
        )


def _authorize(actor: Actor, org: Organization | None) -> None:
    if org is None:
        check_workspace_authority(actor, "Workspace roles need workspace authority")
    else:
        check_permission(actor, Permission.ROLES_WRITE)


def validate_permissions(book: RoleBook, actor: Actor, permissions: Any) -> list[str]:
    """Known permissions (Gatehouse's or the app's), none reserved to owners, none the actor
    lacks; sorted, without repeats."""
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise BadRequest("invalid_permissions", "permissions must be a list of permission keys")
    wanted = sorted(set(permissions))
    if len(wanted) > MAX_PERMISSIONS:
        raise BadRequest("invalid_permissions", f"A role holds at most {MAX_PERMISSIONS}")
    unknown = [p for p in wanted if p not in book.known_permissions()]
    if unknown:
        raise BadRequest(
            "unknown_permission", f"Unknown permission {unknown[0]!r}", permissions=unknown
        )
    reserved = [p for p in wanted if p in RESERVED]
    if reserved:
        raise BadRequest("reserved_permission", f"{reserved[0]} belongs to the Owner role alone")
    if not actor.is_workspace:
        held = book.held_by(actor.role)
        lacking = [p for p in wanted if p not in held]
        if lacking:
            raise Forbidden(
                "role_above_creator",
                f"A role cannot grant {lacking[0]!r}, which you do not hold",
                permissions=lacking,
            )
    return wanted


def _rank(rank: Any) -> int:
    if rank is None:
        return DEFAULT_CUSTOM_RANK
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise BadRequest("invalid_rank", "rank must be a whole number")
    if not MIN_CUSTOM_RANK <= rank <= MAX_CUSTOM_RANK:
        raise BadRequest(
            "invalid_rank",
            f"rank must be from {MIN_CUSTOM_RANK} to {MAX_CUSTOM_RANK} "
            f"(Member is {Role.MEMBER.rank}, Admin {Role.ADMIN.rank}, Owner {Role.OWNER.rank})",
        )
    return rank


def _description(text: str | None) -> str:
    text = (text or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise BadRequest("invalid_description", f"At most {MAX_DESCRIPTION} characters")
    if unsafe_character(text) is not None:
        raise BadRequest(
            "invalid_description",
            "A description may not contain control, bidi or zero-width characters",
            field="description",
        )
    return text


def list_roles(workspace_id: str, org: Organization | None) -> list[RoleDef]:
    """The roles an org can use (built-in, templates, its own), highest first; or, for the
    workspace, the built-ins and templates. Each with its count of holders."""
    book = role_book(workspace_id, org.id if org else None)
    counts = _member_counts(workspace_id, org)
    return [replace(r, holders=counts.get(r.key, 0)) for r in book.ordered()]


def _member_counts(workspace_id: str, org: Organization | None) -> dict[str, int]:
    query = select(Membership.role, func.count()).group_by(Membership.role)
    if org is not None:
        query = query.where(Membership.org_id == org.id)
    else:
        query = query.join(Organization, Organization.id == Membership.org_id).where(
            Organization.workspace_id == workspace_id
        )
    return dict(db.session.execute(query).all())  # type: ignore[arg-type]


def get_role(workspace_id: str, org: Organization | None, key: str) -> CustomRole:
    """A custom role of this scope (an org's own, or a template); 404 otherwise."""
    row = db.session.scalar(
        select(CustomRole).where(
            CustomRole.workspace_id == workspace_id,
            CustomRole.scope == _scope(org),
            CustomRole.key == key,
        )
    )
    if row is None:
        if key in BUILTIN_ROLES:
            raise Conflict("builtin_role", f"The built-in {key} role cannot be changed")
        raise NotFound("role_not_found", f"No role {key!r} here")
    return row


def create_role(
    actor: Actor,
    workspace_id: str,
    org: Organization | None,
    *,
    key: str,
    name: str,
    permissions: list[str],
    description: str | None = None,
    rank: int | None = None,
) -> CustomRole:
    """A workspace template (``org`` None) or an org's own role."""
    _authorize(actor, org)
    if not isinstance(key, str) or not ROLE_KEY.match(key):
        raise BadRequest(
            "invalid_role_key", "A role key is lowercase letters, digits, '-' and '_' (max 64)"
        )
    if key in BUILTIN_ROLES:
        raise Conflict("role_key_taken", f"{key!r} is a built-in role")
    book = role_book(workspace_id, org.id if org else None)
    taken = db.session.scalar(
        select(CustomRole.id).where(
            CustomRole.workspace_id == workspace_id,
            CustomRole.key == key,
            # A template's key may not shadow, nor be shadowed by, an org's own role.
            or_(CustomRole.scope == "", CustomRole.scope == _scope(org))
            if org is not None
            else True,
        )
    )
    if taken is not None:
        raise Conflict("role_key_taken", f"A role {key!r} already exists")
    row = CustomRole(
        workspace_id=workspace_id,
        org_id=org.id if org else None,
        scope=_scope(org),
        key=key,
        name=validate_name(name),
        description=_description(description),
        rank=_rank(rank),
        permissions=validate_permissions(book, actor, permissions),
    )
    db.session.add(row)
    db.session.flush()
    bump_roles_version(workspace_id)
    _audit(actor, workspace_id, org, "role.created", key, after=role_snapshot(row))
    return row


def update_role(
    actor: Actor, workspace_id: str, org: Organization | None, key: str, changes: dict[str, Any]
) -> CustomRole:
    """Change a custom role's name, description, rank or permissions; its holders follow."""
    _authorize(actor, org)
    row = get_role(workspace_id, org, key)
    book = role_book(workspace_id, org.id if org else None)
    if not actor.is_workspace:  # nor may one change a role holding more than they do
        validate_permissions(book, actor, list(row.permissions))
    before = role_snapshot(row)
    if "name" in changes:
        row.name = validate_name(changes["name"])
    if "description" in changes:
        row.description = _description(changes["description"])
    if "rank" in changes:
        row.rank = _rank(changes["rank"])
    if "permissions" in changes:
        row.permissions = validate_permissions(book, actor, changes["permissions"])
    db.session.flush()
    bump_roles_version(workspace_id)
    _audit(actor, workspace_id, org, "role.updated", key, before=before, after=role_snapshot(row))
    return row


def count_holders(row: CustomRole) -> int:
    """Who holds the role: members (by hand or mapped), pending invitations, role mappings
    and live API keys, in the role's org (or, for a template, in any org)."""
    org_ids = (
        [row.org_id]
        if row.org_id
        else select(Organization.id).where(Organization.workspace_id == row.workspace_id)
    )
    # An org's own role of this key shadows the template there: those rows are not its.
    shadowed = select(CustomRole.org_id).where(
        CustomRole.workspace_id == row.workspace_id,
        CustomRole.key == row.key,
        CustomRole.scope != "",
    )

    def count(model: Any, *where: Any) -> int:
        query = select(func.count()).select_from(model).where(model.org_id.in_(org_ids), *where)
        if not row.org_id:
            query = query.where(model.org_id.not_in(shadowed))
        return db.session.scalar(query) or 0

    return (
        count(Membership, or_(Membership.role == row.key, Membership.assigned_role == row.key))
        + count(
            Invitation,
            Invitation.role == row.key,
            Invitation.status == InvitationStatus.PENDING,
        )
        + count(RoleMapping, RoleMapping.role == row.key, RoleMapping.resource_id.is_(None))
        + count(ApiKey, ApiKey.role == row.key, ApiKey.revoked_at.is_(None))
    )


def delete_role(actor: Actor, workspace_id: str, org: Organization | None, key: str) -> None:
    """Delete a custom role no one holds; refused with the count of holders otherwise."""
    _authorize(actor, org)
    row = get_role(workspace_id, org, key)
    if not actor.is_workspace:
        validate_permissions(
            role_book(workspace_id, org.id if org else None), actor, list(row.permissions)
        )
    lock_row(CustomRole, row.id)  # assigning it takes this lock too (role_book.hold_role)
    holders = count_holders(row)
    if holders:
        raise Conflict(
            "role_in_use",
            f"{holders} member(s), invitation(s), mapping(s) or key(s) hold this role; "
            "give them another role first",
            holders=holders,
        )
    before = role_snapshot(row)
    db.session.delete(row)
    db.session.flush()
    bump_roles_version(workspace_id)
    _audit(actor, workspace_id, org, "role.deleted", key, before=before)


# --- the app's permissions ----------------------------------------------------------------


def list_permissions(workspace_id: str) -> list[AppPermission]:
    return list(
        db.session.scalars(
            select(AppPermission)
            .where(AppPermission.workspace_id == workspace_id)
            .order_by(AppPermission.key)
        )
    )


def register_permission(
    actor: Actor,
    workspace_id: str,
    *,
    key: str,
    description: str | None = None,
    granted_from: Role = Role.OWNER,
) -> AppPermission:
    """Register a permission of the app's own; the built-in role ``granted_from`` and those
    above it hold it at once (Owner holds every one), custom roles when they name it."""
    check_workspace_authority(actor, "The app's permissions need workspace authority")
    if granted_from is Role.GUEST:
        raise BadRequest("invalid_granted_from", "A guest holds no permission of the org")
    if not isinstance(key, str) or not PERMISSION_KEY.match(key):
        raise BadRequest(
            "invalid_permission_key",
            "A permission key is '<resource>:<action>' in lowercase (e.g. tunnels:use)",
        )
    if key in {p.value for p in Permission}:
        raise Conflict("permission_key_taken", f"{key!r} is one of Gatehouse's own permissions")
    if db.session.scalar(
        select(AppPermission.id).where(
            AppPermission.workspace_id == workspace_id, AppPermission.key == key
        )
    ):
        raise Conflict("permission_key_taken", f"The permission {key!r} already exists")
    row = AppPermission(
        workspace_id=workspace_id,
        key=key,
        description=_description(description),
        granted_from=granted_from,
    )
    db.session.add(row)
    db.session.flush()
    bump_roles_version(workspace_id)
    record_event(
        actor,
        "permission.created",
        workspace_id=workspace_id,
        org_id=None,
        target_type="permission",
        target_id=key,
        after={"key": key, "granted_from": granted_from.value},
    )
    return row


def roles_naming(workspace_id: str, permission: str) -> Iterable[str]:
    rows = db.session.execute(
        select(CustomRole.key, CustomRole.permissions).where(
            CustomRole.workspace_id == workspace_id
        )
    )
    return sorted({key for key, held in rows if permission in (held or ())})


def delete_permission(actor: Actor, workspace_id: str, key: str) -> None:
    """Remove an app permission that no custom role names any more."""
    check_workspace_authority(actor, "The app's permissions need workspace authority")
    row = db.session.scalar(
        select(AppPermission).where(
            AppPermission.workspace_id == workspace_id, AppPermission.key == key
        )
    )
    if row is None:
        raise NotFound("permission_not_found", f"No permission {key!r}")
    naming = list(roles_naming(workspace_id, key))
    if naming:
        raise Conflict(
            "permission_in_use", f"The role(s) {', '.join(naming)} hold it", roles=naming
        )
    db.session.delete(row)
    db.session.flush()
    bump_roles_version(workspace_id)
    record_event(
        actor,
        "permission.deleted",
        workspace_id=workspace_id,
        org_id=None,
        target_type="permission",
        target_id=key,
        before={"key": key, "granted_from": row.granted_from.value},
    )
