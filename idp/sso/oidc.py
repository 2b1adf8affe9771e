"""OpenID Connect relying party: discovery, the authorization code flow with PKCE, and the
ID token checks (OpenID Connect Core 1.0 §3.1.3.7). Protocol only: no Flask request here.

The connection's ``settings`` hold the issuer, the client id, the discovered metadata subset,
the claim mapping of its preset and a cached JWKS; the client secret stays encrypted in
``Connection.secret``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import import_key

from idp import outbound
from idp.config import current_settings
from idp.connections.models import Connection
from idp.connections.services import connection_secret
from idp.db import db
from idp.errors import BadRequest
from idp.people.signin import IdpAssertion, LoginRefused
from idp.sso.trace import trace_line

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 5.0  # seconds, to connect and per read
HTTP_DEADLINE = 10.0  # seconds for a whole exchange
MAX_RESPONSE_BYTES = 256 * 1024  # discovery documents, JWKS and token responses are small
MAX_ID_TOKEN = 16 * 1024
JWKS_REFETCH_SECONDS = 60  # at most one JWKS fetch per connection in this interval
LEEWAY_SECONDS = 60  # clock skew allowed on exp and iat
DEFAULT_SCOPES = ("openid", "email", "profile")
# Only asymmetric signatures: an HMAC ID token would be keyed with the client secret (or,
# in the classic confusion attack, with the IdP's public key), never with the IdP's key.
ASYMMETRIC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_METADATA_KEYS = (
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
    "id_token_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported",
    "authorization_response_iss_parameter_supported",
)
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")

# Claim mappings: where each IdpAssertion field is read from (first present claim wins).
PRESETS: dict[str, dict[str, Any]] = {
    "generic": {
        "subject": "sub",
        "email": ["email"],
        "name": ["name"],
        "groups": "groups",
        "external_id": None,
    },
    # Entra ID: email is optional, preferred_username/upn stand in; groups are object ids;
    # oid is the person's id across the tenant (what Entra's SCIM feed sends as externalId).
    "entra": {
        "subject": "sub",
        "email": ["email", "preferred_username", "upn"],
        "name": ["name"],
        "groups": "groups",
        "external_id": "oid",
        "tenant": "tid",
    },
    # Google Workspace: hd names the person's Workspace domain.
    "google": {
        "subject": "sub",
        "email": ["email"],
        "name": ["name"],
        "groups": "groups",
        "external_id": None,
        "hosted_domain": "hd",
    },
}
PRESETS["okta"] = PRESETS["generic"]


class DiscoveryError(BadRequest):
    """The issuer's discovery document cannot be used."""


# --- HTTP ---------------------------------------------------------------------------------


def check_url(url: str, what: str = "URL") -> str:
    """``url`` if Gatehouse may call it: https, or http on loopback when allowed."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.hostname or parts.username or parts.password:
        raise DiscoveryError("invalid_idp_url", f"The identity provider's {what} is not a URL")
    if parts.scheme == "https":
        return url
    loopback = parts.scheme == "http" and _is_loopback(parts.hostname)
    if loopback and current_settings().allow_http_loopback:
        return url
    raise DiscoveryError("insecure_idp_url", f"The identity provider's {what} must use https")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Every failure to read a document once its URL is called (unreachable, an error status, a
# redirect, too large, too slow, not a JSON object) gets this one answer, so it never tells an
# open port from a closed one.
_UNREACHABLE = "The identity provider could not be reached, or did not answer as one"


def _not_allowed(what: str) -> str:
    return (
        f"The identity provider's {what} is not allowed: Gatehouse does not call loopback, "
        "private or other internal addresses unless the deployment allows them"
    )


def _call(url: str, what: str, **kwargs: Any) -> outbound.Response:
    """``url`` through the outbound guard, its refusals as DiscoveryErrors."""
    check_url(url, what)
    with _guard_errors(what):
        return outbound.fetch(
            url,
            max_bytes=MAX_RESPONSE_BYTES,
            connect_timeout=HTTP_TIMEOUT,
            read_timeout=HTTP_TIMEOUT,
            deadline=HTTP_DEADLINE,
            **kwargs,
        )


@contextmanager
def _guard_errors(what: str) -> Iterator[None]:
    """The outbound guard's refusals and failures, as the DiscoveryErrors callers answer."""
    try:
        yield
    except outbound.InvalidUrl:
        raise DiscoveryError(
            "invalid_idp_url", f"The identity provider's {what} is not a URL"
        ) from None
    except outbound.NotAllowed as refused:
        log.info("oidc: %s refused: %s", what, refused.reason)
        raise DiscoveryError("destination_not_allowed", _not_allowed(what)) from None
    except outbound.Unreachable:
        raise DiscoveryError("idp_unavailable", _UNREACHABLE) from None


