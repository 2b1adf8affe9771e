"""Provisioning: one function per directory action, over the core's membership and team services.

The org's IdP (through SCIM) creates, updates and removes members and groups here; every
change goes through ``idp.orgs`` so the member cap, the last-owner rule and the audit trail
hold exactly as for an admin's change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update

from idp.actors import Actor
from idp.audit.services import record_org_event
from idp.db import db, dialect_insert
from idp.directory.models import DirectoryGroup, DirectoryUser
from idp.errors import BadRequest, Conflict, NotFound
from idp.orgs import services as orgs
from idp.orgs import teams
from idp.orgs.models import (
    Membership,
    MembershipSource,
    MembershipStatus,
    Organization,
    TeamMember,
    TeamSource,
)
from idp.orgs.roles import Permission, Role
from idp.people import services as people
from idp.users.models import normalize_email

# Bound parameters per statement stay well under SQLite's and PostgreSQL's limits.
CHUNK = 5000
_USER_NAME_HOLDER = select(DirectoryUser.membership_id).where(
    DirectoryUser.org_id == bindparam("org_id"), DirectoryUser.user_name_key == bindparam("key")
)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


# --- users -----------------------------------------------------------------------------


def user_snapshot(user: DirectoryUser) -> dict[str, Any]:
    return {
        "user_name": user.user_name,
        "external_id": user.external_id,
        "active": user.membership.status is MembershipStatus.ACTIVE,
    }


def get_directory_user(org_id: str, membership_id: str) -> DirectoryUser:
    found = db.session.scalar(
        select(DirectoryUser).where(
            DirectoryUser.org_id == org_id, DirectoryUser.membership_id == membership_id
        )
    )
    if found is None:
        raise NotFound("directory_user_not_found", "No such provisioned user in this organization")
    return found


def _refuse_taken_user_name(org_id: str, user_name: str, keep: str | None = None) -> str:
    key = user_name.strip().lower()
    if not key or len(user_name) > 320:
        raise BadRequest("invalid_user_name", "userName must be 1 to 320 characters")
    holder = db.session.scalar(_USER_NAME_HOLDER, {"org_id": org_id, "key": key})
    if holder is not None and holder != keep:
        raise Conflict("user_name_taken", f"userName {user_name!r} is already in use in this org")
    return key


def provision_user(
    actor: Actor,
    org: Organization,
    *,
    user_name: str,
    email: str | None,
    name: str | None,
    external_id: str | None,
    active: bool,
    attributes: dict[str, Any],
) -> DirectoryUser:
    """Create the provisioned user: link (or create) the workspace user by email, join the org.

    A person already in the org (invited earlier, say) is adopted rather than duplicated,
    unless the IdP already provisioned them under another userName.
    """
    orgs.check_permission(actor, Permission.MEMBERS_ADD)
    orgs.lock_org(org.id)  # before the userName check, so two creates of one name serialize
    key = _refuse_taken_user_name(org.id, user_name)
    status = MembershipStatus.ACTIVE if active else MembershipStatus.SUSPENDED
    # The org's directory speaks for the org: a person of its own unless the org verified the
    # address's domain; a member it already holds for the address is adopted.
    claim = people.Claim(
        email, people.address_proof(org, email, people.Proof.ORG), people.validate_person_name(name)
    )
    membership, created = people.admit(
        actor, org, claim, role=Role.MEMBER, source=MembershipSource.SCIM, status=status
    )
    if not created:
        if db.session.get(DirectoryUser, membership.id) is not None:
            raise Conflict(
                "user_name_taken", "This person is already provisioned under another userName"
            )
        if claim.name and membership.name != claim.name:
            membership.name = claim.name
        if membership.status is not status:
            orgs.set_member_status(actor, org, membership.user_id, status)
    provisioned = DirectoryUser(
        membership_id=membership.id,
        membership=membership,
        org_id=org.id,
        user_name=user_name,
        user_name_key=key,
        external_id=external_id,
        attributes=attributes,
    )
    db.session.add(provisioned)
    record_org_event(
        actor,
        org,
        "member.provisioned",
        "user",
        membership.user_id,
        after=user_snapshot(provisioned),
    )
    db.session.flush()  # the membership, this row and the event: one flush
    return provisioned


def update_user(
    actor: Actor,
    org: Organization,
    provisioned: DirectoryUser,
    *,
    user_name: str,
    external_id: str | None,
    active: bool,
    attributes: dict[str, Any],
    email: str | None = None,
    name: str | None = None,
) -> DirectoryUser:
    """Replace what the IdP holds of a user; ``active`` suspends or restores the membership.

    The name and address the org shows follow the directory (``email``, ``name``), but the
    workspace user's email is never changed from here: an org's directory speaks for that
    org only, not for the person's identity in other orgs.
    """
    orgs.check_permission(actor, Permission.MEMBERS_UPDATE)
    orgs.lock_org(org.id)
    before = user_snapshot(provisioned)
    key = _refuse_taken_user_name(org.id, user_name, keep=provisioned.membership_id)
    status = MembershipStatus.ACTIVE if active else MembershipStatus.SUSPENDED
    if provisioned.membership.status is not status:
        orgs.set_member_status(actor, org, provisioned.membership.user_id, status)
    _follow_directory(org, provisioned.membership, email, people.validate_person_name(name))
    changed = (
        provisioned.user_name != user_name
        or provisioned.external_id != external_id
        or provisioned.attributes != attributes
    )
    if changed:
        provisioned.user_name, provisioned.user_name_key = user_name, key
        provisioned.external_id = external_id
        provisioned.attributes = attributes
    if changed or before["active"] != active:
        provisioned.version += 1
        db.session.flush()
    if changed:
        record_org_event(
            actor,
            org,
            "member.provisioning_updated",
            "user",
            provisioned.membership.user_id,
            before=before,
            after=user_snapshot(provisioned),
        )
    return provisioned


def _follow_directory(
    org: Organization, membership: Membership, email: str | None, name: str | None
) -> None:
    """What the org shows of the member: the directory's name, and its address unless
    another member of the org holds that one."""
    if name and membership.name != name:
        membership.name = name
    if email and normalize_email(email) != membership.email_key:
        holder = people.find_member_by_email(org.id, email)
        if holder is not None and holder.id != membership.id:
            raise Conflict("email_taken", "Another member of this organization has that email")
        membership.email, membership.email_key = email, normalize_email(email)
    db.session.flush()


def deprovision_user(actor: Actor, org: Organization, provisioned: DirectoryUser) -> None:
    """Remove the membership (the workspace user stays); the last-owner rule still holds."""
    orgs.remove_member(actor, org, provisioned.membership.user_id)


# --- groups ----------------------------------------------------------------------------


def get_directory_group(org_id: str, team_id: str) -> DirectoryGroup:
    found = db.session.scalar(
        select(DirectoryGroup).where(
            DirectoryGroup.org_id == org_id, DirectoryGroup.team_id == team_id
        )
    )
    if found is None:
        raise NotFound(
            "directory_group_not_found", "No such provisioned group in this organization"
        )
    return found


def create_group(
    actor: Actor,
    org: Organization,
    *,
    display_name: str,
    external_id: str | None,
    attributes: dict[str, Any],
    member_ids: Iterable[str] = (),
) -> DirectoryGroup:
    """A provisioned group becomes a team (source ``scim``), with its initial members.

    ``external_id`` is the IdP's identifier and is kept as sent, shared or not: "the server
    does not enforce uniqueness" of an externalId (RFC 7643 §3.1).
    """
    team = teams.create_team(
        actor, org, name=display_name, external_id=external_id, source=TeamSource.SCIM
    )
    group = DirectoryGroup(team_id=team.id, org_id=org.id, attributes=attributes)
    db.session.add(group)
    db.session.flush()
    members = list(member_ids)
    if members:
        change_group_members(actor, org, group, add=members)
    return group


def update_group(
    actor: Actor,
    org: Organization,
    group: DirectoryGroup,
    *,
    display_name: str,
    external_id: str | None,
    attributes: dict[str, Any],
) -> DirectoryGroup:
    """Replace a group's own attributes (members are changed with ``change_group_members``)."""
    before = (group.team.name, group.team.external_id)
    teams.update_team(actor, org, group.team_id, name=display_name, external_id=external_id)
    renamed = (group.team.name, group.team.external_id) != before
    if renamed or group.attributes != attributes:
        group.attributes = attributes
        _bump(group)  # Okta re-sends the name with every membership change: no new ETag then
    if renamed:  # the group may now match another role mapping, or none
        orgs.recompute_roles(actor, org, group_member_ids(group.team_id))
    return group


