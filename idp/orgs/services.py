"""Organizations and memberships: one function per domain action.

Every entry point (admin API, CLI, and later SCIM, SSO/JIT and the console) calls these, so
the invariants live here: an org keeps an owner, the member cap holds, admins cannot touch
owners, and each change writes exactly one audit event in the caller's transaction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, event, func, or_, select
from sqlalchemy.orm import Session, contains_eager, lazyload
from sqlalchemy.orm.util import identity_key

from idp import telemetry
from idp.actors import Actor
from idp.audit.services import record_org_event
from idp.connections.models import Domain, DomainStatus
from idp.db import db, lock_row, new_id, utcnow
from idp.errors import BadRequest, Conflict, Forbidden, NotFound
from idp.orgs.models import (
    Membership,
    MembershipSource,
    MembershipStatus,
    Organization,
    RoleMapping,
    Team,
    TeamMember,
    TeamSource,
    Workspace,
)
from idp.orgs.role_book import RoleBook, hold_role, org_roles
from idp.orgs.roles import BUILTIN_ROLES, Permission, Role, RoleDef
from idp.pagination import Page, paginate
from idp.policies.chain import lock_policies, org_policy, refresh_effective_policies
from idp.policies.enforcement import Action, Attempt, enforce
from idp.resources.models import ResourceGrant, ResourceRole
from idp.sessions.services import cut_member_access
from idp.users.models import User, normalize_email

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME = 200
MAX_MEMBER_CAP = 1_000_000

# Statements of the member-adding hot path (provisioning), built once.
_FIND_MEMBERSHIP = (
    select(Membership)
    .where(Membership.org_id == bindparam("org_id"), Membership.user_id == bindparam("user_id"))
    .options(lazyload(Membership.user))
)
# Counts at most ``cap`` index entries, however large the org.
_COUNT_SEATS = select(func.count()).select_from(
    select(Membership.id)
    .where(Membership.org_id == bindparam("org_id"), Membership.status == MembershipStatus.ACTIVE)
    .limit(bindparam("cap"))
    .subquery()
)


# --- workspace -------------------------------------------------------------------------


def ensure_workspace(slug: str, name: str | None = None) -> Workspace:
    """The workspace with this slug, created on first use."""
    workspace = db.session.scalar(select(Workspace).where(Workspace.slug == slug))
    if workspace is None:
        workspace = Workspace(slug=slug, name=name or slug, baseline_policy={})
        db.session.add(workspace)
        db.session.flush()
    return workspace


def get_workspace(slug: str) -> Workspace:
    workspace = db.session.scalar(select(Workspace).where(Workspace.slug == slug))
    if workspace is None:
        raise NotFound("workspace_not_found", f"No workspace {slug!r}; run 'gatehouse bootstrap'")
    return workspace


# --- organizations ---------------------------------------------------------------------


def org_snapshot(org: Organization) -> dict[str, Any]:
    return {
        "slug": org.slug,
        "name": org.name,
        "parent_id": org.parent_id,
        "member_cap": org.member_cap,
        "nested_teams": org.nested_teams,
    }


# Categories that render invisibly or reorder text: controls, format characters (bidi
# overrides and isolates, zero-width joiners and spaces, the BOM), line and paragraph
# separators, surrogates, private use and unassigned code points.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def unsafe_character(value: str) -> str | None:
    """The first character of ``value`` that mails and pages cannot show as it is, if any."""
    return next((char for char in value if unicodedata.category(char) in _UNSAFE), None)


def validate_name(name: str | None) -> str:
    """A display name (org, team, connection): trimmed, 1 to 200 characters, nothing that
    mails and pages cannot show as it is (controls, bidi overrides, zero-width characters)."""
    value = (name or "").strip()
    if not value or len(value) > MAX_NAME:
        raise BadRequest(
            "invalid_name", f"A name of 1 to {MAX_NAME} characters is required", field="name"
        )
    char = unsafe_character(value)
    if char is not None:
        raise BadRequest(
            "invalid_name",
            f"A name may not contain control, bidi or zero-width characters (U+{ord(char):04X})",
            field="name",
        )
    return value


def _validate_member_cap(cap: int) -> int:
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_MEMBER_CAP:
        raise BadRequest(
            "invalid_member_cap", f"member_cap must be an integer from 1 to {MAX_MEMBER_CAP}"
        )
    return cap


def get_org(workspace_id: str, slug: str) -> Organization:
    """A live org by slug; a deleted or unknown one is ``org_not_found``."""
    org = db.session.scalar(
        select(Organization).where(
            Organization.workspace_id == workspace_id,
            Organization.slug == slug,
            Organization.deleted_at.is_(None),
        )
    )
    if org is None:
        raise NotFound("org_not_found", f"No organization {slug!r}")
    return org


def contains_pattern(q: str) -> str:
    """A LIKE pattern (escape ``\\``) matching any text holding ``q``, lowercased."""
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_orgs(
    workspace_id: str,
    *,
    only_id: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Organization]:
    """The workspace's orgs in creation order; ``q`` matches the slug or name,
    case-insensitively."""
    query = select(Organization).where(
        Organization.workspace_id == workspace_id, Organization.deleted_at.is_(None)
    )
    if only_id is not None:
        query = query.where(Organization.id == only_id)
    if q:
        pattern = contains_pattern(q)
        query = query.where(
            or_(
                Organization.slug.like(pattern, escape="\\"),
                func.lower(Organization.name).like(pattern, escape="\\"),
            )
        )
    return paginate(query, Organization.id, cursor=cursor, limit=limit)


def create_org(
    actor: Actor,
    workspace: Workspace,
    *,
    slug: str,
    name: str,
    parent_slug: str | None = None,
    member_cap: int | None = None,
) -> Organization:
    if not actor.is_workspace:
        raise Forbidden("forbidden", "Creating organizations needs workspace authority")
    slug = (slug or "").strip().lower()
    if not SLUG.match(slug):
        raise BadRequest(
            "invalid_slug",
            "A slug is 1 to 63 lowercase letters, digits and inner hyphens",
            field="slug",
        )
    name = validate_name(name)
    taken = db.session.scalar(
        select(Organization.id).where(
            Organization.workspace_id == workspace.id, Organization.slug == slug
        )
    )
    if taken:
        raise Conflict("slug_taken", f"The slug {slug!r} is taken (deleted orgs keep theirs)")
    lock_policies(workspace.id)  # before the insert: no policy change or parent delete interleaves
    parent = get_org(workspace.id, parent_slug) if parent_slug else None
    org = Organization(
        workspace_id=workspace.id,
        slug=slug,
        name=name,
        parent_id=parent.id if parent else None,
        policy_overrides={},
    )
    if member_cap is not None:
        org.member_cap = _validate_member_cap(member_cap)
    db.session.add(org)
    db.session.flush()
    refresh_effective_policies([org])  # what it inherits from the baseline and its parents
    record_org_event(
        actor,
        org,
        "org.created",
        "org",
        org.id,
        after=org_snapshot(org),
    )
    return org


def update_org(
    actor: Actor,
    org: Organization,
    *,
    name: str | None = None,
    member_cap: int | None = None,
    nested_teams: bool | None = None,
) -> Organization:
    """Rename the org, change its member cap, or turn departments (nested teams) on or off;
    off only while no team sits in another (``teams_nested``, with the count)."""
    check_permission(actor, Permission.ORG_UPDATE)
    if member_cap is not None:
        lock_policies(org.workspace_id)  # the workspace's lock before the org's, as policies do
    lock_org(org.id)
    before = org_snapshot(org)
    if name is not None:
        org.name = validate_name(name)
    if member_cap is not None:
        cap = _validate_member_cap(member_cap)
        if cap < count_active_members(org.id):
            raise Conflict(
                "member_cap_below_count", "The org already has more members than that cap"
            )
        org.member_cap = cap
    if nested_teams is not None:
        if not nested_teams:
            nested = db.session.scalar(
                select(func.count())
                .select_from(Team)
                .where(Team.org_id == org.id, Team.parent_id.is_not(None))
            )
            if nested:
                raise Conflict(
                    "teams_nested",
                    f"{nested} team(s) sit in another team; move them to the top first",
                    nested=nested,
                )
        org.nested_teams = nested_teams
    after = org_snapshot(org)
    if after != before:
        refresh_effective_policies([org])
        record_org_event(
            actor,
            org,
            "org.updated",
            "org",
            org.id,
            before=before,
            after=after,
        )
    return org


def delete_org(actor: Actor, org: Organization) -> None:
    """Soft delete: the org disappears from every read; its slug stays reserved."""
    check_permission(actor, Permission.ORG_DELETE)
    lock_policies(org.workspace_id)  # no sub-organization is created under it meanwhile
    children = db.session.scalar(
        select(func.count())
        .select_from(Organization)
        .where(Organization.parent_id == org.id, Organization.deleted_at.is_(None))
    )
    if children:
        raise Conflict("org_has_children", "Delete or move its sub-organizations first")
    org.deleted_at = utcnow()
    db.session.flush()
    record_org_event(
        actor,
        org,
        "org.deleted",
        "org",
        org.id,
        before=org_snapshot(org),
    )


LOCKED_ORGS = "gatehouse.locked_orgs"


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _release_org_locks(session: Session) -> None:
    session.info.pop(LOCKED_ORGS, None)


def lock_org(org_id: str) -> None:
    """Serialize membership changes of one org until the transaction ends.

    Guards the owner count and the member cap against concurrent requests (see
    :func:`idp.db.lock_row`). What was read of the org before the lock (its effective policy,
    its member cap) is read again after it: a policy tightened meanwhile applies. A
    transaction that changes policies takes the workspace's lock first, then org rows.
    """
    session = db.session
    held = session.info.setdefault(LOCKED_ORGS, set())
    if org_id in held:
        return  # already held by this transaction
    held.add(org_id)
    session.flush()
    lock_row(Organization, org_id)
    loaded = session.identity_map.get(identity_key(Organization, org_id))
    if loaded is not None:
        session.expire(loaded, ["effective_policy", "member_cap"])


# --- memberships -----------------------------------------------------------------------


def member_snapshot(membership: Membership) -> dict[str, Any]:
    return {
        "user_id": membership.user_id,
        "email": membership.email or membership.user.email,
        "role": membership.role,
        "status": membership.status.value,
        "source": membership.source.value,
    }


def check_permission(actor: Actor, permission: Permission) -> None:
    """Raise ``forbidden`` unless the actor's role in the org holds the permission."""
    decision = actor.can(permission)
    if not decision.allowed:
        raise Forbidden("forbidden", f"This needs the {permission.value} permission")


