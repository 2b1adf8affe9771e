"""SAML 2.0 Web Browser SSO for an org's IdP connection (SAML profiles §4.1), over python3-saml.

Protocol only: the views pass what they read from the request. Secure defaults live here:
strict mode, signed assertions (RSA-SHA256, SHA-1 refused), audience, exact Destination and
Recipient against the ACS URL built from ``GATEHOUSE_ISSUER`` (never the Host header), no
DTDs, entities or comments, and the values the views need for InResponseTo and the replay
cache.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from idp import outbound
from idp.config import current_settings
from idp.connections.models import Connection
from idp.connections.services import connection_secret
from idp.errors import BadRequest
from idp.people.signin import IdpAssertion, LoginRefused
from idp.sso.trace import trace_line

log = logging.getLogger(__name__)

METADATA_TIMEOUT = 10  # seconds, per read and in all
MAX_METADATA = 1_000_000  # bytes; federation aggregates are not accepted here
MAX_RESPONSE = 512_000  # characters of base64 in one SAMLResponse
CLOCK_DRIFT = dt.timedelta(minutes=5)  # python3-saml's ALLOWED_CLOCK_DRIFT, kept in the cache
BINDINGS = {"redirect": C.BINDING_HTTP_REDIRECT, "post": C.BINDING_HTTP_POST}

_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
# Entra ID and AD FS report how the person signed in (e.g. multipleauthn) in this attribute.
AMR_ATTRIBUTES = ["http://schemas.microsoft.com/claims/authnmethodsreferences"]
# Where each preset finds the person's attributes; the first name present wins.
PRESETS: dict[str, dict[str, list[str]]] = {
    "generic": {
        "email": ["email", "mail", "urn:oid:0.9.2342.19200300.100.1.3", f"{_CLAIMS}/emailaddress"],
        "name": ["displayName", "name", "urn:oid:2.16.840.1.113730.3.1.241"],
        "given_name": ["givenName", "firstName", "urn:oid:2.5.4.42"],
        "family_name": ["sn", "lastName", "surname", "urn:oid:2.5.4.4"],
        "groups": ["groups", "memberOf", "urn:oid:1.3.6.1.4.1.5923.1.5.1.1"],
        "external_id": [],
    },
    "okta": {
        "email": ["email"],
        "name": ["displayName", "name"],
        "given_name": ["firstName"],
        "family_name": ["lastName"],
        "groups": ["groups"],
        "external_id": [],
    },
    # Entra ID: claim URIs; groups are object ids (map roles by object id); the object id is
    # what its SCIM feed sends as externalId. Its audience may be an ``spn:<app id>`` form:
    # set ``sp_entity_id`` to it explicitly.
    "entra": {
        "email": [f"{_CLAIMS}/emailaddress", f"{_CLAIMS}/upn"],
        "name": ["http://schemas.microsoft.com/identity/claims/displayname", f"{_CLAIMS}/name"],
        "given_name": [f"{_CLAIMS}/givenname"],
        "family_name": [f"{_CLAIMS}/surname"],
        "groups": ["http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"],
        "external_id": ["http://schemas.microsoft.com/identity/claims/objectidentifier"],
    },
    # Google Workspace: attribute names are whatever the admin typed; these are the usual ones.
    "google": {
        "email": ["email", "mail"],
        "name": ["name", "displayName"],
        "given_name": ["firstName", "givenName"],
        "family_name": ["lastName", "sn"],
        "groups": ["groups"],
        "external_id": [],
    },
}
PRESETS["adfs"] = {
    **PRESETS["entra"],
    "groups": ["http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "groups"],
    "external_id": [],
}

_ERROR_CODES = {
    "invalid_signature": {
        OneLogin_Saml2_ValidationError.WRONG_SIGNED_ELEMENT,
        OneLogin_Saml2_ValidationError.ID_NOT_FOUND_IN_SIGNED_ELEMENT,
        OneLogin_Saml2_ValidationError.DUPLICATED_ID_IN_SIGNED_ELEMENTS,
        OneLogin_Saml2_ValidationError.INVALID_SIGNED_ELEMENT,
        OneLogin_Saml2_ValidationError.DUPLICATED_REFERENCE_IN_SIGNED_ELEMENTS,
        OneLogin_Saml2_ValidationError.UNEXPECTED_SIGNED_ELEMENTS,
        OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_RESPONSE,
        OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_ASSERTION,
        OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES,
        OneLogin_Saml2_ValidationError.NO_SIGNED_MESSAGE,
        OneLogin_Saml2_ValidationError.NO_SIGNED_ASSERTION,
        OneLogin_Saml2_ValidationError.NO_SIGNATURE_FOUND,
        OneLogin_Saml2_ValidationError.INVALID_SIGNATURE,
    },
    "deprecated_algorithm": {
        OneLogin_Saml2_ValidationError.DEPRECATED_SIGNATURE_METHOD,
        OneLogin_Saml2_ValidationError.DEPRECATED_DIGEST_METHOD,
    },
    "wrong_audience": {OneLogin_Saml2_ValidationError.WRONG_AUDIENCE},
    "wrong_destination": {
        OneLogin_Saml2_ValidationError.WRONG_DESTINATION,
        OneLogin_Saml2_ValidationError.EMPTY_DESTINATION,
    },
    "wrong_issuer": {
        OneLogin_Saml2_ValidationError.WRONG_ISSUER,
        OneLogin_Saml2_ValidationError.ISSUER_MULTIPLE_IN_RESPONSE,
        OneLogin_Saml2_ValidationError.ISSUER_NOT_FOUND_IN_ASSERTION,
    },
    "assertion_expired": {
        OneLogin_Saml2_ValidationError.ASSERTION_EXPIRED,
        OneLogin_Saml2_ValidationError.SESSION_EXPIRED,
        OneLogin_Saml2_ValidationError.RESPONSE_EXPIRED,
    },
    "assertion_not_yet_valid": {OneLogin_Saml2_ValidationError.ASSERTION_TOO_EARLY},
    "invalid_subject_confirmation": {OneLogin_Saml2_ValidationError.WRONG_SUBJECTCONFIRMATION},
    "idp_error": {OneLogin_Saml2_ValidationError.STATUS_CODE_IS_NOT_SUCCESS},
    "invalid_subject": {
        OneLogin_Saml2_ValidationError.NO_NAMEID,
        OneLogin_Saml2_ValidationError.EMPTY_NAMEID,
    },
}
_CODE_FOR = {number: code for code, numbers in _ERROR_CODES.items() for number in numbers}


# --- XSD cache ----------------------------------------------------------------------------------


class _Schemas(threading.local):
    """Compiled XSDs, one set per thread: ``validate()`` keeps per-object error state."""

    def __init__(self) -> None:
        self.by_url: dict[str, etree.XMLSchema] = {}


_schemas = _Schemas()


def cached_schema(document: etree._ElementTree) -> etree.XMLSchema:
    """python3-saml compiles its XSD on every validation (~2.5 ms); compile each file once."""
    url = document.docinfo.URL
    schema = _schemas.by_url.get(url) if url else None
    if schema is None:
        schema = etree.XMLSchema(document)
        if url:
            _schemas.by_url[url] = schema
    return schema


# python3-saml's documented hook for the schema class (xml_utils.OneLogin_Saml2_XML).
OneLogin_Saml2_XML._schema_class = staticmethod(cached_schema)


# --- settings -----------------------------------------------------------------------------------


def new_sp_keypair(common_name: str = "Gatehouse SAML SP") -> tuple[str, str]:
    """A fresh RSA-2048 key and a self-signed SHA-256 certificate: (cert PEM, key PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def certificate_body(cert: str) -> str:
    """A certificate (PEM or bare base64 DER) as one-line base64 DER; refuses anything else."""
    text = cert.strip()
    try:
        if text.startswith("-----BEGIN"):
            parsed = x509.load_pem_x509_certificate(text.encode())
        else:
            parsed = x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except (ValueError, binascii.Error):
        raise BadRequest("invalid_certificate", "An IdP certificate could not be read") from None
    return base64.b64encode(parsed.public_bytes(serialization.Encoding.DER)).decode()


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


# One answer for every way a metadata URL can fail once it is called (unreachable, an error
# status, a redirect, too large, too slow, not metadata), so it never tells an open port from
# a closed one.
_UNREACHABLE = "The IdP metadata could not be fetched from that URL, or is not SAML metadata"


def _metadata_unreachable() -> BadRequest:
    return BadRequest("metadata_unreachable", _UNREACHABLE)


def fetch_metadata(url: str) -> str:
    """GET the IdP's metadata through the outbound guard: https only (plain http on loopback
    when allowed), never an internal address unless allow-listed, no redirects, bounded."""
    parts = urlsplit(url)
    plain_ok = (
        parts.scheme == "http"
        and current_settings().allow_http_loopback
        and _is_loopback(parts.hostname)
    )
    if parts.scheme != "https" and not plain_ok:
        raise BadRequest("insecure_metadata_url", "The metadata URL must use https")
    try:
        response = outbound.fetch(
            url,
            headers={"Accept": "application/samlmetadata+xml, application/xml, text/xml"},
            max_bytes=MAX_METADATA,
            read_timeout=METADATA_TIMEOUT,
            deadline=METADATA_TIMEOUT,
        )
    except outbound.InvalidUrl:
        raise BadRequest("invalid_metadata_url", "The metadata URL is not a URL") from None
    except outbound.NotAllowed as refused:
        log.info("saml: metadata URL refused: %s", refused.reason)
        raise BadRequest(
            "destination_not_allowed",
            "The metadata URL is not allowed: Gatehouse does not call loopback, private or "
            "other internal addresses unless the deployment allows them",
        ) from None
    except outbound.Unreachable:
        raise _metadata_unreachable() from None
    if response.status != 200:
        log.info("saml: metadata URL answered %s", response.status)
        raise _metadata_unreachable()
    return response.body.decode("utf-8", errors="replace")


def _parse_metadata(xml: str, entity_id: str | None) -> dict[str, Any]:
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml, entity_id=entity_id)
    except Exception:  # lxml, DTD/entity refusal, or python3-saml's own errors
        raise BadRequest("invalid_metadata", "The IdP metadata could not be read") from None
    idp = parsed.get("idp") or {}
    if not idp.get("entityId") or not idp.get("singleSignOnService", {}).get("url"):
        raise BadRequest("invalid_metadata", "The IdP metadata names no entity id or SSO URL")
    certs = list(idp.get("x509certMulti", {}).get("signing", []))
    if idp.get("x509cert"):
        certs.append(idp["x509cert"])
    return {
        "idp_entity_id": idp["entityId"],
        "sso_url": idp["singleSignOnService"]["url"],
        "idp_certs": certs,
        "name_id_format": parsed.get("sp", {}).get("NameIDFormat"),
    }


