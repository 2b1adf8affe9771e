"""The inheritance chain of an org's policy (workspace baseline → parent orgs → the org) and
the effective policy kept in each org's row.

The effective policy is materialized (``organizations.effective_policy``) so that the hot
paths (forward-auth, token refresh, joins) read one column instead of walking the chain; every
change to a baseline, an override or an org's place in the tree refreshes the orgs below it
in the same transaction, so a tightening takes effect at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from idp.db import db, lock_row
from idp.orgs.models import Organization, Workspace
from idp.policies.registry import Level, Policy, effective, load_stored

WORKSPACE_SOURCE = "workspace"


def lock_policies(workspace_id: str) -> None:
    """Serialize policy changes (and org creation) of a workspace until the transaction ends,
    then read afresh: two changes computing effective policies from each other's old state
    could otherwise leave an org looser than its chain says."""
    db.session.flush()
    lock_row(Workspace, workspace_id)
    db.session.expire_all()  # flushed changes stay in the transaction; reads see the latest


def org_source(org: Organization) -> str:
    return f"org:{org.slug}"


def seat_source(org: Organization) -> str:
    """The org's own ``member_cap`` attribute (its seats), a level of its own chain only."""
    return f"org:{org.slug}/member_cap"


def ancestors(org: Organization) -> list[Organization]:
    """The org's parents, the root first."""
    found: list[Organization] = []
    parent_id = org.parent_id
    while parent_id is not None:
        parent = db.session.get(Organization, parent_id)
        if parent is None or parent in found:  # a cycle cannot be made; stop rather than spin
            break
        found.append(parent)
        parent_id = parent.parent_id
    return found[::-1]


# A change not stored yet, for a dry run: the baseline (key WORKSPACE_SOURCE) or an org's
# overrides (key: the org's id), as values.
Pending = Mapping[str, Mapping[str, Any]]


def _stored(
    key: str, document: Mapping[str, Any] | None, pending: Pending | None
) -> Mapping[str, Any]:
    return pending[key] if pending and key in pending else load_stored(document)


def inherited_levels(org: Organization, pending: Pending | None = None) -> list[Level]:
    """What the org inherits: the workspace baseline, then each parent's overrides."""
    workspace = db.session.get(Workspace, org.workspace_id)
    baseline = workspace.baseline_policy if workspace is not None else {}
    levels = [Level(WORKSPACE_SOURCE, _stored(WORKSPACE_SOURCE, baseline, pending), baseline=True)]
    levels += [
        Level(org_source(a), _stored(a.id, a.policy_overrides, pending)) for a in ancestors(org)
    ]
    return levels


def org_levels(org: Organization, pending: Pending | None = None) -> list[Level]:
    """The whole chain of ``org``: what it inherits, its overrides, its own member cap."""
    return [
        *inherited_levels(org, pending),
        Level(org_source(org), _stored(org.id, org.policy_overrides, pending)),
        Level(seat_source(org), {"member_cap": org.member_cap}),
    ]


def policy_of(levels: Iterable[Level]) -> Policy:
    return Policy({name: e.value for name, e in effective(levels).items()})


def org_policy(org: Organization) -> Policy:
    """The org's effective policy, as last refreshed (one column, no chain walk). An empty
    column (a row from before policies, or inserted by an older release during an upgrade)
    is not computed yet: the chain says what it is."""
    if not org.effective_policy:
        return policy_of(org_levels(org))
    return Policy.from_json(org.effective_policy)


def descendants(org: Organization) -> list[Organization]:
    """Every live org below ``org``, parents before their children."""
    found: list[Organization] = []
    frontier = [org.id]
    while frontier:
        children = db.session.scalars(
            select(Organization)
            .where(Organization.parent_id.in_(frontier), Organization.deleted_at.is_(None))
            .order_by(Organization.slug)
        ).all()
        found += children
        frontier = [c.id for c in children]
    return found


def workspace_orgs(workspace_id: str) -> list[Organization]:
    return list(
        db.session.scalars(
            select(Organization)
            .where(Organization.workspace_id == workspace_id, Organization.deleted_at.is_(None))
            .order_by(Organization.slug)
        )
    )


def refresh_effective_policies(
    orgs: Iterable[Organization],
) -> list[tuple[Organization, Policy, Policy]]:
    """Recompute and store the effective policy of ``orgs``; (org, before, after) of each that
    changed. The caller has already stored the new baseline or overrides."""
    changed = []
    for org in orgs:
        before = org_policy(org)
        after = policy_of(org_levels(org))
        stored = after.to_json()
        if org.effective_policy != stored:
            org.effective_policy = stored
        if before.to_json() != stored:
            changed.append((org, before, after))
    db.session.flush()
    return changed


def policy_diff(before: Policy, after: Policy) -> dict[str, dict]:
    """``{key: {"before", "after"}}`` (JSON form) of the keys whose value changed."""
    old, new = before.to_json(), after.to_json()
    return {k: {"before": old[k], "after": new[k]} for k in new if old[k] != new[k]}