def check_workspace_authority(actor: Actor, message: str) -> None:
    """Raise ``forbidden`` with ``message`` unless the actor speaks for the whole workspace
    (the CLI, a workspace key): what binds every org is not one org's to change."""
    if not actor.is_workspace:
        raise Forbidden("forbidden", message)


def check_role_authority(
    actor: Actor, org: Organization, current: str | None, new: str | None = None
) -> RoleBook | None:
    """May the actor act on a holder of ``current``, or grant ``new``? Granting owner, or
    changing anything about an owner, needs ``owners:manage``; any other role needs every
    permission it holds (nobody hands out, or takes from another, more than they hold).

    Built-in roles nest, so between them the rank decides without a query; a custom role
    reads the org's roles (returned, for the caller's further use).
    """
    if Role.OWNER in (current, new) and not actor.can(Permission.OWNERS_MANAGE).allowed:
        raise Forbidden(
            "owner_protected", "Only an owner can grant the owner role or manage owners"
        )
    if actor.is_workspace:
        return None
    keys = [k for k in (current, new) if k is not None]
    mine = actor.role
    if mine is not None and mine.is_builtin and all(k in BUILTIN_ROLES for k in keys):
        if all(BUILTIN_ROLES[k].rank <= mine.rank for k in keys):
            return None
        raise Forbidden("role_above_actor", "That role holds more than you do")
    book = org_roles(org)
    held = book.held_by(mine)
    for key in keys:
        role = book.find(key)
        if role is not None and not role.permissions <= held:
            raise Forbidden("role_above_actor", f"The {key} role holds permissions you do not hold")
    return book


