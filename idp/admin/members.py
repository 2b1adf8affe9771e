"""Members of an organization: list, add, read, change role or status, remove; role mappings."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.orgs import role_mappings, services
from idp.orgs.models import Membership, RoleMapping
from idp.orgs.role_book import org_roles
from idp.orgs.roles import Permission
from idp.people import services as people


@operation(
    "/orgs/<slug>/members",
    permission=Permission.MEMBERS_READ,
    query=s.MemberQuery,
    response=s.MemberOut,
    paged=True,
    page_fields={
        "counts": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "members per role key",
        }
    },
)
def list_members(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """List members, filtered by ``role`` and ``q`` (email or name), with counts per role."""
    book = org_roles(ctx.org)
    roles = [book.get(r).key for r in (args.pop("role") or "").split(",") if r]
    page = services.list_members(ctx.org.id, roles=roles, **args)
    return {
        "data": s.MemberOut(many=True).dump(page.items),
        "counts": services.count_members_by_role(ctx.org.id),
        "next_cursor": page.next_cursor,
    }


@operation(
    "/orgs/<slug>/members",
    "POST",
    permission=Permission.MEMBERS_ADD,
    body=s.MemberAdd,
    response=s.MemberOut,
    status=201,
)
def add_member(ctx: Ctx, data: dict[str, Any]) -> Membership:
    """Add a person directly (creating the workspace user if needed)."""
    return people.add_member(ctx.actor, ctx.org, **data)


@operation(
    "/orgs/<slug>/members/<user_id>", permission=Permission.MEMBERS_READ, response=s.MemberOut
)
def get_member(ctx: Ctx, user_id: str) -> Membership:
    """Read one member."""
    return services.get_membership(ctx.org.id, user_id)


@operation(
    "/orgs/<slug>/members/<user_id>",
    "PATCH",
    permission=Permission.MEMBERS_UPDATE,
    body=s.MemberUpdate,
    response=s.MemberOut,
)
def update_member(ctx: Ctx, user_id: str, data: dict[str, Any]) -> Membership:
    """Change a member's role and/or status (active, suspended)."""
    membership = services.get_membership(ctx.org.id, user_id)
    if "role" in data:
        membership = services.change_role(ctx.actor, ctx.org, user_id, data["role"])
    if "status" in data:
        membership = services.set_member_status(ctx.actor, ctx.org, user_id, data["status"])
    return membership


@operation("/orgs/<slug>/members/<user_id>", "DELETE", permission=Permission.MEMBERS_REMOVE)
def remove_member(ctx: Ctx, user_id: str) -> None:
    """Remove a member from the organization (the workspace user stays)."""
    services.remove_member(ctx.actor, ctx.org, user_id)


@operation(
    "/orgs/<slug>/role-mappings",
    permission=Permission.MEMBERS_READ,
    response=s.RoleMappingOut,
    many=True,
)
def list_role_mappings(ctx: Ctx) -> dict[str, Any]:
    """List the org's IdP group → role mappings."""
    mappings = role_mappings.list_role_mappings(ctx.org.id)
    return {"data": s.RoleMappingOut(many=True).dump(mappings)}


@operation(
    "/orgs/<slug>/role-mappings",
    "POST",
    permission=Permission.MEMBERS_UPDATE,
    body=s.RoleMappingSet,
    response=s.RoleMappingOut,
)
def set_role_mapping(ctx: Ctx, data: dict[str, Any]) -> RoleMapping:
    """Map an IdP group (displayName or externalId) to a role; members follow at once."""
    return role_mappings.set_role_mapping(ctx.actor, ctx.org, **data)


@operation(
    "/orgs/<slug>/role-mappings/<mapping_id>", "DELETE", permission=Permission.MEMBERS_UPDATE
)
def delete_role_mapping(ctx: Ctx, mapping_id: str) -> None:
    """Remove a mapping; its group's members keep only their other roles."""
    mapping = role_mappings.get_role_mapping(ctx.org.id, mapping_id=mapping_id)
    role_mappings.delete_role_mapping(ctx.actor, ctx.org, mapping)
