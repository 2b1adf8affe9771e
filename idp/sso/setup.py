"""Setting up a connection by protocol (what the admin API and the CLI call), and the
configuration an admin sees, with the URLs to give the IdP."""

from __future__ import annotations

from typing import Any

from idp.actors import Actor
from idp.config import current_settings
from idp.connections.models import Connection, ConnectionKind
from idp.connections.services import (
    check_preset,
    connection_secret,
    create_connection,
    update_connection,
)
from idp.errors import BadRequest
from idp.orgs.models import Organization
from idp.orgs.roles import Permission
from idp.orgs.services import check_permission
from idp.sso import oidc, saml

# What each preset asks an OIDC IdP for: Okta sends groups only when asked for them.
PRESET_SCOPES: dict[str, tuple[str, ...]] = {
    "okta": (*oidc.DEFAULT_SCOPES, "groups"),
}
# The IdP's own values: given at creation, or later to a draft (or to replace them).
OIDC_IDP_VALUES = ("issuer", "client_id", "client_secret")
SAML_IDP_VALUES = ("metadata_xml", "metadata_url", "idp_entity_id", "sso_url")


def preset_scopes(preset: str) -> list[str]:
    return list(PRESET_SCOPES.get(preset, oidc.DEFAULT_SCOPES))


def _scopes(scopes: Any) -> list[str]:
    if not isinstance(scopes, list | tuple) or not all(
        isinstance(x, str) and 0 < len(x) <= 100 and " " not in x for x in scopes
    ):
        raise BadRequest("invalid_scopes", "scopes is a list of scope names", field="scopes")
    chosen = list(dict.fromkeys(str(x) for x in scopes))[:30]
    return chosen if "openid" in chosen else ["openid", *chosen]


def add_oidc_connection(
    actor: Actor,
    org: Organization,
    *,
    name: str,
    issuer: str = "",
    client_id: str = "",
    client_secret: str = "",
    scopes: list[str] | None = None,
    preset: str = "generic",
    jit: bool = True,
) -> Connection:
    """Discover the issuer (it must name itself exactly so) and store the connection; with
    none of the IdP's values, a draft whose redirect URI can be given to the IdP first."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)  # before any outbound fetch
    preset = check_preset(preset)
    chosen = _scopes(scopes) if scopes is not None else preset_scopes(preset)
    if not (issuer or client_id or client_secret):
        draft = {"preset": preset, "scopes": chosen, "claims": dict(oidc.PRESETS[preset])}
        return create_connection(
            actor,
            org,
            kind=ConnectionKind.OIDC,
            name=name,
            settings={**draft, "jit": jit},
            secret=None,
            preset=preset,
            draft=True,
        )
    if not client_secret:
        raise BadRequest("invalid_client_secret", "client_secret is required")
    settings = oidc.build_settings(issuer, client_id, scopes=chosen, preset=preset)
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
    """From the IdP's metadata (XML or URL) or explicit values; a fresh SP key pair. With
    none of the IdP's values, a draft: the SP's entity id, ACS URL and metadata come first."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    given = {k: v for k, v in saml_settings.items() if v not in (None, "", [])}
    if not any(k in given for k in (*SAML_IDP_VALUES, "idp_certs")):
        options = {
            k: given[k] for k in ("authn_request_binding", "allow_idp_initiated") if k in given
        }
        settings, sp_key = saml.draft_settings(preset=check_preset(preset), **options)
        draft = True
    else:
        settings, sp_key = saml.build_settings(preset=check_preset(preset), **saml_settings)
        draft = False
    return create_connection(
        actor,
        org,
        kind=ConnectionKind.SAML,
        name=name,
        settings={**settings, "jit": jit},
        secret=sp_key,
        preset=preset,
        draft=draft,
    )


# Where the IdP's answer is read from, per field: one claim (OIDC) or several names.
_OIDC_CLAIM_FIELDS = {
    "subject": str,
    "email": list,
    "name": list,
    "groups": str,
    "external_id": str,
}
_SAML_ATTRIBUTE_FIELDS = ("email", "name", "given_name", "family_name", "groups", "external_id")


