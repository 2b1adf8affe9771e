"""Roles (built-in, workspace templates, an org's own) and the app's own permissions."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.orgs import custom_roles
from idp.orgs.role_book import custom_role_def
from idp.orgs.roles import Permission, RoleDef


def _out(row: Any) -> dict[str, Any]:
    return s.RoleOut().dump(custom_role_def(row))


def _listed(roles: list[RoleDef]) -> dict[str, Any]:
    return {"data": s.RoleOut(many=True).dump(roles)}


@operation("/roles", scope="workspace", response=s.RoleOut, many=True)
def list_workspace_roles(ctx: Ctx) -> dict[str, Any]:
    """List the built-in roles and the workspace's templates (offered to every org)."""
    return _listed(custom_roles.list_roles(ctx.workspace_id, None))


@operation("/roles", "POST", scope="workspace", body=s.RoleCreate, response=s.RoleOut, status=201)
def create_workspace_role(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Define a role every org can use (e.g. Finance: billing:read, billing:manage)."""
    return _out(custom_roles.create_role(ctx.actor, ctx.workspace_id, None, **data)), 201


@operation("/roles/<template>", "PATCH", scope="workspace", body=s.RoleUpdate, response=s.RoleOut)
def update_workspace_role(ctx: Ctx, template: str, data: dict[str, Any]) -> dict[str, Any]:
    """Change a template's name, description, rank or permissions; holders follow at once."""
    return _out(custom_roles.update_role(ctx.actor, ctx.workspace_id, None, template, data))


@operation("/roles/<template>", "DELETE", scope="workspace", status=204)
def delete_workspace_role(ctx: Ctx, template: str) -> None:
    """Delete a template nobody holds (409 ``role_in_use`` with the count otherwise)."""
    custom_roles.delete_role(ctx.actor, ctx.workspace_id, None, template)


@operation("/orgs/<slug>/roles", permission=Permission.ORG_READ, response=s.RoleOut, many=True)
def list_org_roles(ctx: Ctx) -> dict[str, Any]:
    """List the roles this org can use, highest first, with their holders here."""
    return _listed(custom_roles.list_roles(ctx.workspace_id, ctx.org))


@operation(
    "/orgs/<slug>/roles",
    "POST",
    permission=Permission.ROLES_WRITE,
    body=s.RoleCreate,
    response=s.RoleOut,
    status=201,
)
def create_org_role(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Define a role of this org's own, holding only permissions the caller holds."""
    return _out(custom_roles.create_role(ctx.actor, ctx.workspace_id, ctx.org, **data)), 201


@operation(
    "/orgs/<slug>/roles/<role>",
    "PATCH",
    permission=Permission.ROLES_WRITE,
    body=s.RoleUpdate,
    response=s.RoleOut,
)
def update_org_role(ctx: Ctx, role: str, data: dict[str, Any]) -> dict[str, Any]:
    """Change one of this org's own roles."""
    return _out(custom_roles.update_role(ctx.actor, ctx.workspace_id, ctx.org, role, data))


@operation("/orgs/<slug>/roles/<role>", "DELETE", permission=Permission.ROLES_WRITE, status=204)
def delete_org_role(ctx: Ctx, role: str) -> None:
    """Delete one of this org's own roles that nobody holds."""
    custom_roles.delete_role(ctx.actor, ctx.workspace_id, ctx.org, role)


@operation("/permissions", scope="key", response=s.PermissionOut, many=True)
def list_permissions(ctx: Ctx) -> dict[str, Any]:
    """List every permission a role can hold: Gatehouse's own and the app's."""
    own = [
        {"key": p.value, "description": "", "source": "gatehouse", "granted_from": None}
        for p in Permission
    ]
    app = [
        {
            "key": p.key,
            "description": p.description,
            "source": "app",
            "granted_from": p.granted_from.value,
        }
        for p in custom_roles.list_permissions(ctx.workspace_id)
    ]
    return {"data": s.PermissionOut(many=True).dump(own + app)}


@operation(
    "/permissions",
    "POST",
    scope="workspace",
    body=s.PermissionCreate,
    response=s.PermissionOut,
    status=201,
)
def create_permission(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Register a permission of the app's own (``tunnels:use``)."""
    row = custom_roles.register_permission(ctx.actor, ctx.workspace_id, **data)
    out = {
        "key": row.key,
        "description": row.description,
        "source": "app",
        "granted_from": row.granted_from.value,
    }
    return out, 201


@operation("/permissions/<permission>", "DELETE", scope="workspace", status=204)
def delete_permission(ctx: Ctx, permission: str) -> None:
    """Remove an app permission that no role holds any more."""
    custom_roles.delete_permission(ctx.actor, ctx.workspace_id, permission)
