"""Organizations: create, list, read, rename, delete, transfer ownership."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.db import db
from idp.orgs import services
from idp.orgs.models import Organization, Workspace
from idp.orgs.roles import Permission
from idp.pagination import Page


@operation("/orgs", "POST", scope="workspace", body=s.OrgCreate, response=s.OrgOut, status=201)
def create_org(ctx: Ctx, data: dict[str, Any]) -> Organization:
    """Create an organization (workspace keys)."""
    return services.create_org(
        ctx.actor,
        db.session.get(Workspace, ctx.workspace_id),
        slug=data["slug"],
        name=data["name"],
        parent_slug=data["parent"],
        member_cap=data["member_cap"],
    )


@operation("/orgs", scope="key", query=s.PageQuery, response=s.OrgOut, paged=True)
def list_orgs(ctx: Ctx, args: dict[str, Any]) -> Page[Organization]:
    """List the organizations this key can see."""
    only = None if ctx.actor.is_workspace else ctx.actor.org_id
    return services.list_orgs(ctx.workspace_id, only_id=only, **args)


@operation("/orgs/<slug>", permission=Permission.ORG_READ, response=s.OrgOut)
def get_org(ctx: Ctx) -> Organization:
    """Read an organization."""
    return ctx.org


@operation(
    "/orgs/<slug>", "PATCH", permission=Permission.ORG_UPDATE, body=s.OrgUpdate, response=s.OrgOut
)
def update_org(ctx: Ctx, data: dict[str, Any]) -> Organization:
    """Rename an organization or change its member cap (owners)."""
    return services.update_org(ctx.actor, ctx.org, **data)


@operation("/orgs/<slug>", "DELETE", permission=Permission.ORG_DELETE)
def delete_org(ctx: Ctx) -> None:
    """Soft-delete an organization (owners); its slug stays reserved."""
    services.delete_org(ctx.actor, ctx.org)


@operation(
    "/orgs/<slug>/transfer-ownership",
    "POST",
    permission=Permission.ORG_TRANSFER,
    body=s.TransferOwnership,
    response=s.MemberOut,
)
def transfer_ownership(ctx: Ctx, data: dict[str, Any]) -> Any:
    """Hand ownership to an existing member; the giving owner becomes admin."""
    return services.transfer_ownership(ctx.actor, ctx.org, **data)