def build_settings(
    *,
    metadata_xml: str | None = None,
    metadata_url: str | None = None,
    idp_entity_id: str | None = None,
    sso_url: str | None = None,
    idp_certs: Sequence[str] | None = None,
    preset: str = "generic",
    sp_entity_id: str | None = None,
    authn_request_binding: str = "redirect",
    allow_idp_initiated: bool = False,
    sp_cert_pem: str | None = None,
    sp_key_pem: str | None = None,
) -> tuple[dict[str, Any], str]:
    """A SAML connection's settings and its SP private key (to store encrypted).

    From metadata (XML or an https URL) or explicit values; explicit values win. Several IdP
    signing certificates are kept (rollover). A fresh SP key pair is made unless one is given
    (re-importing the IdP's metadata keeps the SP's key). ``sp_entity_id=None`` means
    ``{issuer}/sso/saml/<connection id>/metadata``, derived when used.
    """
    if preset not in PRESETS:
        raise BadRequest("invalid_preset", f"preset must be one of {', '.join(PRESETS)}")
    if authn_request_binding not in BINDINGS:
        raise BadRequest("invalid_binding", "authn_request_binding must be redirect or post")
    found: dict[str, Any] = {}
    if metadata_url and metadata_xml is None:
        try:
            found = _parse_metadata(fetch_metadata(metadata_url), idp_entity_id)
        except BadRequest as error:
            if error.code == "invalid_metadata":  # fetched: the same answer as unreachable
                raise _metadata_unreachable() from None
            raise
    elif metadata_xml is not None:
        found = _parse_metadata(metadata_xml, idp_entity_id)
    entity_id = idp_entity_id or found.get("idp_entity_id")
    sso = sso_url or found.get("sso_url")
    certs = [
        certificate_body(c)
        for c in (idp_certs if idp_certs is not None else found.get("idp_certs", []))
    ]
    if not entity_id or not sso:
        raise BadRequest("invalid_settings", "An IdP entity id and SSO URL are required")
    if not certs:
        raise BadRequest("invalid_settings", "At least one IdP signing certificate is required")
    sso_parts = urlsplit(sso)
    if sso_parts.scheme != "https" and not (
        sso_parts.scheme == "http"
        and current_settings().allow_http_loopback
        and _is_loopback(sso_parts.hostname)
    ):
        raise BadRequest("insecure_sso_url", "The IdP SSO URL must use https")
    if (sp_cert_pem is None) != (sp_key_pem is None):
        raise BadRequest("invalid_settings", "Give both the SP certificate and key, or neither")
    if sp_cert_pem is None or sp_key_pem is None:
        sp_cert_pem, sp_key_pem = new_sp_keypair()
    settings = {
        "idp_entity_id": entity_id,
        "sso_url": sso,
        "idp_certs": list(dict.fromkeys(certs)),
        "preset": preset,
        "attribute_map": PRESETS[preset],
        "sp_entity_id": sp_entity_id,
        "sp_cert": sp_cert_pem,
        "name_id_format": found.get("name_id_format") or C.NAMEID_UNSPECIFIED,
        "authn_request_binding": authn_request_binding,
        "allow_idp_initiated": bool(allow_idp_initiated),
    }
    return settings, sp_key_pem