def _json_object(response: outbound.Response) -> dict[str, Any] | None:
    try:
        document = json.loads(response.body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _get_json(url: str, what: str) -> dict[str, Any]:
    response = _call(url, what, headers={"Accept": "application/json"})
    document = _json_object(response) if response.status == 200 else None
    if document is None:
        log.info("oidc: %s unusable (status %s)", what, response.status)
        raise DiscoveryError("idp_unavailable", _UNREACHABLE)
    return document


def check_destination(url: str, what: str) -> None:
    """Refuse now an endpoint the guard would refuse when called (resolves, connects nowhere)."""
    with _guard_errors(what):
        outbound.vet(url, outbound.policy_from_settings(current_settings()), HTTP_TIMEOUT)


# --- discovery and settings ------------------------------------------------------------------


def discover(issuer: str) -> dict[str, Any]:
    """The issuer's metadata (OpenID Connect Discovery 1.0 §4); its ``issuer`` must be ours
    exactly (§4.3), so a document cannot speak for another issuer."""
    check_url(issuer, "issuer")
    metadata = _get_json(
        f"{issuer.rstrip('/')}/.well-known/openid-configuration", "discovery document"
    )
    named = metadata.get("issuer")
    if not isinstance(named, str):  # not a discovery document: as if nothing answered
        raise DiscoveryError("idp_unavailable", _UNREACHABLE)
    if named != issuer:
        raise DiscoveryError("issuer_mismatch", "The discovery document names a different issuer")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        check_url(metadata.get(key), key)
    if metadata.get("userinfo_endpoint") is not None:
        check_url(metadata["userinfo_endpoint"], "userinfo_endpoint")
    # Gatehouse itself calls these two: refuse an internal one now, not at the first login.
    for key in ("token_endpoint", "jwks_uri"):
        check_destination(metadata[key], key)
    return metadata


def build_settings(
    issuer: str,
    client_id: str,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    preset: str = "generic",
    claims: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``Connection.settings`` for an OIDC IdP: discovered now, checked once."""
    if preset not in PRESETS:
        raise BadRequest("invalid_preset", f"preset must be one of {', '.join(PRESETS)}")
    if not client_id or len(client_id) > 255:
        raise BadRequest("invalid_client_id", "client_id is required")
    scopes = [str(s) for s in scopes]
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    metadata = discover(issuer)
    settings: dict[str, Any] = {
        "issuer": issuer,
        "client_id": client_id,
        "scopes": scopes,
        "preset": preset,
        "claims": {**PRESETS[preset], **(claims or {})},
    }
    settings.update({k: metadata[k] for k in _METADATA_KEYS if k in metadata})
    # OpenID Connect Discovery §3: RS256 is the default, and asymmetric algorithms only.
    advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algs = [a for a in advertised if a in ASYMMETRIC_ALGS]
    if not algs:
        raise DiscoveryError(
            "unsupported_signing_alg", "The identity provider signs ID tokens with no usable key"
        )
    settings["id_token_signing_alg_values_supported"] = algs
    # RFC 8414 §2: the default token endpoint auth method is client_secret_basic.
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = next((m for m in AUTH_METHODS if m in methods), None)
    if method is None:
        raise DiscoveryError(
            "unsupported_auth_method", "The token endpoint accepts no client secret method"
        )
    settings["token_endpoint_auth_method"] = method
    return settings


def redirect_uri(connection: Connection) -> str:
    """Our callback, from the configured issuer (never from the Host header)."""
    return f"{current_settings().issuer.rstrip('/')}/sso/oidc/{connection.id}/callback"


def code_challenge(code_verifier: str) -> str:
    """PKCE S256 (RFC 7636 §4.2)."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorization_url(
    connection: Connection,
    state: str,
    nonce: str,
    code_verifier: str,
    acr_values: Sequence[str] = (),
) -> str:
    """The authentication request (OpenID Connect Core §3.1.2.1), with PKCE S256; with
    ``acr_values`` when the org requires MFA (verified on the answer, not trusted)."""
    settings = connection.settings
    endpoint = check_url(settings["authorization_endpoint"], "authorization_endpoint")
    params = {
        "response_type": "code",
        "client_id": settings["client_id"],
        "redirect_uri": redirect_uri(connection),
        "scope": " ".join(settings.get("scopes") or DEFAULT_SCOPES),
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge(code_verifier),
        "code_challenge_method": "S256",
    }
    if acr_values:
        params["acr_values"] = " ".join(acr_values)
    separator = "&" if urlsplit(endpoint).query else "?"
    return f"{endpoint}{separator}{urlencode(params)}"


# --- token exchange ----------------------------------------------------------------------------


def request_tokens(connection: Connection, code: str, code_verifier: str) -> dict[str, Any]:
    """The token request (RFC 6749 §4.1.3 + RFC 7636 §4.5); errors never quote tokens."""
    settings = connection.settings
    endpoint = check_url(settings["token_endpoint"], "token_endpoint")
    client_id, secret = settings["client_id"], connection_secret(connection)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(connection),
        "code_verifier": code_verifier,
    }
    headers = {"Accept": "application/json"}
    if settings.get("token_endpoint_auth_method") == "client_secret_post":
        form.update(client_id=client_id, client_secret=secret)
    else:
        # RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
        pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    try:
        response = _call(
            endpoint,
            "token_endpoint",
            method="POST",
            body=urlencode(form).encode(),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    except DiscoveryError as failure:
        log.warning("oidc: token endpoint of %s: %s", connection.id, failure.code)
        if failure.code == "destination_not_allowed":
            raise LoginRefused(failure.code, failure.message) from None
        raise LoginRefused("idp_unavailable", _UNREACHABLE) from None
    body = _json_object(response)
    if body is None:
        # Not an OAuth answer at all (RFC 6749 §5.1/§5.2 are JSON objects): as if unreachable.
        log.info("oidc: token endpoint of %s answered %s, not JSON", connection.id, response.status)
        raise LoginRefused("idp_unavailable", _UNREACHABLE)
    if response.status != 200:
        error = body.get("error")
        error = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "unknown"
        log.info("oidc: token endpoint of %s refused: %s %s", connection.id, response.status, error)
        raise LoginRefused(
            "token_exchange_failed", "The identity provider refused to complete the sign-in"
        )
    return body


def exchange_and_verify(
    connection: Connection, code: str, code_verifier: str, nonce: str
) -> IdpAssertion:
    """Exchange the code, check the ID token, map its claims."""
    tokens = request_tokens(connection, code, code_verifier)
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise LoginRefused("invalid_id_token", "The identity provider sent no ID token")
    claims = verify_id_token(connection, id_token, nonce)
    return assertion_from_claims(connection, claims)


# --- ID token validation ---------------------------------------------------------------------


def _invalid(code: str = "invalid_id_token") -> LoginRefused:
    return LoginRefused(code, "The identity provider's ID token is not valid for this sign-in")


def _header(id_token: str) -> dict[str, Any]:
    if len(id_token) > MAX_ID_TOKEN or id_token.count(".") != 2:
        raise _invalid()
    segment = id_token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise _invalid() from None
    if not isinstance(header, dict):
        raise _invalid()
    return header


def _find_key(jwks: Any, kid: str | None, alg: str) -> dict[str, Any] | None:
    keys = [k for k in (jwks or {}).get("keys", []) if isinstance(k, dict)]
    keys = [k for k in keys if k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
    if kid is not None:
        matches = [k for k in keys if k.get("kid") == kid]
    else:
        # No kid: only unambiguous with a single candidate key (Core §10.1).
        matches = keys if len(keys) == 1 else []
    return matches[0] if len(matches) == 1 else None


def refresh_jwks(connection: Connection) -> bool:
    """Fetch the IdP's JWKS into the settings, at most once per JWKS_REFETCH_SECONDS.

    The time of the last fetch is kept in the row, so the limit holds across processes; the
    caller decides whether the change is committed (see ``views_oidc``).
    """
    settings = connection.settings
    now = time.time()
    if now - float(settings.get("jwks_fetched_at") or 0) < JWKS_REFETCH_SECONDS:
        return False
    try:
        jwks = _get_json(settings["jwks_uri"], "JWKS")
    except DiscoveryError:
        jwks = None
    updated = {**settings, "jwks_fetched_at": now}
    if jwks is not None and isinstance(jwks.get("keys"), list):
        updated["jwks"] = {"keys": jwks["keys"]}
    connection.settings = updated
    db.session.flush()
    return jwks is not None


def verify_id_token(connection: Connection, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims if it passes OpenID Connect Core §3.1.3.7, else LoginRefused."""
    settings = connection.settings
    header = _header(id_token)
    alg = header.get("alg")
    allowed = [a for a in settings.get("id_token_signing_alg_values_supported") or ["RS256"]]
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGS or alg not in allowed:
        raise _invalid("unsupported_id_token_alg")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _invalid()
    jwk = _find_key(settings.get("jwks"), kid, alg)
    # An unknown kid is how key rotation looks: fetch the JWKS once more, rate-limited.
    if jwk is None and refresh_jwks(connection):
        jwk = _find_key(connection.settings.get("jwks"), kid, alg)
    if jwk is None:
        raise _invalid("unknown_signing_key")
    try:
        key = import_key(jwk)
        if key.key_type == "oct":
            raise _invalid()
        token = jwt.decode(id_token, key, algorithms=[alg])
    except JoseError:
        raise _invalid("invalid_id_token_signature") from None
    except ValueError:
        raise _invalid() from None
    claims = dict(token.claims)
    check_claims(connection, claims, nonce)
    return claims


def check_claims(connection: Connection, claims: Mapping[str, Any], nonce: str) -> None:
    """iss, aud, azp, exp, iat, nonce and sub (OpenID Connect Core §3.1.3.7, items 2-11)."""
    settings = connection.settings
    client_id = settings["client_id"]
    if claims.get("iss") != settings["issuer"]:
        raise _invalid("invalid_issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise _invalid("invalid_audience")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise _invalid("invalid_audience")
    now = time.time()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not _is_number(exp) or exp + LEEWAY_SECONDS <= now:
        raise _invalid("expired_id_token")
    if not _is_number(iat) or iat - LEEWAY_SECONDS > now:
        raise _invalid("invalid_id_token")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise _invalid("invalid_nonce")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise _invalid("invalid_subject")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- claims ------------------------------------------------------------------------------------


def _first_string(claims: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def assertion_from_claims(connection: Connection, claims: Mapping[str, Any]) -> IdpAssertion:
    """The IdpAssertion the connection's claim mapping reads from the ID token."""
    settings = connection.settings
    mapping = {**PRESETS["generic"], **(settings.get("claims") or {})}
    tenant_claim, expected_tenant = mapping.get("tenant"), settings.get("tenant_id")
    if tenant_claim and expected_tenant and claims.get(tenant_claim) != expected_tenant:
        raise LoginRefused("wrong_tenant", "This account belongs to another tenant")
    hd_claim, expected_hd = mapping.get("hosted_domain"), settings.get("hosted_domain")
    if hd_claim and expected_hd and claims.get(hd_claim) != expected_hd:
        raise LoginRefused("wrong_tenant", "This account belongs to another domain")
    email = _first_string(claims, mapping.get("email") or [])
    # An address the IdP itself says is unverified is not an identity claim.
    if claims.get("email_verified") is False and email == claims.get("email"):
        email = None
    raw_groups = claims.get(mapping.get("groups") or "groups")
    groups = (
        [str(g) for g in raw_groups if isinstance(g, str | int)]
        if isinstance(raw_groups, list)
        else []
    )
    amr = claims.get("amr")
    auth_time = claims.get("auth_time")
    external_claim = mapping.get("external_id")
    external_id = claims.get(external_claim) if external_claim else None
    subject = claims.get(mapping.get("subject") or "sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid("invalid_subject")
    return IdpAssertion(
        subject=subject,
        email=email,
        name=_first_string(claims, mapping.get("name") or []),
        groups=tuple(groups),
        amr=tuple(str(a) for a in amr) if isinstance(amr, list) else (),
        acr=claims["acr"] if isinstance(claims.get("acr"), str) else None,
        auth_time=datetime.fromtimestamp(auth_time, UTC) if _is_number(auth_time) else None,
        external_id=external_id if isinstance(external_id, str) else None,
    )


# --- test sign-in: what each check of the answer found ---------------------------------------


def _unverified_claims(id_token: str) -> dict[str, Any]:
    """The ID token's claims read without trusting them, only to say what was received."""
    try:
        segment = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


_FAILED_CLAIM = {
    "invalid_issuer": "issuer",
    "invalid_audience": "audience",
    "expired_id_token": "clock",
    "invalid_nonce": "nonce",
    "invalid_subject": "subject",
    "unsupported_id_token_alg": "signature",
    "unknown_signing_key": "signature",
    "invalid_id_token_signature": "signature",
}


def trace_callback(
    connection: Connection, code: str, code_verifier: str, nonce: str, error: str | None
) -> tuple[bool, list[dict[str, Any]]]:
    """A test sign-in's answer, check by check: the IdP's own answer, the token exchange, the
    ID token's signature and claims (iss, aud, exp/iat with the clock offset, nonce, sub),
    and what the claim mapping reads (email, groups); the claim names sent, never a token
    nor a claim's value beyond those mapped."""
    if error is not None:
        return False, [
            trace_line("status", "The IdP signed the person in", False, "a code", f"error {error}")
        ]
    lines = [trace_line("status", "The IdP signed the person in", True, "a code", "a code")]
    try:
        tokens = request_tokens(connection, code, code_verifier)
    except LoginRefused as refused:
        lines.append(
            trace_line(
                "exchange",
                "The code was exchanged at the token endpoint",
                False,
                None,
                refused.code,
            )
        )
        return False, lines
    lines.append(trace_line("exchange", "The code was exchanged at the token endpoint", True))
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        lines.append(trace_line("id_token", "An ID token was sent", False))
        return False, lines
    verdict, claims = None, {}
    try:
        claims = verify_id_token(connection, id_token, nonce)
    except LoginRefused as refused:
        verdict = refused.code
        claims = _unverified_claims(id_token)
    settings = connection.settings
    client_id = settings.get("client_id")
    aud = claims.get("aud")
    now = time.time()
    iat = claims.get("iat")
    offset = round(iat - now) if _is_number(iat) else None
    lines += [
        trace_line(
            "signature",
            "Signed with an asymmetric key of the IdP's JWKS",
            verdict
            not in {
                "unsupported_id_token_alg",
                "unknown_signing_key",
                "invalid_id_token_signature",
                "invalid_id_token",
            },
        ),
        trace_line(
            "issuer",
            "Issued by the connection's issuer (iss)",
            claims.get("iss") == settings.get("issuer"),
            settings.get("issuer"),
            claims.get("iss"),
        ),
        trace_line(
            "audience",
            "Meant for this client (aud)",
            client_id in ([aud] if isinstance(aud, str) else aud or []),
            client_id,
            aud,
        ),
        trace_line(
            "clock",
            "The IdP's clock agrees with ours (iat, exp)",
            offset is not None and abs(offset) <= LEEWAY_SECONDS and verdict != "expired_id_token",
            f"within {LEEWAY_SECONDS} seconds",
            None if offset is None else f"{offset:+d} seconds",
        ),
        trace_line("nonce", "Answers this test's request (nonce)", verdict != "invalid_nonce"),
    ]
    if verdict in _FAILED_CLAIM:
        for line in lines:
            if line["key"] == _FAILED_CLAIM[verdict]:
                line["passed"] = False
    mapped = None
    if verdict is None:
        try:
            mapped = assertion_from_claims(connection, claims)
        except LoginRefused as refused:
            verdict = refused.code
            lines.append(trace_line("tenant", refused.message, False))
    mapping = {**PRESETS["generic"], **(settings.get("claims") or {})}
    email = mapped.email if mapped else _first_string(claims, mapping.get("email") or [])
    groups = list(mapped.groups)[:20] if mapped else []
    lines += [
        trace_line(
            "email",
            "An email address was sent",
            bool(email),
            ", ".join(mapping.get("email") or []),
            email,
        ),
        trace_line(
            "groups",
            "Groups were sent (for role mappings)",
            bool(groups) or None,
            mapping.get("groups"),
            groups,
        ),
        trace_line(
            "subject", "A subject (sub) was sent", bool(claims.get("sub")), None, claims.get("sub")
        ),
        trace_line(
            "attributes", "Claims the IdP sent (names)", None, None, sorted(claims)[:50] or None
        ),
    ]
    if verdict is not None and all(line["passed"] is not False for line in lines):
        lines.append(
            trace_line(
                "accepted", "The ID token is not valid for this sign-in", False, None, verdict
            )
        )
    return verdict is None and bool(email), lines