def active_memberships(user_id: str) -> list[tuple[Organization, Membership]]:
    """Every live org the person is an active member of, with the membership, by slug."""
    rows = db.session.execute(
        select(Organization, Membership)
        .join(Membership, Membership.org_id == Organization.id)
        .where(
            Membership.user_id == user_id,
            Membership.status == MembershipStatus.ACTIVE,
            Organization.deleted_at.is_(None),
        )
        .order_by(Organization.slug)
    ).all()
    return [(org, membership) for org, membership in rows]


def find_membership(org_id: str, user_id: str) -> Membership | None:
    """The user's membership of the org, if any (its user loaded only when asked for)."""
    return db.session.scalar(_FIND_MEMBERSHIP, {"org_id": org_id, "user_id": user_id})


def get_membership(org_id: str, user_id: str, *, fresh: bool = False) -> Membership:
    query = select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
    if fresh:
        query = query.execution_options(populate_existing=True)
    membership = db.session.scalar(query)
    if membership is None:
        raise NotFound("member_not_found", "No such member in this organization")
    return membership


def count_active_members(org_id: str) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.org_id == org_id, Membership.status == MembershipStatus.ACTIVE)
    )


def count_members_by_role(org_id: str) -> dict[str, int]:
    rows = db.session.execute(
        select(Membership.role, func.count())
        .where(Membership.org_id == org_id)
        .group_by(Membership.role)
    ).all()
    counts = {role.value: 0 for role in reversed(Role)}
    counts.update({role: n for role, n in rows})
    return counts


