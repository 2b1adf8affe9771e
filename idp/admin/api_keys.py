"""API keys (per org, with a role never above the creator's, or workspace-wide); SCIM tokens."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.credentials import services
from idp.credentials.models import ApiKey, ScimToken
from idp.orgs.roles import Permission
from idp.pagination import Page


def _created(key: ApiKey, token: str) -> tuple[dict[str, Any], int]:
    return {**s.ApiKeyOut().dump(key), "key": token}, 201


@operation(
    "/orgs/<slug>/api-keys",
    permission=Permission.API_KEYS_WRITE,
    query=s.PageQuery,
    response=s.ApiKeyOut,
    paged=True,
)
def list_org_keys(ctx: Ctx, args: dict[str, Any]) -> Page[ApiKey]:
    """List the org's API keys (never the keys themselves)."""
    return services.list_api_keys(ctx.workspace_id, org_id=ctx.org.id, **args)


@operation(
    "/orgs/<slug>/api-keys",
    "POST",
    permission=Permission.API_KEYS_WRITE,
    body=s.ApiKeyCreate,
    response=s.ApiKeyCreated,
    status=201,
)
def create_org_key(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Create an org API key; the key is in this response only."""
    key, token = services.create_api_key(ctx.actor, ctx.workspace_id, org=ctx.org, **data)
    return _created(key, token)


@operation("/orgs/<slug>/api-keys/<key_id>", "DELETE", permission=Permission.API_KEYS_WRITE)
def revoke_org_key(ctx: Ctx, key_id: str) -> None:
    """Revoke an org API key."""
    services.revoke_api_key(ctx.actor, ctx.workspace_id, key_id, org=ctx.org)


@operation("/api-keys", scope="workspace", query=s.PageQuery, response=s.ApiKeyOut, paged=True)
def list_workspace_keys(ctx: Ctx, args: dict[str, Any]) -> Page[ApiKey]:
    """List workspace API keys."""
    return services.list_api_keys(ctx.workspace_id, org_id=None, **args)


@operation(
    "/api-keys",
    "POST",
    scope="workspace",
    body=s.ApiKeyCreate,
    response=s.ApiKeyCreated,
    status=201,
)
def create_workspace_key(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Create a workspace API key (owner authority in every org); shown once."""
    key, token = services.create_api_key(ctx.actor, ctx.workspace_id, name=data["name"])
    return _created(key, token)


@operation("/api-keys/<key_id>", "DELETE", scope="workspace")
def revoke_workspace_key(ctx: Ctx, key_id: str) -> None:
    """Revoke a workspace API key (never the last live one: 409 ``last_workspace_key``)."""
    services.revoke_api_key(ctx.actor, ctx.workspace_id, key_id)


@operation(
    "/orgs/<slug>/scim-tokens",
    permission=Permission.SCIM_TOKENS_WRITE,
    query=s.PageQuery,
    response=s.ScimTokenOut,
    paged=True,
)
def list_scim_tokens(ctx: Ctx, args: dict[str, Any]) -> Page[ScimToken]:
    """List the org's SCIM tokens (never the tokens themselves)."""
    return services.list_scim_tokens(ctx.org.id, **args)


@operation(
    "/orgs/<slug>/scim-tokens",
    "POST",
    permission=Permission.SCIM_TOKENS_WRITE,
    body=s.ScimTokenCreate,
    response=s.ScimTokenCreated,
    status=201,
)
def create_scim_token(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Create a SCIM token for the org's IdP; the token is in this response only."""
    credential, token = services.create_scim_token(ctx.actor, ctx.org, **data)
    base_url = services.scim_base_url(ctx.org)
    return {**s.ScimTokenOut().dump(credential), "token": token, "scim_base_url": base_url}, 201


@operation("/orgs/<slug>/scim-tokens/<token_id>", "DELETE", permission=Permission.SCIM_TOKENS_WRITE)
def revoke_scim_token(ctx: Ctx, token_id: str) -> None:
    """Revoke a SCIM token."""
    services.revoke_scim_token(ctx.actor, ctx.org, token_id)
