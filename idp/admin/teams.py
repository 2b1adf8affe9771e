"""Teams: create, list, read, rename or move, delete; members and leads."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.credentials.services import create_api_key
from idp.orgs import teams as service
from idp.orgs.models import Team, TeamMember
from idp.orgs.roles import Permission
from idp.pagination import Page


@operation(
    "/orgs/<slug>/teams",
    permission=Permission.TEAMS_READ,
    query=s.PageQuery,
    response=s.TeamOut,
    paged=True,
)
def list_teams(ctx: Ctx, args: dict[str, Any]) -> Page[Team]:
    """List the org's teams."""
    return service.list_teams(ctx.org.id, **args)


@operation(
    "/orgs/<slug>/teams",
    "POST",
    permission=Permission.TEAMS_WRITE,
    body=s.TeamCreate,
    response=s.TeamOut,
    status=201,
)
def create_team(ctx: Ctx, data: dict[str, Any]) -> Team:
    """Create a team, optionally nested under ``parent_id``."""
    return service.create_team(ctx.actor, ctx.org, **data)


@operation("/orgs/<slug>/teams/<team_id>", permission=Permission.TEAMS_READ, response=s.TeamOut)
def get_team(ctx: Ctx, team_id: str) -> Team:
    """Read one team."""
    return service.get_team(ctx.org.id, team_id)


@operation(
    "/orgs/<slug>/teams/<team_id>",
    "PATCH",
    permission=Permission.TEAMS_WRITE,
    body=s.TeamUpdate,
    response=s.TeamOut,
)
def update_team(ctx: Ctx, team_id: str, data: dict[str, Any]) -> Team:
    """Rename a team or move it (``parent_id``: another team, or null for the top)."""
    return service.update_team(ctx.actor, ctx.org, team_id, **data)


@operation("/orgs/<slug>/teams/<team_id>", "DELETE", permission=Permission.TEAMS_WRITE)
def delete_team(ctx: Ctx, team_id: str) -> None:
    """Delete a team with no nested teams."""
    service.delete_team(ctx.actor, ctx.org, team_id)


@operation(
    "/orgs/<slug>/teams/<team_id>/members",
    permission=Permission.TEAMS_READ,
    query=s.PageQuery,
    response=s.TeamMemberOut,
    paged=True,
)
def list_team_members(ctx: Ctx, team_id: str, args: dict[str, Any]) -> Page[TeamMember]:
    """List a team's members."""
    return service.list_team_members(ctx.org.id, team_id, **args)


@operation(
    "/orgs/<slug>/teams/<team_id>/members",
    "POST",
    permission=Permission.TEAM_MEMBERS_WRITE,
    body=s.TeamMemberAdd,
    response=s.TeamMemberOut,
    status=201,
)
def add_team_member(ctx: Ctx, team_id: str, data: dict[str, Any]) -> TeamMember:
    """Add an org member to the team (``is_lead`` to make them a lead)."""
    return service.add_team_member(
        ctx.actor, ctx.org, team_id, data["user_id"], is_lead=data["is_lead"]
    )


@operation(
    "/orgs/<slug>/teams/<team_id>/members/<user_id>",
    "PATCH",
    permission=Permission.TEAMS_WRITE,
    body=s.TeamMemberUpdate,
    response=s.TeamMemberOut,
)
def update_team_member(ctx: Ctx, team_id: str, user_id: str, data: dict[str, Any]) -> TeamMember:
    """Make a team member a lead, or not."""
    return service.set_team_lead(ctx.actor, ctx.org, team_id, user_id, data["is_lead"])


@operation(
    "/orgs/<slug>/teams/<team_id>/members/<user_id>",
    "DELETE",
    permission=Permission.TEAM_MEMBERS_WRITE,
)
def remove_team_member(ctx: Ctx, team_id: str, user_id: str) -> None:
    """Take a member off the team."""
    service.remove_team_member(ctx.actor, ctx.org, team_id, user_id)


@operation(
    "/orgs/<slug>/teams/<team_id>/api-keys",
    "POST",
    permission=Permission.API_KEYS_WRITE,
    body=s.TeamKeyCreate,
    response=s.ApiKeyCreated,
    status=201,
)
def create_team_key(ctx: Ctx, team_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A team's own API key (for CI/CD), shown once: it manages the team's members and acts
    with what the team was granted on resources, and holds nothing else in the org."""
    team = service.get_team(ctx.org.id, team_id)
    key, token = create_api_key(
        ctx.actor, ctx.workspace_id, name=data["name"], org=ctx.org, team=team
    )
    return {**s.ApiKeyOut().dump(key), "key": token}, 201