def count_active_owners(org_id: str) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(
            Membership.org_id == org_id,
            Membership.role == Role.OWNER,
            Membership.status == MembershipStatus.ACTIVE,
        )
    )


@dataclass(frozen=True)
class MappedGroup:
    """A role mapping a membership's groups match: org-wide (``resource_id`` None) or at a
    resource (the role then being the resource role ``resource_role_id``)."""

    mapping_id: str
    role: str
    resource_id: str | None
    resource_role_id: str | None


def _mapping_scope(at_resources: bool) -> Any:
    return (
        RoleMapping.resource_id.is_not(None) if at_resources else RoleMapping.resource_id.is_(None)
    )


def group_matches(
    org_id: str, membership_ids: list[str], *, at_resources: bool = False, without: str = ""
) -> set[tuple[str, MappedGroup]]:
    """(membership id, mapping) for each mapping one of the memberships' IdP groups matches,
    among the org-wide mappings or those at a resource.

    A group counts when it is a team the IdP provisions (source ``scim``) whose name or
    externalId is a mapping's group, or a group the IdP asserted at the member's last SSO
    login; compared case-insensitively. ``without``: a mapping to leave out (being deleted).
    """
    if not membership_ids:
        return set()
    m = RoleMapping
    columns = (m.id, m.role, m.resource_id, m.resource_role_id)
    scope = (_mapping_scope(at_resources), m.id != without)
    rows = db.session.execute(
        select(TeamMember.membership_id, *columns)
        .join(Team, Team.id == TeamMember.team_id)
        .join(
            m,
            (m.org_id == Team.org_id)
            & or_(
                m.group_key == func.lower(Team.name), m.group_key == func.lower(Team.external_id)
            ),
        )
        .where(
            Team.org_id == org_id,
            Team.source == TeamSource.SCIM,
            TeamMember.membership_id.in_(membership_ids),
            *scope,
        )
    )
    found = {(membership_id, MappedGroup(*mapping)) for membership_id, *mapping in rows}
    # The groups of the last SSO login: a few names per member, matched here.
    asserted = db.session.execute(
        select(Membership.id, Membership.sso_groups).where(
            Membership.id.in_(membership_ids), Membership.sso_groups.is_not(None)
        )
    ).all()
    if asserted:
        by_group: dict[str, list[MappedGroup]] = {}
        for key, *mapping in db.session.execute(
            select(m.group_key, *columns).where(m.org_id == org_id, *scope)
        ):
            by_group.setdefault(key, []).append(MappedGroup(*mapping))
        for membership_id, groups in asserted:
            for group in groups or ():
                found.update((membership_id, hit) for hit in by_group.get(str(group).lower(), ()))
    return found


