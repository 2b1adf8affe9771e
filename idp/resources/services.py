"""Scopes below the org, one function per action, and the decision that walks up them.

The app declares resource types and their roles (workspace authority), creates the org's
resources (``resources:write``) and grants members or teams a role on one. A role on a
resource holds on everything below it; the org role holds everywhere in the org. A grant
gives nothing at the org itself, so a person granted a project only gains no org-wide
access; removing someone from a resource keeps their membership, and removing them from
the org removes every grant they held there (the grants' foreign key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, literal, or_, select, union_all
from sqlalchemy.orm import aliased

from idp.actors import Actor
from idp.audit.services import record_event, record_org_event
from idp.db import db
from idp.errors import BadRequest, Conflict, NotFound
from idp.orgs.models import Membership, Organization, TeamMember
from idp.orgs.role_book import bump_roles_version, role_book
from idp.orgs.roles import ROLE_KEY, Permission
from idp.orgs.services import (
    check_permission,
    check_workspace_authority,
    get_membership,
    lock_org,
    validate_name,
)
from idp.orgs.teams import get_team
from idp.pagination import Page, decode_cursor, encode_cursor, paginate
from idp.resources.models import Resource, ResourceGrant, ResourceRole, ResourceType

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")
MAX_DEPTH = 16  # how deep types may nest (tenant → project → environment ...)
MAX_ROLES = 50


# --- types ---------------------------------------------------------------------------------


def list_resource_types(workspace_id: str) -> list[ResourceType]:
    return list(
        db.session.scalars(
            select(ResourceType)
            .where(ResourceType.workspace_id == workspace_id)
            .order_by(ResourceType.key)
        )
    )


def get_resource_type(workspace_id: str, key: str) -> ResourceType:
    found = db.session.scalar(
        select(ResourceType).where(
            ResourceType.workspace_id == workspace_id, ResourceType.key == key
        )
    )
    if found is None:
        raise BadRequest("unknown_resource_type", f"No resource type {key!r}")
    return found


def type_roles(type_id: str) -> list[ResourceRole]:
    return list(
        db.session.scalars(
            select(ResourceRole).where(ResourceRole.type_id == type_id).order_by(ResourceRole.key)
        )
    )


def type_snapshot(kind: ResourceType) -> dict[str, Any]:
    return {
        "key": kind.key,
        "parent_id": kind.parent_id,
        "invite_outsiders": kind.invite_outsiders,
        "roles": {r.key: sorted(r.permissions) for r in type_roles(kind.id)},
    }


def _depth(kind: ResourceType) -> int:
    depth = 1
    while kind.parent_id is not None:
        kind = db.session.get(ResourceType, kind.parent_id)
        depth += 1
    return depth


def create_resource_type(
    actor: Actor,
    workspace_id: str,
    *,
    key: str,
    roles: Sequence[dict[str, Any]],
    name: str | None = None,
    parent: str | None = None,
    invite_outsiders: bool = False,
) -> ResourceType:
    """Declare a type of resource and its roles (each ``{"key", "name"?, "permissions"}``,
    permissions Gatehouse's or the app's own). ``invite_outsiders``: people outside the org
    may be invited to one (as guests of the org); otherwise only its members."""
    check_workspace_authority(actor, "Resource types need workspace authority")
    if not isinstance(key, str) or not ROLE_KEY.match(key):
        raise BadRequest("invalid_type_key", "A type key is lowercase letters, digits, - and _")
    if parent == key:
        raise BadRequest("type_cycle", "A resource type cannot sit in itself")
    if db.session.scalar(
        select(ResourceType.id).where(
            ResourceType.workspace_id == workspace_id, ResourceType.key == key
        )
    ):
        raise Conflict("resource_type_exists", f"A resource type {key!r} already exists")
    parent_type = get_resource_type(workspace_id, parent) if parent else None
    if parent_type is not None and _depth(parent_type) >= MAX_DEPTH:
        raise BadRequest("too_deep", f"Resource types nest at most {MAX_DEPTH} deep")
    if not roles or len(roles) > MAX_ROLES:
        raise BadRequest("invalid_roles", f"A type has 1 to {MAX_ROLES} roles")
    known = role_book(workspace_id, None).known_permissions()
    kind = ResourceType(
        workspace_id=workspace_id,
        key=key,
        name=validate_name(name or key.replace("_", " ").title()),
        parent_id=parent_type.id if parent_type else None,
        invite_outsiders=bool(invite_outsiders),
    )
    db.session.add(kind)
    db.session.flush()
    seen: set[str] = set()
    for role in roles:
        role_key = role.get("key")
        if not isinstance(role_key, str) or not ROLE_KEY.match(role_key) or role_key in seen:
            raise BadRequest("invalid_role_key", f"Bad or repeated role key {role_key!r}")
        seen.add(role_key)
        permissions = sorted(set(role.get("permissions") or []))
        unknown = [p for p in permissions if p not in known]
        if unknown:
            raise BadRequest(
                "unknown_permission", f"Unknown permission {unknown[0]!r}", permissions=unknown
            )
        db.session.add(
            ResourceRole(
                type_id=kind.id,
                key=role_key,
                name=validate_name(role.get("name") or role_key.replace("_", " ").title()),
                permissions=permissions,
            )
        )
    db.session.flush()
    bump_roles_version(workspace_id)  # the processes' catalogues of types and roles follow
    record_event(
        actor,
        "resource_type.created",
        workspace_id=workspace_id,
        org_id=None,
        target_type="resource_type",
        target_id=kind.id,
        after=type_snapshot(kind),
    )
    return kind


# --- resources -----------------------------------------------------------------------------


def resource_snapshot(resource: Resource) -> dict[str, Any]:
    return {
        "type_id": resource.type_id,
        "id": resource.external_id,
        "name": resource.name,
        "parent_id": resource.parent_id,
    }


def resource_ref(resource_id: str | None) -> dict[str, str] | None:
    """How the app names a resource: ``{"type", "id"}`` (None for none)."""
    found = db.session.get(Resource, resource_id) if resource_id else None
    if found is None:
        return None
    kind = db.session.get(ResourceType, found.type_id)  # identity-mapped after the first
    return {"type": kind.key if kind else "", "id": found.external_id}


def find_resource(org_id: str, type_id: str, external_id: str) -> Resource | None:
    return db.session.scalar(
        select(Resource).where(
            Resource.org_id == org_id,
            Resource.type_id == type_id,
            Resource.external_id == external_id,
        )
    )


def get_resource(org: Organization, type_key: str, external_id: str) -> Resource:
    """One of the org's resources; another org's is as unknown as one that never was."""
    kind = db.session.scalar(
        select(ResourceType).where(
            ResourceType.workspace_id == org.workspace_id, ResourceType.key == type_key
        )
    )
    found = find_resource(org.id, kind.id, external_id) if kind else None
    if found is None:
        raise NotFound("resource_not_found", "No such resource in this organization")
    return found


def _parent(org: Organization, kind: ResourceType, parent: dict[str, Any] | None) -> str | None:
    """The id of the resource's parent: required, and of the parent type, when the type has
    one; refused when it has none."""
    if kind.parent_id is None:
        if parent:
            raise BadRequest("unexpected_parent", f"A {kind.key} sits directly in the org")
        return None
    if not parent:
        raise BadRequest("parent_required", f"A {kind.key} needs its parent")
    parent_type = db.session.get(ResourceType, kind.parent_id)
    if parent.get("type") != parent_type.key:
        raise BadRequest("wrong_parent_type", f"A {kind.key} sits in a {parent_type.key}")
    found = find_resource(org.id, parent_type.id, str(parent.get("id", "")))
    if found is None:  # another org's resource is unknown here
        raise BadRequest("unknown_parent", "No such parent resource in this organization")
    return found.id


def create_resource(
    actor: Actor,
    org: Organization,
    *,
    type: str,
    id: str,
    name: str | None = None,
    parent: dict[str, Any] | None = None,
) -> Resource:
    check_permission(actor, Permission.RESOURCES_WRITE)
    kind = get_resource_type(org.workspace_id, type)
    if not isinstance(id, str) or not EXTERNAL_ID.match(id):
        raise BadRequest("invalid_resource_id", "A resource id is 1 to 255 of A-Z a-z 0-9 . _ : -")
    if find_resource(org.id, kind.id, id) is not None:
        raise Conflict("resource_exists", f"This organization already has {type} {id!r}")
    resource = Resource(
        org_id=org.id,
        type_id=kind.id,
        external_id=id,
        name=validate_name(name) if name is not None else None,
        parent_id=_parent(org, kind, parent),
    )
    db.session.add(resource)
    db.session.flush()
    record_org_event(
        actor, org, "resource.created", "resource", resource.id, after=resource_snapshot(resource)
    )
    return resource


def update_resource(
    actor: Actor, org: Organization, resource: Resource, changes: dict[str, Any]
) -> Resource:
    """Rename a resource, or move it to another parent of its parent type."""
    check_permission(actor, Permission.RESOURCES_WRITE)
    before = resource_snapshot(resource)
    if "name" in changes:
        resource.name = validate_name(changes["name"]) if changes["name"] is not None else None
    if "parent" in changes:
        kind = db.session.get(ResourceType, resource.type_id)
        parent_id = _parent(org, kind, changes["parent"])
        if parent_id is not None and resource.id in ancestors(parent_id) | {parent_id}:
            raise BadRequest("resource_cycle", "A resource cannot sit inside itself")
        resource.parent_id = parent_id
    db.session.flush()
    record_org_event(
        actor,
        org,
        "resource.updated",
        "resource",
        resource.id,
        before=before,
        after=resource_snapshot(resource),
    )
    return resource


def delete_resource(actor: Actor, org: Organization, resource: Resource) -> None:
    check_permission(actor, Permission.RESOURCES_WRITE)
    if db.session.scalar(select(Resource.id).where(Resource.parent_id == resource.id).limit(1)):
        raise Conflict("resource_has_children", "Delete or move what is inside it first")
    before = resource_snapshot(resource)
    db.session.delete(resource)
    db.session.flush()
    record_org_event(actor, org, "resource.deleted", "resource", resource.id, before=before)


def list_resources(
    org: Organization,
    *,
    type: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Resource]:
    query = select(Resource).where(Resource.org_id == org.id)
    if type:
        query = query.where(Resource.type_id == get_resource_type(org.workspace_id, type).id)
    return paginate(query, Resource.id, cursor=cursor, limit=limit)


def ancestors(resource_id: str) -> set[str]:
    """The resource's ancestors' ids (not itself), by a recursive query."""
    return set(_chain(resource_id)) - {resource_id}


def _chain(resource_id: str) -> list[str]:
    up = (
        select(Resource.id, Resource.parent_id)
        .where(Resource.id == resource_id)
        .cte("chain", recursive=True)
    )
    parent = aliased(Resource)
    up = up.union_all(select(parent.id, parent.parent_id).where(parent.id == up.c.parent_id))
    return list(db.session.scalars(select(up.c.id)))


# --- grants --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    membership_id: str | None = None
    team_id: str | None = None


def _principal(org: Organization, user_id: str | None, team_id: str | None) -> Principal:
    if (user_id is None) == (team_id is None):
        raise BadRequest("one_principal", "Name either user_id or team_id")
    if user_id is not None:
        return Principal(membership_id=get_membership(org.id, user_id).id)
    return Principal(team_id=get_team(org.id, team_id or "").id)


def _grant_of(resource: Resource, principal: Principal) -> ResourceGrant | None:
    return db.session.scalar(
        select(ResourceGrant).where(
            ResourceGrant.resource_id == resource.id,
            ResourceGrant.mapping_id.is_(None),  # given by hand, not by a group's mapping
            ResourceGrant.membership_id == principal.membership_id
            if principal.membership_id
            else ResourceGrant.team_id == principal.team_id,
        )
    )


def grant_role(
    actor: Actor,
    org: Organization,
    resource: Resource,
    *,
    role: str,
    user_id: str | None = None,
    team_id: str | None = None,
) -> ResourceGrant:
    """Give a member (already in the org) or a team a role of the resource's type there;
    replaces the role they held on it."""
    check_permission(actor, Permission.RESOURCES_WRITE)
    lock_org(org.id)  # the member is not removed while the grant is made
    principal = _principal(org, user_id, team_id)
    held = resource_role(resource, role)
    grant, before_role = put_grant(org.id, resource, principal, held.id)
    before = None if before_role is None else {"role_id": before_role}
    record_org_event(
        actor,
        org,
        "resource.role_granted",
        "resource",
        resource.id,
        before=before,
        after={"user_id": user_id, "team_id": team_id, "role": role},
    )
    return grant


def revoke_role(
    actor: Actor,
    org: Organization,
    resource: Resource,
    *,
    user_id: str | None = None,
    team_id: str | None = None,
) -> None:
    """Take away the role a member or team holds on the resource (the membership stays)."""
    check_permission(actor, Permission.RESOURCES_WRITE)
    grant = _grant_of(resource, _principal(org, user_id, team_id))
    if grant is None:
        raise NotFound("grant_not_found", "They hold no role on this resource")
    db.session.delete(grant)
    db.session.flush()
    record_org_event(
        actor,
        org,
        "resource.role_revoked",
        "resource",
        resource.id,
        before={"user_id": user_id, "team_id": team_id, "role_id": grant.role_id},
    )


def list_grants(resource: Resource) -> list[tuple[ResourceGrant, str, str | None]]:
    """The resource's grants: (grant, role key, the member's user id or None for a team)."""
    rows = db.session.execute(
        select(ResourceGrant, ResourceRole.key, Membership.user_id)
        .join(ResourceRole, ResourceRole.id == ResourceGrant.role_id)
        .outerjoin(Membership, Membership.id == ResourceGrant.membership_id)
        .where(ResourceGrant.resource_id == resource.id)
        .order_by(ResourceGrant.id)
    )
    return [(grant, key, user_id) for grant, key, user_id in rows]


def resource_role(resource: Resource, key: str) -> ResourceRole:
    """A role of the resource's type; ``unknown_role`` (400) otherwise."""
    held = db.session.scalar(
        select(ResourceRole).where(
            ResourceRole.type_id == resource.type_id, ResourceRole.key == key
        )
    )
    if held is None:
        raise BadRequest("unknown_role", f"Resources of this type have no role {key!r}")
    return held


