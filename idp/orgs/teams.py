"""Teams inside an org: create, rename, nest, delete, members and leads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from idp.actors import Actor, ActorKind
from idp.audit.services import record_org_event
from idp.db import db
from idp.errors import BadRequest, Conflict, Forbidden, NotFound
from idp.orgs.models import (
    Membership,
    MembershipStatus,
    Organization,
    Team,
    TeamMember,
    TeamSource,
)
from idp.orgs.roles import TEAM_SCOPE, Permission
from idp.orgs.services import check_permission, get_membership, validate_name
from idp.pagination import Page, paginate

MAX_DEPTH = 10
UNSET: Any = object()


def team_snapshot(team: Team) -> dict[str, Any]:
    return {"name": team.name, "parent_id": team.parent_id, "external_id": team.external_id}


def _audit(actor: Actor, org: Organization, action: str, team_id: str, **change: Any) -> None:
    record_org_event(actor, org, action, "team", team_id, **change)


def _refuse_if_provisioned(actor: Actor, team: Team) -> None:
    """A team the IdP provisions changes only through the IdP (its members may map to roles)."""
    if team.source is TeamSource.SCIM and actor.kind is not ActorKind.SCIM_TOKEN:
        raise Conflict("managed_by_directory", "This team is managed by the organization's IdP")


def is_team_lead(team: Team, user_id: str) -> bool:
    """Whether the person leads the team, as an active member of its org."""
    return (
        db.session.scalar(
            select(TeamMember.is_lead)
            .join(Membership, Membership.id == TeamMember.membership_id)
            .where(
                TeamMember.team_id == team.id,
                Membership.user_id == user_id,
                Membership.status == MembershipStatus.ACTIVE,
            )
        )
        is True
    )


def team_leads(org_id: str) -> dict[str, list[str]]:
    """Each team's leads (the emails the org knows them by), one query for the org."""
    rows = db.session.execute(
        select(TeamMember.team_id, Membership.email)
        .join(Membership, Membership.id == TeamMember.membership_id)
        .where(Membership.org_id == org_id, TeamMember.is_lead.is_(True))
        .order_by(Membership.email)
    )
    leads: dict[str, list[str]] = {}
    for team_id, email in rows:
        leads.setdefault(team_id, []).append(email or "")
    return leads


def check_team_permission(actor: Actor, team: Team, permission: Permission) -> None:
    """The org role's permission, or -- for what a team scope holds (``TEAM_SCOPE``) -- the
    team's own API key or one of its leads, on this team only."""
    held = actor.role is not None and actor.role.key != TEAM_SCOPE.key
    if held and actor.can(permission).allowed:
        return
    if permission.value in TEAM_SCOPE.permissions and (
        actor.authority_on_team(team.org_id, team.id) is not None
        or (actor.kind is ActorKind.USER and actor.user_id and is_team_lead(team, actor.user_id))
    ):
        return
    raise Forbidden("forbidden", f"This needs the {permission.value} permission on this team")


def get_team(org_id: str, team_id: str) -> Team:
    team = db.session.scalar(select(Team).where(Team.org_id == org_id, Team.id == team_id))
    if team is None:
        raise NotFound("team_not_found", "No such team in this organization")
    return team


def list_teams(org_id: str, *, cursor: str | None = None, limit: int = 50) -> Page[Team]:
    return paginate(select(Team).where(Team.org_id == org_id), Team.id, cursor=cursor, limit=limit)


def _check_parent(org_id: str, team_id: str | None, parent_id: str | None) -> None:
    """The parent must be a team of the same org, not the team itself nor one below it, and
    the org must have departments (nested teams) on."""
    if parent_id is not None:
        org = db.session.get(Organization, org_id)
        if org is not None and not org.nested_teams:
            raise BadRequest("nested_teams_off", "This organization keeps a flat team structure")
    depth = 1
    current = parent_id
    while current is not None:
        if current == team_id:
            raise BadRequest("team_cycle", "A team cannot be nested under itself")
        depth += 1
        if depth > MAX_DEPTH:
            raise BadRequest("team_too_deep", f"Teams nest at most {MAX_DEPTH} levels")
        current = get_team(org_id, current).parent_id


def create_team(
    actor: Actor,
    org: Organization,
    *,
    name: str,
    parent_id: str | None = None,
    external_id: str | None = None,
    source: TeamSource = TeamSource.ADMIN,
) -> Team:
    check_permission(actor, Permission.TEAMS_WRITE)
    _check_parent(org.id, None, parent_id)
    team = Team(
        org_id=org.id,
        name=validate_name(name),
        parent_id=parent_id,
        external_id=external_id,
        source=source,
    )
    db.session.add(team)
    db.session.flush()
    _audit(actor, org, "team.created", team.id, after=team_snapshot(team))
    return team