def mapped_roles(
    org_id: str, membership_ids: list[str], book: RoleBook, *, without: str = ""
) -> dict[str, RoleDef]:
    """The highest org role each membership's IdP groups map it to (only mapped ones
    appear)."""
    best: dict[str, RoleDef] = {}
    for membership_id, mapping in group_matches(org_id, membership_ids, without=without):
        role = book.find(mapping.role)
        if role is not None and (membership_id not in best or role.rank > best[membership_id].rank):
            best[membership_id] = role
    return best


def has_role_mappings(org_id: str) -> bool:
    return (
        db.session.scalar(select(RoleMapping.id).where(RoleMapping.org_id == org_id).limit(1))
        is not None
    )


def recompute_roles(
    actor: Actor, org: Organization, membership_ids: list[str], *, without: str = ""
) -> None:
    """Bring effective roles, and the grants mappings give at resources, in line with
    hand-set roles and group mappings (``without``: one about to be deleted).

    Called whenever group membership or a mapping changes; each change of role is audited and
    the last-owner rule holds (a change that would leave no owner is refused).
    """
    lock_org(org.id)
    at_resources = _maps_at_resources(org.id)
    for start in range(0, len(membership_ids), 5000):
        chunk = membership_ids[start : start + 5000]
        _recompute_chunk(actor, org, chunk, without)
        if at_resources:
            _recompute_mapped_grants(actor, org, chunk, without)


def _maps_at_resources(org_id: str) -> bool:
    """Whether the org maps any group at a resource (without one, it has no mapped grant:
    they go with their mapping)."""
    found = select(RoleMapping.id).where(RoleMapping.org_id == org_id, _mapping_scope(True))
    return db.session.scalar(found.limit(1)) is not None


def _recompute_mapped_grants(
    actor: Actor, org: Organization, membership_ids: list[str], without: str
) -> None:
    """Bring the grants role mappings give at resources in line with the members' groups:
    made when a member joins a mapped group, taken away when they leave it, changed with
    the mapping's role; each change audited. Hand-made grants are left as they are."""
    wanted = {
        (membership_id, mapping.mapping_id): mapping
        for membership_id, mapping in group_matches(
            org.id, membership_ids, at_resources=True, without=without
        )
    }
    held = {
        (grant.membership_id, grant.mapping_id): grant
        for grant in db.session.scalars(
            select(ResourceGrant).where(
                ResourceGrant.org_id == org.id,
                ResourceGrant.membership_id.in_(membership_ids),
                ResourceGrant.mapping_id.is_not(None),
            )
        )
    }
    gone = [key for key in held if key not in wanted]
    made = [
        key
        for key, m in wanted.items()
        if key not in held or held[key].role_id != m.resource_role_id
    ]
    if not gone and not made:
        return
    users = dict(
        db.session.execute(
            select(Membership.id, Membership.user_id).where(
                Membership.id.in_({membership_id for membership_id, _ in gone + made})
            )
        ).all()
    )
    types = dict(
        db.session.execute(
            select(ResourceRole.id, ResourceRole.type_id).where(
                ResourceRole.id.in_({wanted[key].resource_role_id for key in made})
            )
        ).all()
    )

    def record(event: str, resource_id: str, key: tuple[str, str], **change: Any) -> None:
        why = {"user_id": users.get(key[0]), "reason": "role_mapping", "mapping_id": key[1]}
        audit = {side: {**value, **why} for side, value in change.items()}
        record_org_event(actor, org, event, "resource", resource_id, **audit)

    for key in sorted(gone):
        grant = held[key]
        db.session.delete(grant)
        record("resource.role_revoked", grant.resource_id, key, before={"role_id": grant.role_id})
    for key in sorted(made):
        mapping, grant = wanted[key], held.get(key)
        if grant is None:
            grant = ResourceGrant(
                org_id=org.id,
                resource_id=mapping.resource_id,
                type_id=types[mapping.resource_role_id],
                membership_id=key[0],
                mapping_id=key[1],
            )
            db.session.add(grant)
        before = {"before": {"role_id": grant.role_id}} if grant.role_id else {}
        grant.role_id = mapping.resource_role_id
        record(
            "resource.role_granted", grant.resource_id, key, after={"role": mapping.role}, **before
        )
    db.session.flush()


