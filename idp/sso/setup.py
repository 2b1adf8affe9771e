"""Setting up a connection by protocol (what the admin API and the CLI call), and the
configuration an admin sees, with the URLs to give the IdP."""

from __future__ import annotations

from typing import Any

from idp.actors import Actor
from idp.config import current_settings
from idp.connections.models import Connection, ConnectionKind
from idp.connections.services import check_preset, create_connection
from idp.errors import BadRequest
from idp.orgs.models import Organization
from idp.orgs.roles import Permission
from idp.orgs.services import check_permission
from idp.sso import oidc, saml


def add_oidc_connection(
    actor: Actor,
    org: Organization,
    *,
    name: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    scopes: list[str] | None = None,
    preset: str = "generic",
    jit: bool = True,
) -> Connection:
    """Discover the issuer (it must name itself exactly so) and store the connection."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)  # before any outbound fetch
    if not client_secret:
        raise BadRequest("invalid_client_secret", "client_secret is required")
    settings = oidc.build_settings(
        issuer, client_id, scopes=scopes or oidc.DEFAULT_SCOPES, preset=check_preset(preset)
    )
    return create_connection(
        actor,
        org,
        kind=ConnectionKind.OIDC,
        name=name,
        settings={**settings, "jit": jit},
        secret=client_secret,
        preset=preset,
    )


def add_saml_connection(
    actor: Actor,
    org: Organization,
    *,
    name: str,
    preset: str = "generic",
    jit: bool = True,
    **saml_settings: Any,
) -> Connection:
    """From the IdP's metadata (XML or URL) or explicit values; a fresh SP key pair."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    settings, sp_key = saml.build_settings(preset=check_preset(preset), **saml_settings)
    return create_connection(
        actor,
        org,
        kind=ConnectionKind.SAML,
        name=name,
        settings={**settings, "jit": jit},
        secret=sp_key,
        preset=preset,
    )


# Kept out of API answers: caches, not configuration.
_PRIVATE_SETTINGS = frozenset({"jwks", "jwks_fetched_at"})


def public_settings(connection: Connection) -> dict[str, Any]:
    """The configuration an admin sees, with the URLs to give the IdP; never the secret."""
    base = f"{current_settings().issuer.rstrip('/')}/sso/{connection.kind.value}/{connection.id}"
    shown = {k: v for k, v in connection.settings.items() if k not in _PRIVATE_SETTINGS}
    shown["login_url"] = f"{base}/login"
    if connection.kind is ConnectionKind.OIDC:
        shown["redirect_uri"] = f"{base}/callback"
    else:
        shown["sp_entity_id"] = saml.sp_entity_id(connection)
        shown["acs_url"] = saml.acs_url(connection)
        shown["sp_metadata_url"] = f"{base}/metadata"
    return shown
