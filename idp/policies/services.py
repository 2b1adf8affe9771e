"""Setting, clearing and explaining policies; what a change would affect (dry run).

The workspace baseline may hold any valid values; an org's override may only be at least as
strict as what the org inherits (422 ``policy_looser_than_inherited``). Every change refreshes
the effective policy of the orgs below it at once and is audited with before and after: the
change itself in the changed org's log (the workspace's for a baseline), and each descendant
whose effective policy changed gets ``policy.inherited_changed`` in its own log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from idp.actors import Actor
from idp.audit.services import record_event, record_org_event
from idp.connections.models import Connection
from idp.db import db, utcnow, workspace_wide
from idp.orgs.models import Membership, MembershipStatus, Organization, Workspace
from idp.orgs.roles import Permission
from idp.orgs.services import check_permission, check_workspace_authority, count_active_members
from idp.policies.chain import (
    WORKSPACE_SOURCE,
    Pending,
    descendants,
    inherited_levels,
    lock_policies,
    org_levels,
    org_policy,
    org_source,
    policy_diff,
    policy_of,
    refresh_effective_policies,
    workspace_orgs,
)
from idp.policies.enforcement import Action, Attempt, violations
from idp.policies.registry import (
    KEYS,
    Level,
    Policy,
    check_override,
    dump_values,
    effective,
    load_stored,
    parse_policy,
    policy_key,
)
from idp.sessions.models import Session
from idp.sessions.services import session_attempt
from idp.users.models import User

SAMPLE = 100  # members and sessions listed by a dry run; the counts are complete
SCAN_LIMIT = 100_000  # sessions a dry run looks at per org


# --- reading --------------------------------------------------------------------------


def _explained(levels: list[Level], org: Organization | None = None) -> dict[str, Any]:
    """Each key's value, source and superseded levels; for an org also what it inherits and
    its own override."""
    inherited = effective(inherited_levels(org)) if org is not None else None
    own = load_stored(org.policy_overrides) if org is not None else {}
    result = {}
    for name, entry in effective(levels).items():
        key = KEYS[name]
        item: dict[str, Any] = {
            "value": key.to_json(entry.value),
            "source": entry.source,
            "superseded": list(entry.superseded),
        }
        if inherited is not None:
            item["inherited"] = key.to_json(inherited[name].value)
            item["override"] = key.to_json(own[name]) if name in own else None
        result[name] = item
    return result


def workspace_policy(workspace: Workspace, *, explain_values: bool = False) -> dict[str, Any]:
    """The baseline as stored, and every key's resulting value (with its source)."""
    stored = load_stored(workspace.baseline_policy)
    body: dict[str, Any] = {"baseline": dump_values(stored)}
    levels = [Level(WORKSPACE_SOURCE, stored, baseline=True)]
    if explain_values:
        body["effective"] = _explained(levels)
    else:
        body["effective"] = policy_of(levels).to_json()
    return body


def org_policy_document(org: Organization) -> dict[str, Any]:
    """An org's stored overrides and which of them stricter inherited values supersede."""
    overrides = load_stored(org.policy_overrides)
    explained = effective(org_levels(org))
    superseded = sorted(n for n in overrides if org_source(org) in explained[n].superseded)
    return {"org": org.slug, "overrides": dump_values(overrides), "superseded": superseded}


def effective_org_policy(org: Organization, *, explain_values: bool = False) -> dict[str, Any]:
    """The org's effective policy; with ``explain_values`` each key's source and the chain."""
    if not explain_values:
        return {"org": org.slug, "policy": org_policy(org).to_json()}
    levels = org_levels(org)
    return {
        "org": org.slug,
        "policy": policy_of(levels).to_json(),
        "keys": _explained(levels, org),
        "chain": [level.source for level in levels],
    }


# --- changing -------------------------------------------------------------------------


def _check_workspace_actor(actor: Actor) -> None:
    check_workspace_authority(actor, "The workspace baseline needs workspace authority")