def draft_settings(
    *,
    preset: str = "generic",
    authn_request_binding: str = "redirect",
    allow_idp_initiated: bool = False,
) -> tuple[dict[str, Any], str]:
    """A draft connection's settings and SP private key: the SP's side (entity id, ACS,
    metadata, signing certificate) to give the IdP before it has given anything back."""
    if preset not in PRESETS:
        raise BadRequest("invalid_preset", f"preset must be one of {', '.join(PRESETS)}")
    if authn_request_binding not in BINDINGS:
        raise BadRequest("invalid_binding", "authn_request_binding must be redirect or post")
    sp_cert_pem, sp_key_pem = new_sp_keypair()
    settings = {
        "preset": preset,
        "attribute_map": PRESETS[preset],
        "sp_entity_id": None,
        "sp_cert": sp_cert_pem,
        "name_id_format": C.NAMEID_UNSPECIFIED,
        "authn_request_binding": authn_request_binding,
        "allow_idp_initiated": bool(allow_idp_initiated),
    }
    return settings, sp_key_pem


def _base(connection_id: str) -> str:
    return f"{current_settings().issuer.rstrip('/')}/sso/saml/{connection_id}"


def sp_entity_id(connection: Connection) -> str:
    return connection.settings.get("sp_entity_id") or f"{_base(connection.id)}/metadata"