def put_grant(
    org_id: str, resource: Resource, principal: Principal, role_id: str
) -> tuple[ResourceGrant, str | None]:
    """The principal's grant on the resource set to ``role_id`` (made, or its role
    replaced); with the role it held before, if any."""
    grant = _grant_of(resource, principal)
    before = grant.role_id if grant is not None else None
    if grant is None:
        grant = ResourceGrant(
            org_id=org_id,
            resource_id=resource.id,
            type_id=resource.type_id,
            membership_id=principal.membership_id,
            team_id=principal.team_id,
            role_id=role_id,
        )
        db.session.add(grant)
    grant.role_id = role_id
    db.session.flush()
    return grant, before


# --- the decision --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopedDecision:
    allowed: bool
    role: str | None  # the role that decided: the org role, or the resource role granting it
    reason: str
    scope: dict[str, str] | None = None  # where the granting role is held, below the org


def _decision_statement() -> Any:
    """Built once: the resource found by the app's id, its chain walked up in SQL, each link
    with the member's (or their teams') grant there, nearest first."""
    r, t = Resource.__table__.c, ResourceType.__table__.c
    anchor = (
        select(r.id, r.parent_id, r.external_id, t.key.label("type_key"), literal(0).label("depth"))
        .join(ResourceType.__table__, t.id == r.type_id)
        .where(
            r.org_id == bindparam("org_id"),
            t.workspace_id == bindparam("workspace_id"),
            t.key == bindparam("type_key"),
            r.external_id == bindparam("external_id"),
        )
        .cte("scope", recursive=True)
    )
    up, up_type = Resource.__table__.alias("up"), ResourceType.__table__.alias("up_type")
    chain = anchor.union_all(
        select(up.c.id, up.c.parent_id, up.c.external_id, up_type.c.key, anchor.c.depth + 1)
        .join(up_type, up_type.c.id == up.c.type_id)
        .where(up.c.id == anchor.c.parent_id, anchor.c.depth < MAX_DEPTH)
    )
    g, rr = ResourceGrant.__table__.c, ResourceRole.__table__.c
    teams = select(TeamMember.team_id).where(TeamMember.membership_id == bindparam("member"))
    return (
        select(chain.c.depth, chain.c.type_key, chain.c.external_id, rr.key, rr.permissions)
        .select_from(chain)
        .outerjoin(
            ResourceGrant.__table__,
            (g.resource_id == chain.c.id)
            & or_(
                g.membership_id == bindparam("member"),
                g.team_id.in_(teams),
                g.team_id == bindparam("team"),
            ),
        )
        .outerjoin(ResourceRole.__table__, rr.id == g.role_id)
        .order_by(chain.c.depth)
    )


