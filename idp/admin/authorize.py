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
from idp.errors import NotFound
from idp.orgs.models import Membership, MembershipStatus, Organization
from idp.orgs.role_book import cached_role_book, roles_version
from idp.orgs.roles import decide
from idp.orgs.services import find_membership
from idp.pagination import Page
from idp.resources import services as resources


def _answer(
    allowed: bool, role: str | None, reason: str, scope: dict[str, str] | None = None
) -> dict[str, Any]:
    return {"allowed": allowed, "role": role, "reason": reason, "scope": scope}


def _memberships(
    ctx: Ctx, checks: Sequence[dict[str, Any]], known: frozenset[str]
) -> dict[tuple[str, str], tuple[str, str, MembershipStatus]]:
    """(org slug, user id) → (org id, role key, status) for every check, in one query."""
    pairs = {(c["org"], c["user_id"]) for c in checks if c["permission"] in known}
    if not pairs:
        return {}
    query = (
        select(
            Organization.slug,
            Membership.user_id,
            Organization.id,
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
        (slug, user): (org_id, role, status)
        for slug, user, org_id, role, status in db.session.execute(query)
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
        org_id, key, status = found.get((check["org"], check["user_id"]), (None, None, None))
        if status is MembershipStatus.SUSPENDED:
            results.append(_answer(False, None, "member_suspended"))
            continue
        role = None
        if org_id is not None:
            role = cached_role_book(ctx.workspace_id, org_id, version).find(key)
        if role is not None and check.get("resource"):
            results.append(_on_resource(org_id, check, role.permissions))
            continue
        decision = decide(role, check["permission"])
        if decision.allowed:
            results.append(_answer(True, key, "granted"))
        elif decision.role is None:
            results.append(_answer(False, None, "not_a_member"))
        else:
            results.append(_answer(False, key, "permission_not_in_role"))
    return results


def _on_resource(org_id: str, check: dict[str, Any], org_permissions: frozenset[str]) -> Any:
    """A member's check on one of the org's resources: their org role, or a role on it or
    above it (``idp.resources``)."""
    org = db.session.get(Organization, org_id)
    membership = find_membership(org_id, check["user_id"])
    try:
        resource = resources.get_resource(org, check["resource"]["type"], check["resource"]["id"])
    except NotFound:
        return _answer(False, None, "unknown_resource")
    decision = resources.decide_on_resource(
        membership, org_permissions, check["permission"], resource
    )
    return _answer(decision.allowed, decision.role, decision.reason, decision.scope)


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
) -> Any:
    """Shown nothing (an empty page) for a person who is not a member, as for one with no
    grant: the answer tells nothing of other tenants."""
    kind = resources.get_resource_type(ctx.workspace_id, type)  # 400 for an unknown type
    empty: Page[Any] = Page([], None)
    found = _memberships(
        ctx, [{"org": org, "user_id": user_id, "permission": permission}], frozenset({permission})
    )
    if (org, user_id) not in found:
        return empty  # not a member (or another org's person): nothing, as for no grant
    org_id, key, _status = found[(org, user_id)]
    version = roles_version(ctx.workspace_id) or 0
    role = cached_role_book(ctx.workspace_id, org_id, version).find(key)
    membership = find_membership(org_id, user_id)
    return resources.resources_allowed(
        membership, role.permissions if role else (), permission, kind, cursor=cursor, limit=limit
    )