def set_workspace_policy(
    actor: Actor,
    workspace: Workspace,
    raw: Mapping[str, Any],
    *,
    merge: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Replace (or, with ``merge``, update) the baseline; every org's effective policy
    follows at once."""
    _check_workspace_actor(actor)
    values = parse_policy(raw)
    if not dry_run:
        lock_policies(workspace.id)
    stored = load_stored(workspace.baseline_policy)
    return _store_baseline(actor, workspace, {**stored, **values} if merge else values, dry_run)


def clear_workspace_policy(
    actor: Actor, workspace: Workspace, keys: list[str], *, dry_run: bool = False
) -> dict[str, Any]:
    """Drop ``keys`` from the baseline: they are the registry's defaults again."""
    _check_workspace_actor(actor)
    for name in keys:
        policy_key(name)  # an unknown key is 400 unknown_policy_key
    if not dry_run:
        lock_policies(workspace.id)
    stored = load_stored(workspace.baseline_policy)
    kept = {n: v for n, v in stored.items() if n not in keys}
    return _store_baseline(actor, workspace, kept, dry_run)


def _store_baseline(
    actor: Actor, workspace: Workspace, values: dict[str, Any], dry_run: bool
) -> dict[str, Any]:
    orgs = workspace_orgs(workspace.id)
    after_doc = dump_values(values)
    if dry_run:
        return _dry_run({"baseline": after_doc}, _plan(orgs, {WORKSPACE_SOURCE: values}))
    before_doc = dict(workspace.baseline_policy or {})
    if before_doc == after_doc:
        return {"dry_run": False, **workspace_policy(workspace)}  # nothing changes, nothing logged
    workspace.baseline_policy = after_doc
    db.session.flush()
    changed = refresh_effective_policies(orgs)
    record_event(
        actor,
        "workspace.policy_updated",
        workspace_id=workspace.id,
        org_id=None,
        target_type="workspace",
        target_id=workspace.id,
        before={"baseline": before_doc},
        after={"baseline": after_doc, "orgs_changed": len(changed)},
    )
    for org, before, after in changed:
        _record_inherited(actor, org, before, after, WORKSPACE_SOURCE)
    return {"dry_run": False, **workspace_policy(workspace)}


def set_org_policy(
    actor: Actor,
    org: Organization,
    raw: Mapping[str, Any],
    *,
    merge: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Replace (or, with ``merge``, update) the org's overrides, each at least as strict as
    what the org inherits. A key whose stored value is sent again unchanged is kept as it
    is, even if a stricter inherited value now supersedes it."""
    check_permission(actor, Permission.POLICIES_WRITE)
    requested = parse_policy(raw)
    if not dry_run:
        lock_policies(org.workspace_id)
    stored = load_stored(org.policy_overrides)
    inherited = policy_of(inherited_levels(org))
    for name, value in requested.items():
        if name in stored and stored[name] == value:
            continue
        check_override(name, inherited[name], value)
    overrides = {**stored, **requested} if merge else requested
    return _store_overrides(actor, org, overrides, dry_run=dry_run)


def clear_org_policy(
    actor: Actor, org: Organization, keys: list[str] | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Drop the org's overrides (all, or ``keys``): it inherits those keys again."""
    check_permission(actor, Permission.POLICIES_WRITE)
    if not dry_run:
        lock_policies(org.workspace_id)
    stored = load_stored(org.policy_overrides)
    for name in keys or []:
        policy_key(name)  # an unknown key is 400 unknown_policy_key
    overrides = {} if keys is None else {n: v for n, v in stored.items() if n not in keys}
    return _store_overrides(actor, org, overrides, dry_run=dry_run)


def _store_overrides(
    actor: Actor, org: Organization, overrides: dict[str, Any], *, dry_run: bool
) -> dict[str, Any]:
    after_doc = dump_values(overrides)
    subtree = [org, *descendants(org)]
    if dry_run:
        plan = _plan(subtree, {org.id: overrides})
        return _dry_run({"org": org.slug, "overrides": after_doc}, plan)
    before_doc = dict(org.policy_overrides or {})
    if before_doc == after_doc:
        return {"dry_run": False, **org_policy_document(org)}  # nothing changes, nothing logged
    org.policy_overrides = after_doc
    db.session.flush()
    changed = {o.id: (before, after) for o, before, after in refresh_effective_policies(subtree)}
    own = changed.pop(org.id, None)
    record_org_event(
        actor,
        org,
        "org.policy_updated",
        "org",
        org.id,
        before={"overrides": before_doc},
        after={"overrides": after_doc, "effective": policy_diff(*own) if own else {}},
    )
    # Each descendant's own audit log tells what it now inherits: rows of other orgs than
    # the one the request declared, so written workspace-wide (row-level security).
    with workspace_wide():
        for other in subtree[1:]:
            if other.id in changed:
                _record_inherited(actor, other, *changed[other.id], org_source(org))
    return {"dry_run": False, **org_policy_document(org)}


def _record_inherited(
    actor: Actor, org: Organization, before: Policy, after: Policy, cause: str
) -> None:
    diff = policy_diff(before, after)
    record_org_event(
        actor,
        org,
        "policy.inherited_changed",
        "org",
        org.id,
        before={k: v["before"] for k, v in diff.items()},
        after={**{k: v["after"] for k, v in diff.items()}, "cause": cause},
    )


# --- dry run --------------------------------------------------------------------------


def _plan(orgs: list[Organization], pending: Pending) -> list[tuple[Organization, Policy, Policy]]:
    """(org, before, after) of each org whose effective policy the pending change would
    alter, computed without writing anything."""
    plan = []
    for org in orgs:
        before, after = org_policy(org), policy_of(org_levels(org, pending))
        if before.to_json() != after.to_json():
            plan.append((org, before, after))
    return plan


def _dry_run(requested: dict[str, Any], plan: list[tuple[Organization, Policy, Policy]]) -> dict:
    return {
        "dry_run": True,
        "requested": requested,
        "orgs": [_impact(org, before, after) for org, before, after in plan],
    }


def _impact(org: Organization, before: Policy, after: Policy) -> dict[str, Any]:
    """Who in ``org`` the change from ``before`` to ``after`` would newly affect."""
    now = utcnow()
    members: list[dict[str, Any]] = []
    member_count = 0
    if after.allowed_email_domains != before.allowed_email_domains:
        rows = db.session.execute(
            select(User.id, User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == org.id, Membership.status == MembershipStatus.ACTIVE)
            .order_by(User.id)
        )
        for user_id, email in rows:
            join = Attempt(Action.JOIN, email=email)
            if _newly_broken(before, after, join):
                member_count += 1
                if len(members) < SAMPLE:
                    members.append({"user_id": user_id, "email": email})
    sessions: list[dict[str, Any]] = []
    session_count = 0
    rows = db.session.execute(
        select(Session, Connection.org_id)
        .outerjoin(Connection, Connection.id == Session.connection_id)
        .where(
            Session.org_id == org.id,
            Session.revoked_at.is_(None),
            Session.expires_at > now,
        )
        .order_by(Session.id)
        .limit(SCAN_LIMIT)
    )
    for session, connection_org in rows:
        attempt = session_attempt(session, org.id, connection_org, now, email=session.user.email)
        broken = _newly_broken(before, after, attempt)
        if broken:
            session_count += 1
            if len(sessions) < SAMPLE:
                sessions.append(
                    {"session_id": session.id, "user_id": session.user_id, "keys": broken}
                )
    impact: dict[str, Any] = {
        "slug": org.slug,
        "changes": policy_diff(before, after),
        "members": {"count": member_count, "sample": members},
        "sessions": {"count": session_count, "sample": sessions},
    }
    if after.member_cap < before.member_cap:
        active = count_active_members(org.id)
        impact["member_cap"] = {"active": active, "cap": after.member_cap}
    return impact


def _newly_broken(before: Policy, after: Policy, attempt: Attempt) -> list[str]:
    was = {key for key, _ in violations(before, attempt)}
    return [key for key, _ in violations(after, attempt) if key not in was]
