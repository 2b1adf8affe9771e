"""An org's IdP connections: create, change, enable/disable, remove; the secret encrypted.

``settings`` is the protocol's public configuration, built and checked by ``idp.sso.oidc``
or ``idp.sso.saml``; the one secret (OIDC client secret, SAML SP private key) is stored only
encrypted, bound to its row (``idp.crypto``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from idp.actors import Actor
from idp.audit.services import record_org_event
from idp.connections.models import Connection, ConnectionKind
from idp.crypto import register_encrypted_column
from idp.db import db, new_id
from idp.errors import BadRequest, Conflict, Forbidden, NotFound
from idp.orgs.models import Organization
from idp.orgs.roles import Permission
from idp.orgs.services import check_permission, check_workspace_authority, validate_name
from idp.policies.chain import org_policy
from idp.policies.registry import Policy

SECRET = register_encrypted_column(Connection.secret)
PRESETS = ("generic", "okta", "entra", "google", "adfs")
MAX_CONNECTIONS_PER_ORG = 50


def connection_snapshot(connection: Connection) -> dict[str, Any]:
    """What the audit log keeps: never the secret."""
    return {
        "name": connection.name,
        "kind": connection.kind.value,
        "preset": connection.preset,
        "enabled": connection.enabled,
        "draft": connection.draft,
        "trust_email": bool(connection.settings.get("trust_email")),
    }


def list_connections(org_id: str) -> list[Connection]:
    return list(
        db.session.scalars(
            select(Connection).where(Connection.org_id == org_id).order_by(Connection.id)
        )
    )


def get_connection(org_id: str, connection_id: str) -> Connection:
    """One of the org's connections; another org's is ``connection_not_found``."""
    found = db.session.scalar(
        select(Connection).where(Connection.org_id == org_id, Connection.id == connection_id)
    )
    if found is None:
        raise NotFound("connection_not_found", "No such connection in this organization")
    return found


def load_connection(connection_id: str) -> Connection:
    """The connection an SSO URL names (the URL, never the IdP's response, picks the org)."""
    found = db.session.get(Connection, connection_id)
    if found is None:
        raise NotFound("connection_not_found", "No such connection")
    return found


def connection_policy(connection: Connection) -> Policy:
    """The effective policy of the connection's org."""
    return org_policy(db.session.get(Organization, connection.org_id))


def connection_secret(connection: Connection) -> str:
    """The decrypted secret; raises ``DecryptionError`` if it was tampered with."""
    if connection.secret is None:
        raise BadRequest("no_secret", "This connection has no secret")
    return SECRET.decrypt(connection.id, connection.secret).decode()


def _check_mfa_values(actor: Actor, before: dict[str, Any], after: dict[str, Any]) -> None:
    """``mfa_values`` (what counts as MFA at the IdP) decides whether the org's sign-ins meet
    an ``mfa_required`` it may have inherited: an org naming its IdP's password-only class
    as MFA would undo the workspace's requirement, so only workspace authority sets it.
    ``mfa_request`` (what to ask the IdP for) proves nothing and stays the org admin's."""
    if (after.get("mfa_values") or []) != (before.get("mfa_values") or []):
        check_workspace_authority(
            actor, "What counts as MFA at an IdP (mfa_values) needs workspace authority"
        )


def _check_trust_email(actor: Actor, before: dict[str, Any], after: dict[str, Any]) -> None:
    """``trust_email`` lets the IdP's asserted address take over the org's member of that
    address (and a pending invitation) without the person proving it: an owner's decision,
    like granting the owner role, since an IdP that lies about addresses then takes over
    any member of the org, owners included."""
    changed = bool(after.get("trust_email")) != bool(before.get("trust_email"))
    if changed and not actor.can(Permission.OWNERS_MANAGE).allowed:
        raise Forbidden(
            "owner_protected", "Only an owner can decide that an IdP's emails are trusted"
        )


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise BadRequest("invalid_preset", f"preset must be one of {', '.join(PRESETS)}")
    return preset


def create_connection(
    actor: Actor,
    org: Organization,
    *,
    kind: ConnectionKind,
    name: str,
    settings: dict[str, Any],
    secret: str | None,
    preset: str = "generic",
    draft: bool = False,
) -> Connection:
    """A new connection of the org: enabled at once, or a ``draft`` waiting for the IdP's
    values."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    _check_mfa_values(actor, {}, settings)
    _check_trust_email(actor, {}, settings)
    count = db.session.scalar(
        select(Connection.id).where(Connection.org_id == org.id).offset(MAX_CONNECTIONS_PER_ORG)
    )
    if count is not None:
        raise BadRequest("too_many_connections", "An org may hold 50 connections")
    connection = Connection(
        id=new_id("con"),
        workspace_id=org.workspace_id,
        org_id=org.id,
        kind=kind,
        name=validate_name(name),
        preset=check_preset(preset),
        enabled=not draft,
        draft=draft,
        settings=settings,
    )
    if secret:
        connection.secret = SECRET.encrypt(connection.id, secret)
    db.session.add(connection)
    db.session.flush()
    record_org_event(
        actor,
        org,
        "connection.created",
        "connection",
        connection.id,
        after=connection_snapshot(connection),
    )
    return connection


def update_connection(
    actor: Actor,
    org: Organization,
    connection: Connection,
    *,
    name: str | None = None,
    enabled: bool | None = None,
    settings: dict[str, Any] | None = None,
    secret: str | None = None,
    configured: bool = False,
) -> Connection:
    """Change what is given; a new secret replaces the old one (the old one is not kept).
    ``configured``: the IdP's values are in ``settings`` now (a draft is one no longer)."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    if enabled and connection.draft and not configured:
        raise Conflict("connection_draft", "Give the IdP's values before enabling this connection")
    if settings is not None:
        _check_mfa_values(actor, connection.settings, settings)
        _check_trust_email(actor, connection.settings, settings)
    before = connection_snapshot(connection)
    if name is not None:
        connection.name = validate_name(name)
    if enabled is not None:
        connection.enabled = enabled
    if settings is not None:
        connection.settings = settings
    if secret:
        connection.secret = SECRET.encrypt(connection.id, secret)
    if configured:
        connection.draft = False
    db.session.flush()
    after = connection_snapshot(connection)
    if settings is not None:
        after["settings_changed"] = True
    if secret:
        after["secret_changed"] = True
    record_org_event(
        actor, org, "connection.updated", "connection", connection.id, before=before, after=after
    )
    return connection


def delete_connection(actor: Actor, org: Organization, connection: Connection) -> None:
    """Remove the connection; sessions it authenticated end with it (cascade)."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    before = connection_snapshot(connection)
    db.session.delete(connection)
    db.session.flush()
    record_org_event(actor, org, "connection.deleted", "connection", connection.id, before=before)