def acs_url(connection: Connection) -> str:
    """The ACS URL, from the configured issuer: the one Destination and Recipient must equal."""
    return f"{_base(connection.id)}/acs"


def onelogin_settings(
    connection: Connection, sp_private_key: str, authn_contexts: Sequence[str] = ()
) -> dict[str, Any]:
    """python3-saml settings for a connection: strict, signed assertions, SHA-256; requests
    ``authn_contexts`` (exactly one of them) when given, as for an org that requires MFA."""
    s = connection.settings
    certs = list(s.get("idp_certs") or [])
    idp: dict[str, Any] = {
        "entityId": s.get("idp_entity_id", ""),
        "singleSignOnService": {"url": s.get("sso_url", ""), "binding": C.BINDING_HTTP_REDIRECT},
        "x509certMulti": {"signing": certs, "encryption": []},
    }
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": sp_entity_id(connection),
            "assertionConsumerService": {
                "url": acs_url(connection),
                "binding": C.BINDING_HTTP_POST,
            },
            "NameIDFormat": s.get("name_id_format") or C.NAMEID_UNSPECIFIED,
            "x509cert": certificate_body(s["sp_cert"]),
            "privateKey": sp_private_key,
        },
        "idp": idp,
        "security": {
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "signMetadata": False,
            "wantMessagesSigned": False,  # Entra signs the assertion only
            "wantAssertionsSigned": True,
            "wantAssertionsEncrypted": False,
            "wantNameId": True,
            "wantNameIdEncrypted": False,
            "wantAttributeStatement": False,
            "requestedAuthnContext": list(authn_contexts) or False,
            "requestedAuthnContextComparison": "exact",
            # Checked by Gatehouse against the org's policy (idp.connections.mfa), not here.
            "failOnAuthnContextMismatch": False,
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": C.RSA_SHA256,
            "digestAlgorithm": C.SHA256,
            "allowRepeatAttributeName": True,
        },
    }