_DECISION = _decision_statement()


def decide_on_resource(
    workspace_id: str,
    membership_id: str,
    role: str | None,
    org_permissions: Iterable[str],
    permission: str,
    org_id: str,
    ref: dict[str, str],
    *,
    team_id: str = "",
) -> ScopedDecision:
    """May the (active) member do ``permission`` on the resource ``ref`` (``{"type", "id"}``):
    by their org role, or by a role they or one of their teams hold on the resource or
    anything above it. One query (``unknown_resource`` if it is not the org's)."""
    rows = db.session.execute(
        _DECISION,
        {
            "org_id": org_id,
            "workspace_id": workspace_id,
            "type_key": str(ref.get("type", "")),
            "external_id": str(ref.get("id", "")),
            "member": membership_id,
            "team": team_id,  # a team deciding for itself (its own key): "" for a member
        },
    ).all()
    if not rows:
        return ScopedDecision(False, None, "unknown_resource")
    if permission in set(org_permissions):
        return ScopedDecision(True, role, "granted", None)
    for _depth, type_key, external_id, key, permissions in rows:  # nearest grant first
        if key is not None and permission in (permissions or ()):
            return ScopedDecision(True, key, "granted", {"type": type_key, "id": external_id})
    return ScopedDecision(False, role, "permission_not_in_role")


