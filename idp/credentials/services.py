"""API keys: create (token shown once), authenticate, list, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from idp.actors import Actor, ActorKind
from idp.audit.services import record_event
from idp.credentials.models import ApiKey
from idp.crypto import new_token, token_digest
from idp.db import db, utcnow
from idp.errors import Conflict, Forbidden, NotFound
from idp.orgs.models import Organization
from idp.orgs.roles import Permission, Role
from idp.orgs.services import check_permission, validate_name
from idp.pagination import Page, paginate

TOKEN_PREFIX = "ghk"  # noqa: S105 - a public prefix for secret scanners
LAST_USED_GRANULARITY = timedelta(minutes=1)


def key_snapshot(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "org_id": key.org_id,
        "role": key.role.value if key.role else None,
        "hint": key.hint,
        "revoked": key.revoked_at is not None,
    }


def create_api_key(
    actor: Actor,
    workspace_id: str,
    *,
    name: str,
    org: Organization | None = None,
    role: Role = Role.ADMIN,
) -> tuple[ApiKey, str]:
    """A workspace key (``org`` None: owner authority everywhere) or a key for one org.

    An org key never holds more than its creator: only owner authority mints owner keys.
    """
    if org is None:
        if not actor.is_workspace:
            raise Forbidden("forbidden", "Workspace keys need workspace authority")
    else:
        check_permission(actor, Permission.API_KEYS_WRITE)
        if actor.role is None or role.rank > actor.role.rank:
            raise Forbidden("role_above_creator", "A key cannot hold more than its creator")
    token = new_token(TOKEN_PREFIX)
    key = ApiKey(
        workspace_id=workspace_id,
        org_id=org.id if org else None,
        name=validate_name(name),
        role=role if org else None,
        token_digest=token_digest(token),
        hint=token[-4:],
        created_by=actor.label,
    )
    db.session.add(key)
    db.session.flush()
    record_event(
        actor,
        "api_key.created",
        workspace_id=workspace_id,
        org_id=key.org_id,
        target_type="api_key",
        target_id=key.id,
        after=key_snapshot(key),
    )
    return key, token


def authenticate_api_key(token: str) -> ApiKey | None:
    """The live key this bearer token belongs to, or ``None``."""
    if not token.startswith(TOKEN_PREFIX + "_"):
        return None
    row = db.session.execute(
        select(ApiKey, Organization.deleted_at)
        .outerjoin(Organization, ApiKey.org_id == Organization.id)
        .where(ApiKey.token_digest == token_digest(token))
    ).first()
    if row is None:
        return None
    key, org_deleted_at = row
    now = utcnow()
    if key.revoked_at is not None or (key.expires_at and key.expires_at <= now):
        return None
    if key.org_id is not None and org_deleted_at is not None:
        return None
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        key.last_used_at = now  # coarse, so the hot path does not write on every call
    return key


def actor_for_key(key: ApiKey, request_id: str | None = None) -> Actor:
    return Actor(
        ActorKind.API_KEY,
        key.id,
        f"api_key:{key.name}",
        role=Role.OWNER if key.org_id is None else key.role,
        org_id=key.org_id,
        request_id=request_id,
        workspace_id=key.workspace_id,
    )


def list_api_keys(
    workspace_id: str, *, org_id: str | None, cursor: str | None = None, limit: int = 50
) -> Page[ApiKey]:
    """An org's keys, or (``org_id`` None) the workspace keys."""
    query = select(ApiKey).where(
        ApiKey.workspace_id == workspace_id,
        ApiKey.org_id.is_(None) if org_id is None else ApiKey.org_id == org_id,
    )
    return paginate(query, ApiKey.id, cursor=cursor, limit=limit)


def revoke_api_key(
    actor: Actor, workspace_id: str, key_id: str, *, org: Organization | None = None
) -> ApiKey:
    if org is None:
        if not actor.is_workspace:
            raise Forbidden("forbidden", "Workspace keys need workspace authority")
    else:
        check_permission(actor, Permission.API_KEYS_WRITE)
    key = db.session.scalar(
        select(ApiKey).where(
            ApiKey.workspace_id == workspace_id,
            ApiKey.id == key_id,
            ApiKey.org_id.is_(None) if org is None else ApiKey.org_id == org.id,
        )
    )
    if key is None:
        raise NotFound("api_key_not_found", "No such API key")
    if key.revoked_at is not None:
        raise Conflict("already_revoked", "This key is already revoked")
    if org is not None and key.role and (actor.role is None or key.role.rank > actor.role.rank):
        raise Forbidden("role_above_actor", "Only an owner can revoke an owner key")
    before = key_snapshot(key)
    key.revoked_at = utcnow()
    db.session.flush()
    record_event(
        actor,
        "api_key.revoked",
        workspace_id=workspace_id,
        org_id=key.org_id,
        target_type="api_key",
        target_id=key.id,
        before=before,
        after=key_snapshot(key),
    )
    return key