_settings_cache: dict[tuple[str, str, str], OneLogin_Saml2_Settings] = {}
_settings_lock = threading.Lock()
MAX_CACHED_SETTINGS = 256


def saml_settings(
    connection: Connection, sp_private_key: str, authn_contexts: Sequence[str] = ()
) -> OneLogin_Saml2_Settings:
    """The parsed python3-saml settings, cached per connection version, issuer and requested
    contexts.

    The object is only read after construction, so threads may share it.
    """
    key = (
        connection.id,
        connection.updated_at.isoformat(),
        current_settings().issuer,
        tuple(authn_contexts),
    )
    with _settings_lock:
        cached = _settings_cache.get(key)
    if cached is not None:
        return cached
    try:
        built = OneLogin_Saml2_Settings(
            onelogin_settings(connection, sp_private_key, authn_contexts)
        )
    except (OneLogin_Saml2_Error, KeyError, BadRequest):
        raise LoginRefused(
            "connection_misconfigured", "This sign-in connection is not configured correctly"
        ) from None
    with _settings_lock:
        if len(_settings_cache) >= MAX_CACHED_SETTINGS:
            _settings_cache.clear()
        _settings_cache[key] = built
    return built


def acs_request_data(connection: Connection, post_data: Mapping[str, str]) -> dict[str, Any]:
    """python3-saml's view of the request, built from the issuer, not the Host header."""
    parts = urlsplit(acs_url(connection))
    return {
        "https": "on" if parts.scheme == "https" else "off",
        "http_host": parts.netloc,
        "script_name": parts.path,
        "get_data": {},
        "post_data": dict(post_data),
    }


# --- metadata and requests ----------------------------------------------------------------------


def sp_metadata(connection: Connection, sp_private_key: str) -> str:
    """The SP's metadata (SAML metadata §2.4.4): entity id, ACS, signing certificate."""
    # The SP's side only, so a draft (no IdP values yet) has metadata too.
    described = onelogin_settings(connection, sp_private_key)
    xml = OneLogin_Saml2_Settings(described, sp_validation_only=True).get_sp_metadata()
    return xml.decode() if isinstance(xml, bytes) else xml


def authn_request(
    connection: Connection, sp_private_key: str, authn_contexts: Sequence[str] = ()
) -> tuple[str, str]:
    """A new AuthnRequest: (its id, its XML)."""
    settings = saml_settings(connection, sp_private_key, authn_contexts)
    request = OneLogin_Saml2_Authn_Request(settings)
    return request.get_id(), request.get_xml()


def redirect_login_url(
    connection: Connection, sp_private_key: str, authn_contexts: Sequence[str] = ()
) -> tuple[str, str]:
    """HTTP-Redirect binding (SAML bindings §3.4): (request id, signed URL to the IdP)."""
    settings = saml_settings(connection, sp_private_key, authn_contexts)
    auth = OneLogin_Saml2_Auth(acs_request_data(connection, {}), settings)
    # No RelayState: where to go afterwards is kept server-side with the request id.
    url = auth.login(return_to="")
    return auth.get_last_request_id(), url


def post_login_form(
    connection: Connection, sp_private_key: str, authn_contexts: Sequence[str] = ()
) -> tuple[str, str, str]:
    """HTTP-POST binding (SAML bindings §3.5): (request id, IdP URL, signed SAMLRequest)."""
    request_id, xml = authn_request(connection, sp_private_key, authn_contexts)
    settings = saml_settings(connection, sp_private_key, authn_contexts)
    signed = OneLogin_Saml2_Utils.add_sign(
        xml,
        settings.get_sp_key(),
        settings.get_sp_cert(),
        sign_algorithm=C.RSA_SHA256,
        digest_algorithm=C.SHA256,
    )
    encoded = base64.b64encode(signed if isinstance(signed, bytes) else signed.encode()).decode()
    return request_id, connection.settings["sso_url"], encoded


# --- responses ----------------------------------------------------------------------------------


class UnreadableResponse(LoginRefused):
    """A SAMLResponse that is not well-formed, schema-valid SAML (DTDs, entities, garbage)."""

    status = 400