def _recompute_chunk(
    actor: Actor, org: Organization, membership_ids: list[str], without: str
) -> None:
    book = org_roles(org)
    mapped = mapped_roles(org.id, membership_ids, book, without=without)
    # Only members with a mapped role, or raised above their hand-set role, can change.
    raised = db.session.scalars(
        select(Membership.id).where(
            Membership.org_id == org.id,
            Membership.id.in_(membership_ids),
            Membership.assigned_role.is_not(None),
            Membership.role != Membership.assigned_role,
        )
    )
    candidates = set(mapped) | set(raised)
    if not candidates:
        return
    memberships = db.session.scalars(
        select(Membership)
        .where(Membership.org_id == org.id, Membership.id.in_(candidates))
        .execution_options(populate_existing=True)
    )
    for membership in memberships:
        # Null: written by code that predates mappings, when every role was set by hand.
        assigned = book.find(membership.assigned_role or membership.role)
        chosen = mapped.get(membership.id)
        if assigned is not None and (chosen is None or assigned.rank >= chosen.rank):
            chosen = assigned
        role = chosen.key if chosen else Role.MEMBER.value
        if role == membership.role:
            continue
        if membership.role == Role.OWNER:
            _refuse_if_last_owner(membership)
        before = member_snapshot(membership)
        membership.role = role
        db.session.flush()
        record_org_event(
            actor,
            org,
            "member.role_changed",
            "user",
            membership.user_id,
            before=before,
            after={**member_snapshot(membership), "reason": "role_mapping"},
        )


def _refuse_if_full(org: Organization, policy_cap: int) -> None:
    """Called under ``lock_org``: refuse one more active member past the org's cap (its own,
    or a stricter one of its policy)."""
    cap = min(org.member_cap, policy_cap)
    seats = db.session.scalar(_COUNT_SEATS, {"org_id": org.id, "cap": cap})
    if seats >= cap:
        telemetry.policy_refused("member_cap")
        raise Conflict("member_cap_reached", f"This organization is at its cap of {cap} members")


def _admit(org: Organization, email: str, *, takes_seat: bool) -> None:
    """Called under ``lock_org``: the org's policy on who joins (or comes back) and, for an
    active member, its seats."""
    policy = org_policy(org)
    enforce(policy, Attempt(Action.JOIN, email=email))
    if takes_seat:
        _refuse_if_full(org, policy.member_cap)


def _refuse_if_last_owner(membership: Membership) -> None:
    """Called under ``lock_org``: refuse to take away the org's last active owner."""
    if (
        membership.role == Role.OWNER
        and membership.status is MembershipStatus.ACTIVE
        and count_active_owners(membership.org_id) <= 1
    ):
        raise Conflict("last_owner", "An organization must keep at least one owner")


