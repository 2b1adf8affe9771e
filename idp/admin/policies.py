"""Policies: the workspace baseline, an org's overrides, and its effective policy explained."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.db import db
from idp.errors import BadRequest
from idp.orgs.models import Workspace
from idp.orgs.roles import Permission
from idp.policies import services


def _workspace(ctx: Ctx) -> Workspace:
    return db.session.get(Workspace, ctx.workspace_id)


@operation(
    "/workspace/policy", scope="workspace", query=s.EffectivePolicyQuery, response=s.POLICY_ANSWER
)
def get_workspace_policy(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """The workspace baseline every org inherits, and each key's resulting value."""
    return services.workspace_policy(_workspace(ctx), explain_values=args["explain"])


@operation(
    "/workspace/policy",
    "PUT",
    scope="workspace",
    body=s.PolicyDocument,
    query=s.PolicyQuery,
    response=s.POLICY_ANSWER,
    errors=("422",),  # an override looser than what it inherits
)
def put_workspace_policy(ctx: Ctx, data: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """Replace the baseline (``?dry_run=1``: only report whom it would affect)."""
    return services.set_workspace_policy(ctx.actor, _workspace(ctx), data, dry_run=args["dry_run"])


@operation("/orgs/<slug>/policy", permission=Permission.ORG_READ, response=s.POLICY_ANSWER)
def get_org_policy(ctx: Ctx) -> dict[str, Any]:
    """The org's own overrides, and which of them a stricter inherited value supersedes."""
    return services.org_policy_document(ctx.org)


@operation(
    "/orgs/<slug>/policy",
    "PUT",
    permission=Permission.POLICIES_WRITE,
    body=s.PolicyDocument,
    query=s.PolicyQuery,
    response=s.POLICY_ANSWER,
    errors=("422",),  # an override looser than what it inherits
)
def put_org_policy(ctx: Ctx, data: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """Replace the org's overrides; each must be at least as strict as what it inherits."""
    return services.set_org_policy(ctx.actor, ctx.org, data, dry_run=args["dry_run"])


@operation(
    "/orgs/<slug>/policy",
    "DELETE",
    permission=Permission.POLICIES_WRITE,
    query=s.PolicyClearQuery,
    response=s.POLICY_ANSWER,
    errors=("422",),
)
def delete_org_policy(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """Drop the org's overrides (all, or ``?keys=a,b``): it inherits them again."""
    keys = None
    if args["keys"] is not None:
        keys = [k.strip() for k in args["keys"].split(",") if k.strip()]
        if not keys:  # an empty list must not widen into "every override"
            raise BadRequest("invalid_request", "keys names no policy key; omit it to drop all")
    return services.clear_org_policy(ctx.actor, ctx.org, keys, dry_run=args["dry_run"])


@operation(
    "/orgs/<slug>/policy/effective",
    permission=Permission.ORG_READ,
    query=s.EffectivePolicyQuery,
    response=s.POLICY_ANSWER,
)
def get_effective_policy(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """The org's effective policy; ``?explain=1``: each key's value, source and chain."""
    return services.effective_org_policy(ctx.org, explain_values=args["explain"])