def _refuse(code: str) -> LoginRefused:
    messages = {
        "invalid_saml_response": "The identity provider's response could not be read",
        "invalid_signature": "The identity provider's response is not validly signed",
        "deprecated_algorithm": "The identity provider signed with a weak algorithm",
        "wrong_audience": "The identity provider's response is meant for another service",
        "wrong_destination": "The identity provider's response is meant for another address",
        "wrong_issuer": "The response comes from another identity provider",
        "assertion_expired": "The identity provider's response has expired",
        "assertion_not_yet_valid": "The identity provider's response is not valid yet",
        "invalid_subject_confirmation": "The identity provider's response is not for this login",
        "idp_error": "The identity provider did not sign you in",
        "invalid_subject": "The identity provider sent no usable subject",
    }
    message = messages.get(code, messages["invalid_saml_response"])
    if code == "invalid_saml_response":
        return UnreadableResponse(code, message)
    return LoginRefused(code, message)


def _first(attributes: Mapping[str, Sequence[str]], names: Sequence[str]) -> str | None:
    for name in names:
        values = [v for v in attributes.get(name, []) if v]
        if values:
            return str(values[0])
    return None


def map_attributes(
    attribute_map: Mapping[str, Sequence[str]],
    name_id: str,
    name_id_format: str | None,
    attributes: Mapping[str, Sequence[str]],
    authn_contexts: Sequence[str] = (),
) -> IdpAssertion:
    """The preset's attribute names → Gatehouse's view of the person."""
    email = _first(attributes, attribute_map.get("email", []))
    if email is None and name_id_format == C.NAMEID_EMAIL_ADDRESS:
        email = name_id
    name = _first(attributes, attribute_map.get("name", []))
    if name is None:
        given = _first(attributes, attribute_map.get("given_name", []))
        family = _first(attributes, attribute_map.get("family_name", []))
        name = " ".join(p for p in (given, family) if p) or None
    groups: list[str] = []
    for attr in attribute_map.get("groups", []):
        groups.extend(str(v) for v in attributes.get(attr, []) if v)
    amr = [str(v) for a in attribute_map.get("amr", AMR_ATTRIBUTES) for v in attributes.get(a, [])]
    return IdpAssertion(
        subject=name_id,
        email=email,
        name=name,
        groups=tuple(dict.fromkeys(groups)),
        amr=tuple(dict.fromkeys(amr)),
        acr=authn_contexts[0] if authn_contexts else None,
        external_id=_first(attributes, attribute_map.get("external_id", [])),
    )


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromtimestamp(OneLogin_Saml2_Utils.parse_SAML_to_time(value), dt.UTC)


def validate_response(
    connection: Connection, saml_response_b64: str, request_data: Mapping[str, Any]
) -> tuple[IdpAssertion, str | None, str, dt.datetime]:
    """Check a SAMLResponse (SAML core §3.2.2, profiles §4.1.4.3): (assertion, InResponseTo,
    assertion id, until when the replay cache must remember it).

    The caller checks InResponseTo against its own single-use request ids. ``request_data``
    must come from ``acs_request_data`` (the issuer's URL), so that python3-saml's own
    checks compare against the configured ACS; Destination and Recipient are then compared
    exactly here, where python3-saml accepts a prefix or substring.
    """
    if not saml_response_b64 or len(saml_response_b64) > MAX_RESPONSE:
        raise _refuse("invalid_saml_response")
    settings = saml_settings(connection, connection_secret(connection))
    try:
        raw = base64.b64decode("".join(saml_response_b64.split()), validate=True)
        # Signatures are computed over comment-free canonical XML, so a comment inside a
        # signed value (CVE-2017-11427 shape) changes what a parser reads without breaking the
        # signature. python3-saml drops comments; no IdP sends them: refuse outright.
        if b"<!--" in raw or b"<![CDATA[" in raw:
            raise _refuse("invalid_saml_response")
        response = OneLogin_Saml2_Response(settings, saml_response_b64)
    except LoginRefused:
        raise
    except Exception:  # base64, XML syntax, DTD, entities: all one refusal, never a 500
        raise _refuse("invalid_saml_response") from None
    try:
        response.is_valid(dict(request_data), request_id=None, raise_exceptions=True)
        expected = acs_url(connection)
        # SAML core §2.5.1.4: python3-saml skips an absent AudienceRestriction; we require it.
        if sp_entity_id(connection) not in response.get_audiences():
            raise _refuse("wrong_audience")
        if response.document.get("Destination") != expected:
            raise _refuse("wrong_destination")
        confirmations = response._query_assertion(  # the signed assertion's, never a copy
            f"/saml:Subject/saml:SubjectConfirmation[@Method='{C.CM_BEARER}']"
            "/saml:SubjectConfirmationData"
        )
        if not confirmations or any(c.get("Recipient") != expected for c in confirmations):
            raise _refuse("invalid_subject_confirmation")
        in_response_to = response.document.get("InResponseTo")
        signed_irt = {c.get("InResponseTo") for c in confirmations if c.get("InResponseTo")}
        # Only the assertion may be signed: its InResponseTo is the one that binds.
        if signed_irt and signed_irt != {in_response_to}:
            raise _refuse("invalid_subject_confirmation")
        limits = [_time(c.get("NotOnOrAfter")) for c in confirmations]
        if not all(limits):  # SAML profiles §4.1.4.2: a bearer confirmation must expire
            raise _refuse("invalid_subject_confirmation")
        not_on_or_after = max(t for t in limits if t is not None) + CLOCK_DRIFT
        assertion_id = response.get_assertion_id()
        name_id = response.get_nameid()
        name_id_format = response.get_nameid_format()
        attributes = response.get_attributes()
        contexts = response.get_authn_contexts()
    except LoginRefused:
        raise
    except OneLogin_Saml2_ValidationError as exc:
        raise _refuse(_CODE_FOR.get(exc.code, "invalid_saml_response")) from None
    except Exception:
        raise _refuse("invalid_saml_response") from None
    if not assertion_id or len(assertion_id) > 256:
        raise _refuse("invalid_saml_response")
    attribute_map = connection.settings.get("attribute_map") or PRESETS["generic"]
    assertion = map_attributes(attribute_map, name_id, name_id_format, attributes, contexts)
    return assertion, in_response_to, assertion_id, not_on_or_after


