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
from idp.orgs.services import check_permission, check_role_authority, recompute_roles, validate_name


def mapping_snapshot(mapping: RoleMapping) -> dict[str, Any]:
    return {"group": mapping.group, "role": mapping.role}


def list_role_mappings(org_id: str) -> list[RoleMapping]:
    return list(
        db.session.scalars(
            select(RoleMapping).where(RoleMapping.org_id == org_id).order_by(RoleMapping.group_key)
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


def set_role_mapping(actor: Actor, org: Organization, *, group: str, role: str) -> RoleMapping:
    """Map an IdP group to a role of the org (replacing its earlier mapping) and apply it at
    once."""
    check_permission(actor, Permission.MEMBERS_UPDATE)
    hold_role(org_roles(org), role)  # a role this org has, not deleted meanwhile
    check_role_authority(actor, org, None, role)
    group = validate_name(group)
    key = group.lower()
    mapping = db.session.scalar(
        select(RoleMapping).where(RoleMapping.org_id == org.id, RoleMapping.group_key == key)
    )
    before = mapping_snapshot(mapping) if mapping else None
    if mapping is None:
        mapping = RoleMapping(org_id=org.id, group=group, group_key=key, role=role)
        db.session.add(mapping)
    else:
        check_role_authority(actor, org, mapping.role)
        mapping.group, mapping.role = group, role
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


def get_role_mapping(org_id: str, *, mapping_id: str | None = None, group: str = "") -> RoleMapping:
    """A mapping of the org, by id or by group name."""
    query = select(RoleMapping).where(RoleMapping.org_id == org_id)
    if mapping_id is not None:
        query = query.where(RoleMapping.id == mapping_id)
    else:
        query = query.where(RoleMapping.group_key == group.strip().lower())
    mapping = db.session.scalar(query)
    if mapping is None:
        raise NotFound("role_mapping_not_found", "No such role mapping in this organization")
    return mapping


def delete_role_mapping(actor: Actor, org: Organization, mapping: RoleMapping) -> None:
    check_permission(actor, Permission.MEMBERS_UPDATE)
    check_role_authority(actor, org, mapping.role)
    key = mapping.group_key
    before = mapping_snapshot(mapping)
    db.session.delete(mapping)
    db.session.flush()
    record_org_event(actor, org, "role_mapping.deleted", "role_mapping", mapping.id, before=before)
    recompute_roles(actor, org, _members_of_group(org.id, key))
