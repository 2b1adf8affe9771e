"""Scopes below the org: the app's resource types, the org's resources, who holds what."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.orgs.roles import Permission
from idp.pagination import Page
from idp.resources import services
from idp.resources.models import Resource, ResourceType


@operation("/resource-types", scope="key", response=s.ResourceTypeOut, many=True)
def list_resource_types(ctx: Ctx) -> dict[str, Any]:
    """List the resource types the app declared, with their roles."""
    types = services.list_resource_types(ctx.workspace_id)
    return {"data": s.ResourceTypeOut(many=True).dump(types)}


@operation(
    "/resource-types",
    "POST",
    scope="workspace",
    body=s.ResourceTypeCreate,
    response=s.ResourceTypeOut,
    status=201,
)
def create_resource_type(ctx: Ctx, data: dict[str, Any]) -> ResourceType:
    """Declare a resource type (``project`` in ``tenant``) and its roles."""
    return services.create_resource_type(ctx.actor, ctx.workspace_id, **data)


@operation(
    "/orgs/<slug>/resources",
    permission=Permission.RESOURCES_READ,
    query=s.ResourceQuery,
    response=s.ResourceOut,
    paged=True,
)
def list_resources(ctx: Ctx, args: dict[str, Any]) -> Page[Resource]:
    """List the org's resources, optionally of one ``type``."""
    return services.list_resources(ctx.org, **args)


@operation(
    "/orgs/<slug>/resources",
    "POST",
    permission=Permission.RESOURCES_WRITE,
    body=s.ResourceCreate,
    response=s.ResourceOut,
    status=201,
)
def create_resource(ctx: Ctx, data: dict[str, Any]) -> Resource:
    """Create a resource of the org (its parent, if its type sits in another)."""
    return services.create_resource(ctx.actor, ctx.org, **data)


@operation(
    "/orgs/<slug>/resources/<rtype>/<rid>",
    permission=Permission.RESOURCES_READ,
    response=s.ResourceOut,
)
def get_resource(ctx: Ctx, rtype: str, rid: str) -> Resource:
    """Read one resource."""
    return services.get_resource(ctx.org, rtype, rid)


@operation(
    "/orgs/<slug>/resources/<rtype>/<rid>",
    "PATCH",
    permission=Permission.RESOURCES_WRITE,
    body=s.ResourceUpdate,
    response=s.ResourceOut,
)
def update_resource(ctx: Ctx, rtype: str, rid: str, data: dict[str, Any]) -> Resource:
    """Rename a resource or move it under another parent."""
    resource = services.get_resource(ctx.org, rtype, rid)
    return services.update_resource(ctx.actor, ctx.org, resource, data)


@operation(
    "/orgs/<slug>/resources/<rtype>/<rid>",
    "DELETE",
    permission=Permission.RESOURCES_WRITE,
    status=204,
)
def delete_resource(ctx: Ctx, rtype: str, rid: str) -> None:
    """Delete a resource with nothing inside it (its grants go with it)."""
    services.delete_resource(ctx.actor, ctx.org, services.get_resource(ctx.org, rtype, rid))


def _grant_out(
    user_id: str | None, team_id: str | None, role: str, mapping_id: str | None = None
) -> dict[str, Any]:
    return {"user_id": user_id, "team_id": team_id, "role": role, "mapping_id": mapping_id}


@operation(
    "/orgs/<slug>/resources/<rtype>/<rid>/members",
    permission=Permission.RESOURCES_READ,
    response=s.ResourceGrantOut,
    many=True,
)
def list_resource_members(ctx: Ctx, rtype: str, rid: str) -> dict[str, Any]:
    """List who holds a role on the resource itself (members and teams)."""
    resource = services.get_resource(ctx.org, rtype, rid)
    return {
        "data": [
            _grant_out(user_id, grant.team_id, key, grant.mapping_id)
            for grant, key, user_id in services.list_grants(resource)
        ]
    }


@operation(
    "/orgs/<slug>/resources/<rtype>/<rid>/members",
    "POST",
    permission=Permission.RESOURCES_WRITE,
    body=s.ResourceGrantSet,
    response=s.ResourceGrantOut,
    status=201,
)
def grant_resource_role(
    ctx: Ctx, rtype: str, rid: str, data: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """Give a member of the org, or a team, a role on the resource (and all below it)."""
    resource = services.get_resource(ctx.org, rtype, rid)
    services.grant_role(ctx.actor, ctx.org, resource, **data)
    return _grant_out(data["user_id"], data["team_id"], data["role"]), 201


@operation(
    "/orgs/<slug>/resources/<rtype>/<rid>/members/<principal_id>",
    "DELETE",
    permission=Permission.RESOURCES_WRITE,
    status=204,
)
def revoke_resource_role(ctx: Ctx, rtype: str, rid: str, principal_id: str) -> None:
    """Take away the role a member (user id) or team (team id) holds on the resource."""
    resource = services.get_resource(ctx.org, rtype, rid)
    is_team = principal_id.startswith("team_")
    services.revoke_role(
        ctx.actor,
        ctx.org,
        resource,
        user_id=None if is_team else principal_id,
        team_id=principal_id if is_team else None,
    )
