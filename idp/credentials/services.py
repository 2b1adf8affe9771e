"""API keys and SCIM tokens: create (token shown once), authenticate, list, revoke."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from idp.actors import Actor, ActorKind
from idp.audit.services import record_event, record_org_event
from idp.config import current_settings
from idp.credentials.models import ApiKey, ScimToken, SecretCredential
from idp.crypto import new_token, token_digest
from idp.db import db, lock_row, utcnow, workspace_wide
from idp.errors import Conflict, Forbidden, NotFound
from idp.orgs.models import Organization, Team, Workspace
from idp.orgs.role_book import hold_role, org_roles, role_def
from idp.orgs.roles import BUILTIN_ROLES, OWNER, Permission, Role, RoleDef
from idp.orgs.services import check_permission, validate_name
from idp.pagination import Page, paginate

TOKEN_PREFIX = "ghk"  # noqa: S105 - a public prefix for secret scanners
SCIM_TOKEN_PREFIX = "ghs"  # noqa: S105 - likewise
LAST_USED_GRANULARITY = timedelta(minutes=1)

# Every authenticated request runs one of these: built once, only the parameters change.
_API_KEY_LOOKUP = (
    select(ApiKey, Organization.deleted_at)
    .outerjoin(Organization, ApiKey.org_id == Organization.id)
    .where(ApiKey.token_digest == bindparam("digest"))
)
_SCIM_TOKEN_LOOKUP = (
    select(ScimToken, Organization)
    .join(Organization, Organization.id == ScimToken.org_id)
    .join(Workspace, Workspace.id == Organization.workspace_id)
    .where(
        ScimToken.token_digest == bindparam("digest"),
        ScimToken.revoked_at.is_(None),
        Organization.slug == bindparam("org_slug"),
        Organization.deleted_at.is_(None),
        Workspace.slug == bindparam("workspace_slug"),
    )
)


def key_snapshot(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "org_id": key.org_id,
        "role": key.role,
        "team_id": key.team_id,
        "hint": key.hint,
        "revoked": key.revoked_at is not None,
    }


def create_api_key(
    actor: Actor,
    workspace_id: str,
    *,
    name: str,
    org: Organization | None = None,
    role: str = Role.ADMIN,
    team: Team | None = None,
) -> tuple[ApiKey, str]:
    """A workspace key (``org`` None: owner authority everywhere), a key for one org, or a
    team's own key (``team``: no role in the org; the team's scope on that team, and what
    the team was granted on resources).

    An org key never holds more than its creator: only owner authority mints owner keys.
    """
    if org is None:
        if not actor.is_workspace:
            raise Forbidden("forbidden", "Workspace keys need workspace authority")
    elif team is not None:
        check_permission(actor, Permission.API_KEYS_WRITE)
        if team.org_id != org.id:
            raise NotFound("team_not_found", "No such team in this organization")
    else:
        check_permission(actor, Permission.API_KEYS_WRITE)
        book = org_roles(org)
        if not _holds(actor, book, hold_role(book, role)):
            raise Forbidden("role_above_creator", "A key cannot hold more than its creator")
    token = new_token(TOKEN_PREFIX)
    key = ApiKey(
        workspace_id=workspace_id,
        org_id=org.id if org else None,
        name=validate_name(name),
        role=role if org and team is None else None,
        team_id=team.id if team else None,
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
    # Found by its digest before anyone knows its org: a workspace-wide look-up (its one
    # write is flushed within it: a workspace key's row is not visible to the org it serves).
    with workspace_wide():
        row = db.session.execute(_API_KEY_LOOKUP, {"digest": token_digest(token)}).first()
        if row is None:
            return None
        key, org_deleted_at = row
        now = utcnow()
        if key.revoked_at is not None or (key.expires_at and key.expires_at <= now):
            return None
        if key.org_id is not None and org_deleted_at is not None:
            return None
        _touch(key, now)
    return key


def _touch(credential: SecretCredential, now: datetime) -> None:
    """Keep the last-used time, coarsely, so the hot path does not write on every call."""
    if credential.last_used_at is None or now - credential.last_used_at > LAST_USED_GRANULARITY:
        credential.last_used_at = now


def _holds(actor: Actor, book: Any, role: RoleDef) -> bool:
    """Whether the actor holds every permission of ``role`` (in the org's ``book``)."""
    return actor.is_workspace or role.permissions <= book.held_by(actor.role)


def _key_role(key: ApiKey) -> RoleDef | None:
    """An org key's role: a built-in one without a query (Gatehouse's permissions are all
    the admin API asks), a custom one from the org's roles."""
    if key.role in BUILTIN_ROLES:
        return BUILTIN_ROLES[key.role]
    return role_def(key.workspace_id, key.org_id or "", key.role)


def actor_for_key(key: ApiKey, request_id: str | None = None) -> Actor:
    return Actor(
        ActorKind.API_KEY,
        key.id,
        f"api_key:{key.name}",
        role=OWNER if key.org_id is None else _key_role(key),
        org_id=key.org_id,
        team_id=key.team_id,
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
        # Revocations of workspace keys queue on the workspace row, so two of them racing
        # for the last two keys cannot both see "another key is left".
        lock_row(Workspace, workspace_id)
    else:
        check_permission(actor, Permission.API_KEYS_WRITE)
    key = db.session.scalar(
        select(ApiKey)
        .where(
            ApiKey.workspace_id == workspace_id,
            ApiKey.id == key_id,
            ApiKey.org_id.is_(None) if org is None else ApiKey.org_id == org.id,
        )
        # Read again after the lock: the caller's own key may sit stale in the session.
        .execution_options(populate_existing=True)
    )
    if key is None:
        raise NotFound("api_key_not_found", "No such API key")
    if key.revoked_at is not None:
        raise Conflict("already_revoked", "This key is already revoked")
    if org is None and not _other_live_workspace_key(workspace_id, key.id):
        raise Conflict(
            "last_workspace_key",
            "This is the workspace's last live key: create another before revoking it",
        )
    if org is not None and key.role:
        book = org_roles(org)
        held = book.find(key.role)
        if held is not None and not _holds(actor, book, held):
            raise Forbidden("role_above_actor", "Only one holding all of a key's role revokes it")
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


def _other_live_workspace_key(workspace_id: str, key_id: str) -> bool:
    """Whether a workspace key other than ``key_id`` still authenticates (not revoked, not
    expired): without one, nobody could create orgs or keys through the API again."""
    now = utcnow()
    return (
        db.session.scalar(
            select(ApiKey.id)
            .where(
                ApiKey.workspace_id == workspace_id,
                ApiKey.org_id.is_(None),
                ApiKey.id != key_id,
                ApiKey.revoked_at.is_(None),
                (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
            )
            .limit(1)
        )
        is not None
    )


# --- SCIM tokens -----------------------------------------------------------------------


def scim_token_snapshot(token: ScimToken) -> dict[str, Any]:
    return {"name": token.name, "hint": token.hint, "revoked": token.revoked_at is not None}


def scim_base_url(org: Organization) -> str:
    """Where the org's IdP sends SCIM requests."""
    return f"{current_settings().issuer.rstrip('/')}/scim/v2/{org.slug}"


def create_scim_token(actor: Actor, org: Organization, *, name: str) -> tuple[ScimToken, str]:
    """A bearer token for the org's SCIM endpoint; the token is returned once, here."""
    check_permission(actor, Permission.SCIM_TOKENS_WRITE)
    token = new_token(SCIM_TOKEN_PREFIX)
    credential = ScimToken(
        org_id=org.id,
        name=validate_name(name),
        token_digest=token_digest(token),
        hint=token[-4:],
        created_by=actor.label,
    )
    db.session.add(credential)
    db.session.flush()
    record_org_event(
        actor,
        org,
        "scim_token.created",
        "scim_token",
        credential.id,
        after=scim_token_snapshot(credential),
    )
    return credential, token


def authenticate_scim_token(
    token: str, workspace_slug: str, org_slug: str
) -> tuple[ScimToken, Organization] | None:
    """The live SCIM token and its org, if the token belongs to the org of that URL; one query.

    Any other org's token, a revoked one, or a deleted org: ``None``.
    """
    if not token.startswith(SCIM_TOKEN_PREFIX + "_"):
        return None
    # Before the token is known its org is not: a workspace-wide look-up, bound to the org
    # of the URL by the query itself.
    with workspace_wide():
        row = db.session.execute(
            _SCIM_TOKEN_LOOKUP,
            {"digest": token_digest(token), "org_slug": org_slug, "workspace_slug": workspace_slug},
        ).first()
        if row is None:
            return None
        credential, org = row
        _touch(credential, utcnow())
    return credential, org


def note_scim_failure(token_id: str, status: int, scim_type: str | None, message: str) -> None:
    """Keep the last refused request's outcome on its token (the caller commits it apart
    from the refused change, which is rolled back)."""
    detail = f"{status} {scim_type or ''}: {message}".replace("  ", " ")[:300]
    db.session.execute(
        update(ScimToken)
        .where(ScimToken.id == token_id)
        .values(last_error=detail, last_error_at=utcnow())
    )


def actor_for_scim_token(credential: ScimToken, workspace_id: str, request_id: str | None) -> Actor:
    """The IdP's provisioning client speaks for the org's directory: owner authority there."""
    return Actor(
        ActorKind.SCIM_TOKEN,
        credential.id,
        f"scim_token:{credential.name}",
        role=OWNER,
        org_id=credential.org_id,
        request_id=request_id,
        workspace_id=workspace_id,
    )


def list_scim_tokens(org_id: str, *, cursor: str | None = None, limit: int = 50) -> Page[ScimToken]:
    return paginate(
        select(ScimToken).where(ScimToken.org_id == org_id),
        ScimToken.id,
        cursor=cursor,
        limit=limit,
    )


def revoke_scim_token(actor: Actor, org: Organization, token_id: str) -> ScimToken:
    check_permission(actor, Permission.SCIM_TOKENS_WRITE)
    credential = db.session.scalar(
        select(ScimToken).where(ScimToken.org_id == org.id, ScimToken.id == token_id)
    )
    if credential is None:
        raise NotFound("scim_token_not_found", "No such SCIM token")
    if credential.revoked_at is not None:
        raise Conflict("already_revoked", "This token is already revoked")
    before = scim_token_snapshot(credential)
    credential.revoked_at = utcnow()
    db.session.flush()
    record_org_event(
        actor,
        org,
        "scim_token.revoked",
        "scim_token",
        credential.id,
        before=before,
        after=scim_token_snapshot(credential),
    )
    return credential