def _lookup_statements() -> tuple[Any, Any]:
    """Built once: a page of the org's resources of one type (with each one's parent), all of
    them, or those under a grant of the given roles to the member or their teams."""
    r = Resource.__table__.c
    parent, parent_type = Resource.__table__.alias("parent"), ResourceType.__table__.alias("pt")
    page = (
        select(r.id, r.external_id, r.name, parent.c.external_id, parent_type.c.key)
        .select_from(Resource.__table__)
        .outerjoin(parent, parent.c.id == r.parent_id)
        .outerjoin(parent_type, parent_type.c.id == parent.c.type_id)
        .where(
            r.org_id == bindparam("org_id"),
            r.type_id == bindparam("type_id"),
            r.id > bindparam("after"),
        )
        .order_by(r.id)
        .limit(bindparam("limit"))
    )
    g = ResourceGrant.__table__.c
    teams = select(TeamMember.team_id).where(TeamMember.membership_id == bindparam("member"))

    common = (g.org_id == bindparam("org_id"), g.role_id.in_(bindparam("roles", expanding=True)))
    # Granted on the type itself: read off the index. Granted above it: walked down to it.
    on_type = g.type_id == bindparam("type_id")
    direct = (  # each form on its own index
        select(g.resource_id).where(g.membership_id == bindparam("member"), on_type, *common),
        select(g.resource_id).where(g.team_id.in_(teams), on_type, *common),
    )
    above = (
        select(g.resource_id.label("id"))
        .where(
            *common,
            or_(g.membership_id == bindparam("member"), g.team_id.in_(teams)),
            g.type_id != bindparam("type_id"),
        )
        .cte("above", recursive=True)
    )
    below = Resource.__table__.alias("below")
    above = above.union_all(select(below.c.id).join(above, below.c.parent_id == above.c.id))
    reachable = union_all(*direct, select(above.c.id))  # flat: SQLite nests no compounds
    return page, page.where(r.id.in_(reachable))


