"""IdP connections of an organization: OIDC and SAML, several per org, enable/disable."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.connections import services as service
from idp.connections.models import Connection, ConnectionKind
from idp.orgs.roles import Permission
from idp.sso.setup import add_oidc_connection, add_saml_connection, change_connection

_OIDC = ("issuer", "client_id", "client_secret", "scopes")
_SAML = (
    "metadata_xml",
    "metadata_url",
    "idp_entity_id",
    "sso_url",
    "idp_certs",
    "authn_request_binding",
    "allow_idp_initiated",
)


@operation(
    "/orgs/<slug>/connections",
    permission=Permission.CONNECTIONS_READ,
    response=s.ConnectionOut,
    many=True,
)
def list_connections(ctx: Ctx) -> dict[str, Any]:
    """List the org's connections (never their secrets)."""
    return {"data": s.ConnectionOut(many=True).dump(service.list_connections(ctx.org.id))}


@operation(
    "/orgs/<slug>/connections",
    "POST",
    permission=Permission.CONNECTIONS_WRITE,
    body=s.ConnectionCreate,
    response=s.ConnectionOut,
    status=201,
)
def create_connection(ctx: Ctx, data: dict[str, Any]) -> Connection:
    """Add an OIDC connection (issuer discovered) or a SAML one (from metadata or by hand);
    with only a kind and name, a draft whose SP values can be given to the IdP first."""
    common = {k: data[k] for k in ("name", "preset", "jit")}
    if data["kind"] == ConnectionKind.OIDC.value:
        given = {k: data[k] for k in _OIDC if k in data}
        return add_oidc_connection(
            ctx.actor,
            ctx.org,
            **common,
            issuer=given.get("issuer", ""),
            client_id=given.get("client_id", ""),
            client_secret=given.get("client_secret", ""),
            scopes=given.get("scopes"),
        )
    return add_saml_connection(
        ctx.actor, ctx.org, **common, **{k: data[k] for k in _SAML if k in data}
    )


@operation(
    "/orgs/<slug>/connections/<connection_id>",
    permission=Permission.CONNECTIONS_READ,
    response=s.ConnectionOut,
)
def get_connection(ctx: Ctx, connection_id: str) -> Connection:
    """Read one connection, with the URLs to configure at the IdP."""
    return service.get_connection(ctx.org.id, connection_id)


@operation(
    "/orgs/<slug>/connections/<connection_id>",
    "PATCH",
    permission=Permission.CONNECTIONS_WRITE,
    body=s.ConnectionUpdate,
    response=s.ConnectionOut,
)
def update_connection(ctx: Ctx, connection_id: str, data: dict[str, Any]) -> Connection:
    """Rename, enable or disable; give the IdP's values (to a draft, or new ones); scopes,
    claim and attribute mappings; JIT and IdP-initiated login; a new client secret; the
    IdP's signing certificates (SAML rollover); what means and what asks for MFA; whether its
    emails count as proven for the org (``trust_email``, owners only)."""
    connection = service.get_connection(ctx.org.id, connection_id)
    return change_connection(ctx.actor, ctx.org, connection, data)


@operation(
    "/orgs/<slug>/connections/<connection_id>", "DELETE", permission=Permission.CONNECTIONS_WRITE
)
def delete_connection(ctx: Ctx, connection_id: str) -> None:
    """Remove a connection; the sessions it authenticated end with it."""
    service.delete_connection(ctx.actor, ctx.org, service.get_connection(ctx.org.id, connection_id))