def _mapping(kind: ConnectionKind, value: Any, current: dict[str, Any]) -> dict[str, Any]:
    """A claim mapping (OIDC) or attribute mapping (SAML) merged over the current one."""
    fields = (
        _OIDC_CLAIM_FIELDS
        if kind is ConnectionKind.OIDC
        else dict.fromkeys(_SAML_ATTRIBUTE_FIELDS, list)
    )
    what = "claims" if kind is ConnectionKind.OIDC else "attribute_map"
    if not isinstance(value, dict) or not set(value) <= set(fields):
        raise BadRequest("invalid_mapping", f"{what} maps {', '.join(fields)}", field=what)
    merged = dict(current)
    for key, names in value.items():
        if isinstance(names, str):
            names = [names]
        if names is None:
            names = []
        if (
            not isinstance(names, list)
            or not all(isinstance(n, str) and 0 < len(n) <= 255 for n in names)
            or len(names) > 10
        ):
            raise BadRequest(
                "invalid_mapping", f"{what}.{key} names claims or attributes", field=what
            )
        if fields[key] is str:
            if key == "subject" and not names:
                raise BadRequest("invalid_mapping", "claims.subject names one claim", field=what)
            merged[key] = names[0] if names else None
        else:
            merged[key] = names
    return merged


def change_connection(
    actor: Actor, org: Organization, connection: Connection, changes: dict[str, Any]
) -> Connection:
    """Change a connection the way every surface does: rename, enable or disable, the IdP's
    values (which turn a draft into a connection that can be enabled), scopes, claim and
    attribute mappings, certificates (SAML rollover), JIT, IdP-initiated login, what means
    and what asks for MFA, and ``trust_email`` (owners only)."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)  # before any outbound fetch
    settings: dict[str, Any] = dict(connection.settings)
    keys = ("jit", "allow_idp_initiated", "mfa_values", "mfa_request", "trust_email")
    settings.update({k: changes[k] for k in keys if k in changes})
    secret = changes.get("client_secret") or None
    configured = False
    saml_kind = connection.kind is ConnectionKind.SAML
    if saml_kind:
        values = {k: changes[k] for k in SAML_IDP_VALUES if changes.get(k)}
        if values or (connection.draft and changes.get("idp_certs")):
            if "idp_certs" in changes:
                values["idp_certs"] = changes["idp_certs"]
            settings.update(_reconfigure_saml(connection, settings, values))
            configured = True
        elif "idp_certs" in changes:
            # Rollover: list the IdP's next certificate beside the current one, then drop the old.
            certs = [saml.certificate_body(c) for c in changes["idp_certs"]]
            if not certs:
                raise BadRequest(
                    "invalid_settings", "At least one IdP signing certificate is required"
                )
            settings["idp_certs"] = list(dict.fromkeys(certs))
        if "attribute_map" in changes:
            settings["attribute_map"] = _mapping(
                connection.kind, changes["attribute_map"], settings.get("attribute_map") or {}
            )
    else:
        if "scopes" in changes:
            settings["scopes"] = _scopes(changes["scopes"])
        if "claims" in changes:
            settings["claims"] = _mapping(
                connection.kind, changes["claims"], settings.get("claims") or {}
            )
        if any(changes.get(k) for k in ("issuer", "client_id")):
            issuer = changes.get("issuer") or settings.get("issuer") or ""
            client_id = changes.get("client_id") or settings.get("client_id") or ""
            if not secret and connection.secret is None:
                raise BadRequest("invalid_client_secret", "client_secret is required")
            built = oidc.build_settings(
                issuer,
                client_id,
                scopes=settings.get("scopes") or preset_scopes(connection.preset),
                preset=connection.preset,
                claims=settings.get("claims"),
            )
            settings.update(built)
            configured = True
    return update_connection(
        actor,
        org,
        connection,
        name=changes.get("name"),
        enabled=changes.get("enabled"),
        settings=settings if settings != connection.settings else None,
        secret=secret,
        configured=configured,
    )


def _reconfigure_saml(
    connection: Connection, settings: dict[str, Any], values: dict[str, Any]
) -> dict[str, Any]:
    """The IdP's side built again from what was given; the SP's key pair kept (the IdP
    already trusts its certificate)."""
    built, _ = saml.build_settings(
        preset=connection.preset,
        sp_entity_id=settings.get("sp_entity_id"),
        authn_request_binding=settings.get("authn_request_binding") or "redirect",
        allow_idp_initiated=bool(settings.get("allow_idp_initiated")),
        sp_cert_pem=settings["sp_cert"],
        sp_key_pem=connection_secret(connection),
        **values,
    )
    # The admin's own attribute mapping stays; the preset's is only the starting point.
    built.pop("attribute_map", None)
    return built


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