_EVERY_RESOURCE, _GRANTED_RESOURCES = _lookup_statements()


@dataclass(frozen=True)
class Catalogue:
    """A workspace's resource types (by key) and which of their roles hold each permission,
    as of one ``roles_version``."""

    types: dict[str, tuple[str, str]]  # key -> (type id, workspace id)
    holding: dict[str, list[str]]  # permission -> resource role ids


_CATALOGUES: dict[str, tuple[int, Catalogue]] = {}


def catalogue(workspace_id: str, version: int) -> Catalogue:
    """The workspace's catalogue, read once per process per ``version`` (which every change
    to types, roles or permissions bumps, in its transaction)."""
    hit = _CATALOGUES.get(workspace_id)
    if hit is not None and hit[0] == version:
        return hit[1]
    types = {
        key: (type_id, workspace_id)
        for type_id, key in db.session.execute(
            select(ResourceType.id, ResourceType.key).where(
                ResourceType.workspace_id == workspace_id
            )
        )
    }
    holding: dict[str, list[str]] = {}
    for role_id, held in db.session.execute(
        select(ResourceRole.id, ResourceRole.permissions)
        .join(ResourceType, ResourceType.id == ResourceRole.type_id)
        .where(ResourceType.workspace_id == workspace_id)
    ):
        for permission in held or ():
            holding.setdefault(permission, []).append(role_id)
    found = Catalogue(types, holding)
    _CATALOGUES[workspace_id] = (version, found)
    return found