def join_org(
    org: Organization,
    user: User,
    *,
    role: str,
    source: MembershipSource,
    status: MembershipStatus = MembershipStatus.ACTIVE,
    email: str | None = None,
    name: str | None = None,
) -> Membership:
    """Create the membership, under the org lock so the cap holds under concurrency.

    Callers go through ``idp.people.admit``, which decides who the person is; each writes
    its own audit event. ``email`` and ``name`` are what this org knows the person by. A
    member joining suspended takes no seat.
    """
    lock_org(org.id)
    if find_membership(org.id, user.id) is not None:
        raise Conflict("already_member", "That user is already a member of this organization")
    email = email or user.email
    _admit(org, email, takes_seat=status is MembershipStatus.ACTIVE)
    # Ids set here rather than at flush, so the caller's writes can go out in one flush.
    membership = Membership(
        id=new_id("mem"),
        org_id=org.id,
        user_id=user.id,
        user=user,
        role=role,
        assigned_role=role,
        source=source,
        status=status,
        email=email,
        email_key=normalize_email(email) if email else None,
        name=name,
    )
    db.session.add(membership)
    return membership


def raise_assigned_role(membership: Membership, role: str, book: RoleBook) -> None:
    """Raise the role set by hand (an invitation taken up by a member); never lowers it."""
    rank = book.rank(role)
    if rank > book.rank(membership.assigned_role or membership.role):
        membership.assigned_role = role
    if rank > book.rank(membership.role):
        membership.role = role
    db.session.flush()


def verified_domains(org_id: str) -> frozenset[str]:
    """The email domains the org has proven by DNS: its own addresses."""
    return frozenset(
        db.session.scalars(
            select(Domain.domain).where(
                Domain.org_id == org_id, Domain.status == DomainStatus.VERIFIED
            )
        )
    )


def enforce_invitation_policy(org: Organization, attempt: Attempt) -> None:
    """The org's policy on letting someone in on another's word: an invitation sent or
    accepted, a link used, an admin's direct add. The org's verified domains are filled in
    (and looked up) only when the org refuses external invitations."""
    policy = org_policy(org)
    domains = frozenset() if policy.external_invites else verified_domains(org.id)
    enforce(policy, replace(attempt, org_domains=domains))


def change_role(actor: Actor, org: Organization, user_id: str, role: str) -> Membership:
    """Set a member's role (a key of the org's roles) by hand; groups mapped to a higher
    role keep them higher."""
    check_permission(actor, Permission.MEMBERS_UPDATE)
    book = org_roles(org)
    wanted = hold_role(book, role)  # not deleted meanwhile; the role's lock before the org's
    lock_org(org.id)
    membership = get_membership(org.id, user_id, fresh=True)
    if membership.role == role:
        membership.assigned_role = role
        return membership
    check_role_authority(actor, org, membership.role, role)
    mapped = mapped_roles(org.id, [membership.id], book).get(membership.id)
    if mapped is not None and mapped.rank > wanted.rank:
        raise Conflict(
            "role_from_group_mapping",
            f"This member's IdP groups map them to {mapped.key}; change the groups or mapping",
        )
    _refuse_if_last_owner(membership)
    before = member_snapshot(membership)
    membership.role = membership.assigned_role = role
    db.session.flush()
    record_org_event(
        actor,
        org,
        "member.role_changed",
        "user",
        user_id,
        before=before,
        after=member_snapshot(membership),
    )
    return membership


def set_member_status(
    actor: Actor, org: Organization, user_id: str, status: MembershipStatus
) -> Membership:
    """Suspend or reactivate a membership; a suspended member keeps the row but no access."""
    check_permission(actor, Permission.MEMBERS_UPDATE)
    lock_org(org.id)
    membership = get_membership(org.id, user_id, fresh=True)
    if membership.status is status:
        return membership
    check_role_authority(actor, org, membership.role)
    if status is MembershipStatus.SUSPENDED:
        _refuse_if_last_owner(membership)
    else:  # becoming active again is joining again, as far as the policy goes
        _admit(org, membership.user.email, takes_seat=True)
    before = member_snapshot(membership)
    membership.status = status
    if status is MembershipStatus.SUSPENDED:
        cut_member_access(org.id, user_id, "member_suspended")
    db.session.flush()
    action = "member.suspended" if status is MembershipStatus.SUSPENDED else "member.reactivated"
    record_org_event(
        actor,
        org,
        action,
        "user",
        user_id,
        before=before,
        after=member_snapshot(membership),
    )
    return membership