def update_team(
    actor: Actor,
    org: Organization,
    team_id: str,
    *,
    name: str = UNSET,
    parent_id: Any = UNSET,
    external_id: Any = UNSET,
) -> Team:
    """Rename a team, move it under another parent (``None``: to the top), or re-key it."""
    check_permission(actor, Permission.TEAMS_WRITE)
    team = get_team(org.id, team_id)
    _refuse_if_provisioned(actor, team)
    before = team_snapshot(team)
    if name is not UNSET:
        team.name = validate_name(name)
    if external_id is not UNSET:
        team.external_id = external_id
    if parent_id is not UNSET:
        _check_parent(org.id, team.id, parent_id)
        team.parent_id = parent_id
    after = team_snapshot(team)
    if after != before:
        db.session.flush()
        _audit(actor, org, "team.updated", team.id, before=before, after=after)
    return team


def delete_team(actor: Actor, org: Organization, team_id: str) -> None:
    check_permission(actor, Permission.TEAMS_WRITE)
    team = get_team(org.id, team_id)
    _refuse_if_provisioned(actor, team)
    children = db.session.scalar(
        select(func.count()).select_from(Team).where(Team.parent_id == team.id)
    )
    if children:
        raise Conflict("team_has_children", "Move or delete the teams nested under it first")
    before = team_snapshot(team)
    db.session.delete(team)
    db.session.flush()
    _audit(actor, org, "team.deleted", team_id, before=before)


def _team_member(team_id: str, membership_id: str) -> TeamMember | None:
    return db.session.get(TeamMember, (team_id, membership_id))


def add_team_member(
    actor: Actor, org: Organization, team_id: str, user_id: str, *, is_lead: bool = False
) -> TeamMember:
    """Put an org member on the team: an admin, or the team's lead or key (who cannot make
    leads: ``is_lead`` needs ``teams:write``)."""
    team = get_team(org.id, team_id)
    check_team_permission(actor, team, Permission.TEAM_MEMBERS_WRITE)
    if is_lead:
        check_permission(actor, Permission.TEAMS_WRITE)
    _refuse_if_provisioned(actor, team)
    membership = get_membership(org.id, user_id)
    if _team_member(team.id, membership.id) is not None:
        raise Conflict("already_team_member", "That member is already on this team")
    member = TeamMember(team_id=team.id, membership_id=membership.id, is_lead=is_lead)
    db.session.add(member)
    db.session.flush()
    _audit(actor, org, "team.member_added", team.id, after={"user_id": user_id, "is_lead": is_lead})
    return member


def _get_team_member(org: Organization, team_id: str, user_id: str) -> TeamMember:
    team = get_team(org.id, team_id)
    membership = get_membership(org.id, user_id)
    member = _team_member(team.id, membership.id)
    if member is None:
        raise NotFound("team_member_not_found", "That member is not on this team")
    return member


def remove_team_member(actor: Actor, org: Organization, team_id: str, user_id: str) -> None:
    team = get_team(org.id, team_id)
    check_team_permission(actor, team, Permission.TEAM_MEMBERS_WRITE)
    _refuse_if_provisioned(actor, team)
    member = _get_team_member(org, team_id, user_id)
    if member.is_lead:  # a lead's place is the org's admins' to change
        check_permission(actor, Permission.TEAMS_WRITE)
    db.session.delete(member)
    db.session.flush()
    _audit(actor, org, "team.member_removed", team_id, before={"user_id": user_id})


def set_team_lead(
    actor: Actor, org: Organization, team_id: str, user_id: str, is_lead: bool
) -> TeamMember:
    check_permission(actor, Permission.TEAMS_WRITE)
    member = _get_team_member(org, team_id, user_id)
    if member.is_lead is not is_lead:
        member.is_lead = is_lead
        db.session.flush()
        _audit(
            actor,
            org,
            "team.lead_changed",
            team_id,
            before={"user_id": user_id, "is_lead": not is_lead},
            after={"user_id": user_id, "is_lead": is_lead},
        )
    return member


def list_team_members(
    org_id: str, team_id: str, *, cursor: str | None = None, limit: int = 50
) -> Page[TeamMember]:
    get_team(org_id, team_id)
    query = (
        select(TeamMember)
        .join(TeamMember.membership)
        .where(TeamMember.team_id == team_id, Membership.org_id == org_id)
    )
    return paginate(query, TeamMember.membership_id, cursor=cursor, limit=limit)