# --- test sign-in: what each check of a response found -------------------------------------


_SIGNATURE_CODES = frozenset({"invalid_signature", "deprecated_algorithm"})
_FAILED_BY: dict[str, str] = {
    "wrong_audience": "audience",
    "wrong_destination": "destination",
    "wrong_issuer": "issuer",
    "assertion_expired": "validity",
    "assertion_not_yet_valid": "validity",
    "invalid_subject_confirmation": "recipient",
    "idp_error": "status",
    "invalid_subject": "subject",
}


def trace_response(
    connection: Connection,
    saml_response_b64: str,
    request_data: Mapping[str, Any],
    request_id: str,
    now: dt.datetime | None = None,
) -> tuple[bool, list[dict[str, Any]]]:
    """A test sign-in's response, check by check, expected against received: what the
    customer's IT admin reads to mend their IdP's side. The verdict is the real one
    (``validate_response``); the other lines are read off the document to say where it went
    wrong. Nothing secret is kept: no key, no signature value, no raw assertion."""
    now = now or dt.datetime.now(dt.UTC)
    settings = saml_settings(connection, connection_secret(connection))
    try:
        if not saml_response_b64 or len(saml_response_b64) > MAX_RESPONSE:
            raise ValueError
        raw = base64.b64decode("".join(saml_response_b64.split()), validate=True)
        if b"<!--" in raw or b"<![CDATA[" in raw:
            raise ValueError
        response = OneLogin_Saml2_Response(settings, saml_response_b64)
    except Exception:  # anything unreadable: one line says so
        return False, [trace_line("readable", "The response can be read", False)]
    doc = response.document
    verdict: str | None = None
    assertion: IdpAssertion | None = None
    try:
        assertion, *_ = validate_response(connection, saml_response_b64, request_data)
    except LoginRefused as refused:
        verdict = refused.code
    checks = [trace_line("readable", "The response can be read", True)]
    status = OneLogin_Saml2_XML.query(doc, "/samlp:Response/samlp:Status/samlp:StatusCode")
    status_value = status[0].get("Value") if status else None
    checks.append(
        trace_line(
            "status",
            "The IdP signed the person in",
            status_value == C.STATUS_SUCCESS,
            C.STATUS_SUCCESS,
            status_value,
        )
    )
    # As python3-saml holds them: PEM, formatted from the stored bodies.
    certs = list((settings.get_idp_data().get("x509certMulti") or {}).get("signing") or [])
    signed = (
        any(
            OneLogin_Saml2_Utils.validate_sign(
                doc, multicerts=certs, xpath=xpath, raise_exceptions=False
            )
            for xpath in (
                OneLogin_Saml2_Utils.ASSERTION_SIGNATURE_XPATH,
                OneLogin_Saml2_Utils.RESPONSE_SIGNATURE_XPATH,
            )
        )
        if certs
        else False
    )
    signature_ok = verdict is None or (verdict not in _SIGNATURE_CODES and signed)
    checks.append(
        trace_line(
            "signature",
            "Signed (RSA-SHA256 or stronger) by a certificate of the IdP's metadata",
            signature_ok,
            f"{len(certs)} certificate(s) from the metadata",
            "a valid signature" if signature_ok else "no valid signature",
        )
    )
    issuers = _safe(response.get_issuers)
    expected_issuer = connection.settings.get("idp_entity_id")
    checks.append(
        trace_line(
            "issuer",
            "Issued by the IdP of the metadata",
            expected_issuer in (issuers or []),
            expected_issuer,
            issuers,
        )
    )
    audiences = _safe(response.get_audiences)
    checks.append(
        trace_line(
            "audience",
            "Meant for this service (Audience)",
            sp_entity_id(connection) in (audiences or []),
            sp_entity_id(connection),
            audiences,
        )
    )
    destination = doc.get("Destination")
    checks.append(
        trace_line(
            "destination",
            "Sent to this ACS URL (Destination)",
            destination == acs_url(connection),
            acs_url(connection),
            destination,
        )
    )
    in_response_to = doc.get("InResponseTo")
    checks.append(
        trace_line(
            "in_response_to",
            "Answers this test's request (InResponseTo)",
            in_response_to == request_id,
            request_id,
            in_response_to,
        )
    )
    issued = _time(doc.get("IssueInstant"))
    offset = None if issued is None else round((issued - now).total_seconds())
    checks.append(
        trace_line(
            "clock",
            "The IdP's clock agrees with ours (within 5 minutes)",
            offset is not None and abs(offset) <= CLOCK_DRIFT.total_seconds(),
            "within 300 seconds",
            None if offset is None else f"{offset:+d} seconds",
        )
    )
    if verdict in _FAILED_BY:
        failed = _FAILED_BY[verdict]
        for line in checks:
            if line["key"] == failed:
                line["passed"] = False
        if failed not in {line["key"] for line in checks}:
            checks.append(trace_line(failed, _refuse(verdict).message, False))
    mapped = assertion
    if mapped is None:  # read off the document only to show what the IdP sent
        attribute_map = connection.settings.get("attribute_map") or PRESETS["generic"]
        mapped = map_attributes(
            attribute_map,
            _safe(response.get_nameid) or "",
            _safe(response.get_nameid_format),
            _safe(response.get_attributes) or {},
        )
    checks.append(
        trace_line(
            "email",
            "An email address was sent",
            bool(mapped.email),
            ", ".join((connection.settings.get("attribute_map") or {}).get("email", [])[:3]),
            mapped.email,
        )
    )
    checks.append(
        trace_line(
            "groups",
            "Groups were sent (for role mappings)",
            bool(mapped.groups) or None,
            ", ".join((connection.settings.get("attribute_map") or {}).get("groups", [])[:3]),
            list(mapped.groups)[:20],
        )
    )
    checks.append(
        trace_line(
            "subject",
            "A subject (NameID) was sent",
            bool(mapped.subject),
            None,
            mapped.subject or None,
        )
    )
    # The names (never the values) of what the IdP sent, for mapping them.
    sent = sorted(_safe(response.get_attributes) or {})[:50]
    checks.append(
        trace_line("attributes", "Attributes the IdP sent (names)", None, None, sent or None)
    )
    passed = verdict is None and bool(mapped.email)
    if verdict is not None and all(line["passed"] is not False for line in checks):
        checks.append(trace_line("accepted", _refuse(verdict).message, False, None, verdict))
    return passed, checks


def _safe(read: Any) -> Any:
    try:
        return read()
    except Exception:  # a value the document lacks or holds malformed: shown as none
        return None


def peek_in_response_to(saml_response_b64: str) -> str | None:
    """The InResponseTo a response names, read without trusting it (to tell a test sign-in's
    response from a login's before either is checked)."""
    try:
        raw = base64.b64decode(
            "".join((saml_response_b64 or "")[:MAX_RESPONSE].split()), validate=True
        )
        if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
            return None
        root = OneLogin_Saml2_XML.to_etree(raw)
        value = root.get("InResponseTo")
    except Exception:
        return None
    return value if isinstance(value, str) and len(value) <= 128 else None
