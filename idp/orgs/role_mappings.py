"""Role mappings: "IdP group X → role R", per org; members' roles follow their groups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from idp.actors import Actor
from idp.audit.services import record_org_event
from idp.db import db
from idp.errors import NotFound
from idp.orgs.models import Membership, Organization, RoleMapping, Team, TeamMember, TeamSource
from idp.orgs.role_book import hold_role, org_roles
from idp.orgs.roles import Permission
from idp.orgs.services import (
    check_permission,
    check_role_authority,
    recompute_roles,
    validate_name,
)
from idp.resources.services import get_resource, resource_role


def mapping_snapshot(mapping: RoleMapping) -> dict[str, Any]:
    return {"group": mapping.group, "role": mapping.role, "resource_id": mapping.resource_id}


def list_role_mappings(org_id: str) -> list[RoleMapping]:
    return list(
        db.session.scalars(
            select(RoleMapping)
            .where(RoleMapping.org_id == org_id)
            .order_by(RoleMapping.group_key, RoleMapping.resource_id.is_not(None), RoleMapping.id)
        )
    )


def _members_of_group(org_id: str, group_key: str) -> list[str]:
    """Memberships in the group: in the provisioned teams its name or externalId denotes, or
    asserted in it by the IdP at their last SSO login."""
    provisioned = set(
        db.session.scalars(
            select(TeamMember.membership_id)
            .join(Team, Team.id == TeamMember.team_id)
            .where(
                Team.org_id == org_id,
                Team.source == TeamSource.SCIM,
                or_(func.lower(Team.name) == group_key, func.lower(Team.external_id) == group_key),
            )
        )
    )
    # A few names per member, and mappings change rarely: matched here, not in SQL.
    asserted = db.session.execute(
        select(Membership.id, Membership.sso_groups).where(
            Membership.org_id == org_id, Membership.sso_groups.is_not(None)
        )
    )
    provisioned.update(
        membership_id
        for membership_id, groups in asserted
        if any(str(g).lower() == group_key for g in groups or ())
    )
    return sorted(provisioned)


def _check_authority(actor: Actor, org: Organization, at_resource: bool, *roles: str) -> None:
    """Who may map groups: org-wide, whoever may set members' roles and act on holders of
    ``roles``; at a resource, whoever may also give roles on resources."""
    check_permission(actor, Permission.MEMBERS_UPDATE)
    if at_resource:
        check_permission(actor, Permission.RESOURCES_WRITE)
    else:
        for role in roles:
            check_role_authority(actor, org, role)


def set_role_mapping(
    actor: Actor,
    org: Organization,
    *,
    group: str,
    role: str,
    resource: dict[str, str] | None = None,
) -> RoleMapping:
    """Map an IdP group to a role of the org, or to a role at one of its resources (``{"type",
    "id"}``), replacing the group's earlier mapping there, and apply it at once."""
    group = validate_name(group)
    key = group.lower()
    _check_authority(actor, org, resource is not None, role)
    if resource is None:
        hold_role(org_roles(org), role)  # a role this org has, not deleted meanwhile
        target, role_id = None, None
    else:
        target = get_resource(org, str(resource.get("type", "")), str(resource.get("id", "")))
        role_id = resource_role(target, role).id
    mapping = db.session.scalar(
        select(RoleMapping).where(
            RoleMapping.org_id == org.id,
            RoleMapping.group_key == key,
            RoleMapping.resource_id == target.id if target else RoleMapping.resource_id.is_(None),
        )
    )
    before = mapping_snapshot(mapping) if mapping else None
    if mapping is None:
        mapping = RoleMapping(
            org_id=org.id,
            group=group,
            group_key=key,
            role=role,
            resource_id=target.id if target else None,
            resource_role_id=role_id,
        )
        db.session.add(mapping)
    else:
        _check_authority(actor, org, target is not None, mapping.role)
        mapping.group, mapping.role, mapping.resource_role_id = group, role, role_id
    db.session.flush()
    record_org_event(
        actor,
        org,
        "role_mapping.set",
        "role_mapping",
        mapping.id,
        before=before,
        after=mapping_snapshot(mapping),
    )
    recompute_roles(actor, org, _members_of_group(org.id, key))
    return mapping


def get_role_mapping(
    org_id: str,
    *,
    mapping_id: str | None = None,
    group: str = "",
    resource_id: str | None = None,
) -> RoleMapping:
    """A mapping of the org, by id, or by group name (org-wide, or at ``resource_id``)."""
    query = select(RoleMapping).where(RoleMapping.org_id == org_id)
    if mapping_id is not None:
        query = query.where(RoleMapping.id == mapping_id)
    else:
        query = query.where(
            RoleMapping.group_key == group.strip().lower(),
            RoleMapping.resource_id == resource_id
            if resource_id
            else RoleMapping.resource_id.is_(None),
        )
    mapping = db.session.scalar(query)
    if mapping is None:
        raise NotFound("role_mapping_not_found", "No such role mapping in this organization")
    return mapping


def delete_role_mapping(actor: Actor, org: Organization, mapping: RoleMapping) -> None:
    """Remove a mapping; its group's members keep only their other roles (and grants)."""
    _check_authority(actor, org, mapping.resource_id is not None, mapping.role)
    record_org_event(
        actor,
        org,
        "role_mapping.deleted",
        "role_mapping",
        mapping.id,
        before=mapping_snapshot(mapping),
    )
    # Applied as if already gone, so each role and grant it gave is taken away on the record.
    recompute_roles(actor, org, _members_of_group(org.id, mapping.group_key), without=mapping.id)
    db.session.delete(mapping)
    db.session.flush()