def remove_member(actor: Actor, org: Organization, user_id: str) -> None:
    check_permission(actor, Permission.MEMBERS_REMOVE)
    lock_org(org.id)
    membership = get_membership(org.id, user_id, fresh=True)
    check_role_authority(actor, org, membership.role)
    _delete_membership(actor, org, membership, "member.removed")


def leave_org(actor: Actor, org: Organization) -> None:
    """A person leaves an org of their own accord."""
    check_permission(actor, Permission.MEMBERSHIP_LEAVE)
    if actor.user_id is None:
        raise BadRequest("not_a_person", "Only a signed-in person can leave an organization")
    lock_org(org.id)
    _delete_membership(actor, org, get_membership(org.id, actor.user_id, fresh=True), "member.left")


def _delete_membership(
    actor: Actor, org: Organization, membership: Membership, action: str
) -> None:
    _refuse_if_last_owner(membership)
    before = member_snapshot(membership)
    db.session.delete(membership)
    cut_member_access(org.id, membership.user_id, "member_removed")
    db.session.flush()
    record_org_event(
        actor,
        org,
        action,
        "user",
        membership.user_id,
        before=before,
    )


def transfer_ownership(
    actor: Actor,
    org: Organization,
    *,
    to_user_id: str,
    confirm: str,
    from_user_id: str | None = None,
) -> Membership:
    """Make an existing member the owner; the giving owner steps down to admin.

    ``confirm`` must repeat the org's slug: ownership moves only on an explicit confirmation.
    """
    check_permission(actor, Permission.ORG_TRANSFER)
    if confirm != org.slug:
        raise BadRequest(
            "confirmation_required", "Repeat the organization's slug in 'confirm' to transfer"
        )
    from_user_id = actor.user_id or from_user_id
    if from_user_id is None:
        raise BadRequest("from_user_required", "Name the owner giving up ownership")
    if from_user_id == to_user_id:
        raise BadRequest("same_user", "Ownership cannot be transferred to the same person")
    lock_org(org.id)
    giver = get_membership(org.id, from_user_id, fresh=True)
    receiver = get_membership(org.id, to_user_id, fresh=True)
    if giver.role != Role.OWNER or giver.status is not MembershipStatus.ACTIVE:
        raise Conflict("not_an_owner", "Only an active owner can hand over ownership")
    if receiver.status is not MembershipStatus.ACTIVE:
        raise Conflict("member_suspended", "Ownership can only go to an active member")
    before = {"from": member_snapshot(giver), "to": member_snapshot(receiver)}
    receiver.role = Role.OWNER
    giver.role = Role.ADMIN
    db.session.flush()
    record_org_event(
        actor,
        org,
        "org.ownership_transferred",
        "user",
        to_user_id,
        before=before,
        after={"from": member_snapshot(giver), "to": member_snapshot(receiver)},
    )
    return receiver


def list_members(
    org_id: str,
    *,
    roles: Iterable[str] = (),
    q: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Membership]:
    """An org's members in join order; ``q`` matches the email or name the org knows them by,
    case-insensitively."""
    query = (
        select(Membership)
        .join(Membership.user)
        .options(contains_eager(Membership.user))
        .where(Membership.org_id == org_id)
    )
    roles = list(roles)
    if roles:
        query = query.where(Membership.role.in_(roles))
    if q:
        pattern = contains_pattern(q)
        query = query.where(
            or_(
                Membership.email_key.like(pattern, escape="\\"),
                func.lower(Membership.name).like(pattern, escape="\\"),
            )
        )
    return paginate(query, Membership.id, cursor=cursor, limit=limit)