def check_type(workspace_id: str, version: int, type_key: str) -> Catalogue:
    """The catalogue, if it knows ``type_key``; ``unknown_resource_type`` (400) otherwise."""
    known = catalogue(workspace_id, version)
    if type_key not in known.types:
        raise BadRequest("unknown_resource_type", f"No resource type {type_key!r}")
    return known


def resources_allowed(
    workspace_id: str,
    version: int,
    type_key: str,
    org_id: str,
    membership_id: str,
    org_permissions: Iterable[str],
    permission: str,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """The org's resources of type ``type_key`` the (active) member may do ``permission``
    on, one page (``{"data", "next_cursor"}``), in one query: all of them when the org role
    holds it, else those under a grant (the member's or a team's) whose role holds it."""
    known = check_type(workspace_id, version, type_key)
    params: dict[str, Any] = {
        "org_id": org_id,
        "type_id": known.types[type_key][0],
        "after": decode_cursor(cursor) if cursor else "",
        "limit": limit + 1,
    }
    if permission in set(org_permissions):
        statement = _EVERY_RESOURCE
    else:
        statement = _GRANTED_RESOURCES
        params.update(member=membership_id, roles=known.holding.get(permission, []))
    rows = db.session.execute(statement, params).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [
            {
                "type": type_key,
                "id": external_id,
                "name": name,
                "parent": {"type": ptype, "id": pid} if pid is not None else None,
            }
            for _rid, external_id, name, pid, ptype in rows
        ],
        "next_cursor": encode_cursor(rows[-1][0]) if more and rows else None,
    }
