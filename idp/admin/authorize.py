"""The authorization API: may this person do this in this org? One answer, or up to 100.

Every check is answered with 200 and ``{"allowed", "role", "reason"}``; only a malformed body
is a 400. ``role`` is the role the person acts with in the org (``null`` when they hold none:
not a member, or suspended). An org key may ask about its own org only; about any other org
the answer is ``not_a_member``, exactly as for an org that does not exist, so the answer
tells nothing about other tenants.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, tuple_

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.db import db
from idp.orgs.models import Membership, MembershipStatus, Organization, Team
from idp.orgs.role_book import cached_role_book, roles_version
from idp.orgs.roles import decide
from idp.resources import services as resources


def _answer(
    allowed: bool, role: str | None, reason: str, scope: dict[str, str] | None = None
) -> dict[str, Any]:
    return {"allowed": allowed, "role": role, "reason": reason, "scope": scope}


def _memberships(
    ctx: Ctx, checks: Sequence[dict[str, Any]], known: frozenset[str]
) -> dict[tuple[str, str], tuple[str, str, str, MembershipStatus]]:
    """(org slug, user id) → (org id, membership id, role key, status) for every check, in
    one query."""
    pairs = {
        (c["org"], c["user_id"]) for c in checks if c["permission"] in known and c.get("user_id")
    }
    if not pairs:
        return {}
    query = (
        select(
            Organization.slug,
            Membership.user_id,
            Organization.id,
            Membership.id,
            Membership.role,
            Membership.status,
        )
        .join(Membership, Membership.org_id == Organization.id)
        .where(
            Organization.workspace_id == ctx.workspace_id,
            Organization.deleted_at.is_(None),
            tuple_(Organization.slug, Membership.user_id).in_(sorted(pairs)),
        )
    )
    if not ctx.actor.is_workspace:  # an org key sees its own org only
        query = query.where(Organization.id == ctx.actor.org_id)
    return {
        (slug, user): (org_id, membership_id, role, status)
        for slug, user, org_id, membership_id, role, status in db.session.execute(query)
    }


def authorize_checks(ctx: Ctx, checks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decision of each check, in order, through ``roles.decide`` with the org's roles
    (built-in, templates, its own) and the app's permissions."""
    version = roles_version(ctx.workspace_id) or 0
    known = cached_role_book(ctx.workspace_id, None, version).known_permissions()
    found = _memberships(ctx, checks, known)
    results = []
    for check in checks:
        if check["permission"] not in known:
            results.append(_answer(False, None, "unknown_permission"))
            continue
        if check.get("team_id"):
            results.append(_for_team(ctx, check))
            continue
        org_id, membership_id, key, status = found.get(
            (check["org"], check["user_id"]), (None, None, None, None)
        )
        if status is MembershipStatus.SUSPENDED:
            results.append(_answer(False, None, "member_suspended"))
            continue
        role = None
        if org_id is not None:
            role = cached_role_book(ctx.workspace_id, org_id, version).find(key)
        if role is not None and check.get("resource"):
            decided = resources.decide_on_resource(
                ctx.workspace_id,
                membership_id,
                key,
                role.permissions,
                check["permission"],
                org_id,
                check["resource"],
            )
            results.append(_answer(decided.allowed, decided.role, decided.reason, decided.scope))
            continue
        decision = decide(role, check["permission"])
        if decision.allowed:
            results.append(_answer(True, key, "granted"))
        elif decision.role is None:
            results.append(_answer(False, None, "not_a_member"))
        else:
            results.append(_answer(False, key, "permission_not_in_role"))
    return results


def _for_team(ctx: Ctx, check: dict[str, Any]) -> dict[str, Any]:
    """A team's own decision (what its key may do): only what it was granted on resources;
    at the org itself a team holds nothing. Another org's team is as unknown as none."""
    query = (
        select(Organization.id)
        .join(Team, Team.org_id == Organization.id)
        .where(
            Organization.workspace_id == ctx.workspace_id,
            Organization.slug == check["org"],
            Organization.deleted_at.is_(None),
            Team.id == check["team_id"],
        )
    )
    if not ctx.actor.is_workspace:
        query = query.where(Organization.id == ctx.actor.org_id)
    org_id = db.session.scalar(query)
    if org_id is None:
        return _answer(False, None, "unknown_team")
    if not check.get("resource"):
        return _answer(False, None, "permission_not_in_role")
    decided = resources.decide_on_resource(
        ctx.workspace_id,
        "",
        None,
        (),
        check["permission"],
        org_id,
        check["resource"],
        team_id=check["team_id"],
    )
    return _answer(decided.allowed, decided.role, decided.reason, decided.scope)


@operation(
    "/authorize",
    "POST",
    scope="key",
    body=s.AuthorizeCheck,
    response=s.AuthorizeOut,
)
def authorize(ctx: Ctx, data: dict[str, Any]) -> dict[str, Any]:
    """Decide whether a person holds a permission in an org."""
    return authorize_checks(ctx, [data])[0]


@operation(
    "/authorize/batch",
    "POST",
    scope="key",
    body=s.AuthorizeBatch,
    response=s.AuthorizeBatchOut,
)
def authorize_batch(ctx: Ctx, data: dict[str, Any]) -> dict[str, Any]:
    """Decide up to 100 checks at once; the results follow the checks' order."""
    return {"results": authorize_checks(ctx, data["checks"])}


@operation(
    "/authorize/resources",
    "POST",
    scope="key",
    body=s.ResourceLookup,
    response=s.ResourceOut,
    paged=True,
)
def authorize_resources(ctx: Ctx, data: dict[str, Any]) -> Any:
    """List the org's resources of one type a person may do a permission on (paged)."""
    return lookup_resources(ctx, **data)


def lookup_resources(
    ctx: Ctx, *, user_id: str, org: str, permission: str, type: str, cursor: Any, limit: int
) -> dict[str, Any]:
    """Shown nothing (an empty page) for a person who is not an active member, as for one
    with no grant: the answer tells nothing of other tenants."""
    version = roles_version(ctx.workspace_id) or 0
    found = _memberships(
        ctx, [{"org": org, "user_id": user_id, "permission": permission}], frozenset({permission})
    )
    org_id, membership_id, key, status = found.get((org, user_id), (None, None, None, None))
    if org_id is None or status is not MembershipStatus.ACTIVE:
        resources.check_type(ctx.workspace_id, version, type)  # 400 for an unknown type
        return {"data": [], "next_cursor": None}
    role = cached_role_book(ctx.workspace_id, org_id, version).find(key)
    return resources.resources_allowed(
        ctx.workspace_id,
        version,
        type,
        org_id,
        membership_id,
        role.permissions if role else (),
        permission,
        cursor=cursor,
        limit=limit,
    )
