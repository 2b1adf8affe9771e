"""/Groups (RFC 7644 §3): a provisioned group is a team; its members are the org's users."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from idp.db import db
from idp.directory import services as directory
from idp.directory.models import DirectoryGroup
from idp.orgs.models import Team, TeamMember
from scim import quirks
from scim.api import bp, check_if_match, ctx, read_json, resource_response, scim_response
from scim.errors import ScimError, invalid_value, not_found
from scim.filters import Column, FilterTarget, Related, compile_filter
from scim.members import split_member_operations
from scim.patch import apply_patch, parse_patch
from scim.resources import (
    ListParams,
    canonical_document,
    external_id,
    list_params,
    list_response,
    project,
    schemas_of,
    sorting,
    wants,
)
from scim.schemas import group_type


def group_target() -> FilterTarget:
    """Where each filterable attribute of a Group lives in SQL."""
    return FilterTarget(
        group_type(),
        DirectoryGroup.attributes,
        {
            "id": Column(DirectoryGroup.team_id),
            "displayName": Column(Team.name),
            "externalId": Column(Team.external_id),
            "meta.created": Column(DirectoryGroup.created_at, kind="dateTime"),
            "meta.lastModified": Column(DirectoryGroup.updated_at, kind="dateTime"),
        },
        dialect=db.engine.dialect.name,
        # Entra asks "members[value eq ...]": members are rows, not part of the document.
        related={
            "members": Related(
                TeamMember.__table__,
                TeamMember.team_id == DirectoryGroup.team_id,
                {"value": Column(TeamMember.membership_id)},
            )
        },
    )


def group_resource(group: DirectoryGroup, members: list[str] | None) -> dict[str, Any]:
    """The SCIM representation; ``members`` is None when the response leaves them out."""
    base = ctx().base_url
    resource: dict[str, Any] = {
        "schemas": schemas_of(group.attributes, group_type()),
        "id": group.team_id,
    }
    if group.team.external_id is not None:
        resource["externalId"] = group.team.external_id
    resource["displayName"] = group.team.name
    resource.update(group.attributes)
    if members:
        resource["members"] = [
            {"value": m, "$ref": f"{base}/Users/{m}", "type": "User"} for m in members
        ]
    resource["meta"] = {
        "resourceType": "Group",
        "created": group.created_at.isoformat(),
        "lastModified": group.updated_at.isoformat(),
        "location": f"{base}/Groups/{group.team_id}",
        "version": f'W/"{group.version}"',
    }
    return resource


def _members_of(team_ids: list[str]) -> dict[str, list[str]]:
    """Members of a page of groups, in one query."""
    found: dict[str, list[str]] = {}
    if team_ids:
        rows = db.session.execute(
            select(TeamMember.team_id, TeamMember.membership_id)
            .where(TeamMember.team_id.in_(team_ids))
            .order_by(TeamMember.team_id, TeamMember.membership_id)
        )
        for team_id, membership_id in rows:
            found.setdefault(team_id, []).append(membership_id)
    return found


def group_input(body: dict[str, Any]) -> tuple[dict[str, Any], list[str] | None]:
    """A Group body as the service takes it, and its member ids (None: members not given)."""
    document = canonical_document(body, group_type())
    display_name = document.pop("displayName", None)
    if not isinstance(display_name, str) or not display_name.strip():
        raise invalid_value("displayName is required")
    members = document.pop("members", None)
    member_ids = None
    if members is not None:
        member_ids = []
        for member in members:
            if member.get("type", "User") != "User" or not isinstance(member.get("value"), str):
                raise invalid_value("Group members must be Users, given by their id")
            member_ids.append(member["value"])
    data = {
        "display_name": display_name,
        "external_id": external_id(document),
        "attributes": document,
    }
    return data, member_ids


def _groups_query() -> Any:
    return (
        select(DirectoryGroup)
        .join(DirectoryGroup.team)
        .options(contains_eager(DirectoryGroup.team))
        .where(DirectoryGroup.org_id == ctx().org.id)
    )


def _load(group_id: str) -> DirectoryGroup:
    group = db.session.scalar(_groups_query().where(DirectoryGroup.team_id == group_id))
    if group is None:
        raise not_found(f"No group {group_id!r}")
    return group


def _full(group: DirectoryGroup) -> dict[str, Any]:
    return group_resource(group, _members_of([group.team_id]).get(group.team_id))


def list_groups(params: ListParams) -> dict[str, Any]:
    target = group_target()
    query = _groups_query()
    if params.filter:
        query = query.where(compile_filter(params.filter, target))
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    groups: list[DirectoryGroup] = []
    if params.count:
        groups = list(
            db.session.scalars(
                query.order_by(*sorting(params, target), DirectoryGroup.team_id)
                .offset(params.start_index - 1)
                .limit(params.count)
            )
        )
    # excludedAttributes=members must not load members (they may be many).
    members = (
        _members_of([g.team_id for g in groups]) if wants(group_type(), params, "members") else {}
    )
    resources = [
        project(group_resource(g, members.get(g.team_id)), group_type(), params) for g in groups
    ]
    return list_response(resources, total, params)


@bp.get("/Groups")
def get_groups() -> Response:
    return scim_response(list_groups(list_params(request.args.to_dict())))


@bp.post("/Groups/.search")
def search_groups() -> Response:
    return scim_response(list_groups(list_params(read_json(), search=True)))


@bp.post("/Groups")
def create_group() -> Response:
    data, member_ids = group_input(quirks.normalize_request(read_json(), group_type(), "POST"))
    group = directory.create_group(ctx().actor, ctx().org, **data, member_ids=member_ids or ())
    return resource_response(_full(group), 201)


@bp.get("/Groups/<group_id>")
def get_group(group_id: str) -> Response:
    params = list_params(request.args.to_dict())
    group = _load(group_id)
    members = (
        _members_of([group_id]).get(group_id) if wants(group_type(), params, "members") else None
    )
    return resource_response(project(group_resource(group, members), group_type(), params))


@bp.put("/Groups/<group_id>")
def replace_group(group_id: str) -> Response:
    group = _load(group_id)
    check_if_match(f'W/"{group.version}"')
    data, member_ids = group_input(quirks.normalize_request(read_json(), group_type(), "PUT"))
    directory.update_group(ctx().actor, ctx().org, group, **data)
    directory.change_group_members(ctx().actor, ctx().org, group, replace=member_ids or [])
    return resource_response(_full(group))


@bp.patch("/Groups/<group_id>")
def patch_group(group_id: str) -> Response:
    """Member changes go to the database in bulk; the group's own attributes are patched."""
    group = _load(group_id)
    check_if_match(f'W/"{group.version}"')
    operations = parse_patch(quirks.normalize_request(read_json(), group_type(), "PATCH"))
    others, members = split_member_operations(operations)
    if others:
        patched = apply_patch(group_resource(group, None), others, group_type())
        data, _ = group_input(patched)
        directory.update_group(ctx().actor, ctx().org, group, **data)
    if members.remove_all or members.replace is not None or members.add or members.remove:
        directory.change_group_members(
            ctx().actor,
            ctx().org,
            group,
            add=members.add,
            remove=members.remove,
            replace=[] if members.remove_all and members.replace is None else members.replace,
        )
    return scim_response(None, 204)


@bp.delete("/Groups/<group_id>")
def delete_group(group_id: str) -> Response:
    group = _load(group_id)
    check_if_match(f'W/"{group.version}"')
    directory.delete_group(ctx().actor, ctx().org, group)
    return scim_response(None, 204)


@bp.post("/.search")
def search_root() -> Response:
    """Searching across resource types (RFC 7644 §3.4.3) is not offered; search per type."""
    raise ScimError(501, "Search /Users/.search or /Groups/.search instead")