def _bump(group: DirectoryGroup) -> None:
    # An UPDATE ... SET version = version + 1, so concurrent changes never lose a step.
    db.session.flush()
    db.session.execute(
        update(DirectoryGroup)
        .where(DirectoryGroup.team_id == group.team_id)
        .values(version=DirectoryGroup.version + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(group, ["version", "updated_at"])


def _org_membership_ids(org_id: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(
            db.session.scalars(
                select(Membership.id).where(Membership.org_id == org_id, Membership.id.in_(chunk))
            )
        )
    return found


def group_member_ids(team_id: str) -> list[str]:
    return list(
        db.session.scalars(
            select(TeamMember.membership_id)
            .where(TeamMember.team_id == team_id)
            .order_by(TeamMember.membership_id)
        )
    )


def count_group_members(team_id: str) -> int:
    return db.session.scalar(
        select(func.count()).select_from(TeamMember).where(TeamMember.team_id == team_id)
    )


def change_group_members(
    actor: Actor,
    org: Organization,
    group: DirectoryGroup,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    replace: Iterable[str] | None = None,
) -> None:
    """Add, remove or replace members in bulk; members are the org's memberships (SCIM ids).

    Adding a member already there, or removing one not there, changes nothing (so concurrent
    requests never fail each other); an id that is not a member of this org is refused.
    """
    orgs.check_permission(actor, Permission.TEAMS_WRITE)
    orgs.lock_org(org.id)  # so "already a member" is read once other changes are committed
    add_ids = list(dict.fromkeys(add))
    remove_ids = set(remove)
    if replace is not None:
        wanted = list(dict.fromkeys(replace))
        current = set(group_member_ids(group.team_id))
        add_ids = [m for m in wanted if m not in current]
        remove_ids = current - set(wanted)
    unknown = set(add_ids) - _org_membership_ids(org.id, add_ids)
    if unknown:
        raise BadRequest(
            "unknown_member", f"No such user in this organization: {sorted(unknown)[0]}"
        )
    added = _add_team_members(group.team_id, add_ids)
    removed = _remove_team_members(group.team_id, sorted(remove_ids))
    if added or removed:
        _bump(group)
        record_org_event(
            actor,
            org,
            "team.members_changed",
            "team",
            group.team_id,
            after={"added": added, "removed": removed},
        )
        orgs.recompute_roles(actor, org, added + removed)


def _add_team_members(team_id: str, membership_ids: list[str]) -> list[str]:
    added: list[str] = []
    for chunk in _chunks(membership_ids):
        present = set(
            db.session.scalars(
                select(TeamMember.membership_id).where(
                    TeamMember.team_id == team_id, TeamMember.membership_id.in_(chunk)
                )
            )
        )
        rows = [{"team_id": team_id, "membership_id": m} for m in chunk if m not in present]
        if rows:
            db.session.execute(dialect_insert(TeamMember).on_conflict_do_nothing(), rows)
            added += [r["membership_id"] for r in rows]
    return added


def _remove_team_members(team_id: str, membership_ids: list[str]) -> list[str]:
    removed: list[str] = []
    for chunk in _chunks(membership_ids):
        result = db.session.execute(
            delete(TeamMember)
            .where(TeamMember.team_id == team_id, TeamMember.membership_id.in_(chunk))
            .returning(TeamMember.membership_id)
        )
        removed += list(result.scalars())
    return removed


def delete_group(actor: Actor, org: Organization, group: DirectoryGroup) -> None:
    """Delete the group's team; its members lose whatever role the group mapped them to."""
    members = group_member_ids(group.team_id)
    teams.delete_team(actor, org, group.team_id)
    orgs.recompute_roles(actor, org, members)
