"""Whether an IdP's sign-in proved multi-factor authentication, and how to ask for it.

OIDC: the ID token's ``amr`` (RFC 8176) and ``acr`` (OpenID Connect Core §2); SAML: the
assertion's ``AuthnContextClassRef`` (SAML core §2.7.2.2) and, from Entra ID and AD FS, the
``authnmethodsreferences`` attribute. A connection may name more values that mean MFA at its
IdP (``mfa_values``) and what to request instead of its preset's (``mfa_request``: OIDC
``acr_values``, SAML class refs).
"""

from __future__ import annotations

from collections.abc import Iterable

from idp.connections.models import Connection
from idp.connections.services import connection_policy

# RFC 8176 §2 methods by factor: two different factors make MFA even without "mfa" itself.
_FACTORS = {
    "knowledge": {"pwd", "pin", "kba"},
    "possession": {"otp", "hwk", "swk", "sms", "tel", "sc", "pop"},
    "inherence": {"fpt", "face", "iris", "retina", "vbm"},
}
MS_MULTIPLE_AUTHN = "http://schemas.microsoft.com/claims/multipleauthn"
REFEDS_MFA = "https://refeds.org/profile/mfa"
# amr values that say MFA outright (RFC 8176 "mfa"; Entra's and AD FS's SAML form).
MFA_METHODS = frozenset({"mfa", MS_MULTIPLE_AUTHN})
# acr / AuthnContextClassRef values that mean MFA (not "if possible" variants).
MFA_CONTEXTS = frozenset(
    {
        "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
        "http://schemas.openid.net/pape/policies/2007/06/multi-factor-physical",
        "phr",  # OpenID EAP ACR: phishing-resistant
        "phrh",  # OpenID EAP ACR: phishing-resistant, hardware-protected
        "urn:okta:loa:2fa:any",
        REFEDS_MFA,
        MS_MULTIPLE_AUTHN,
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
    }
)
# What to ask each kind of IdP for, by preset, when the org requires MFA.
_OIDC_REQUEST = {
    "generic": ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"],
    "okta": ["urn:okta:loa:2fa:any"],
    "entra": [],  # Entra ignores acr_values; Conditional Access decides, amr reports "mfa"
    "google": [],
    "adfs": [],  # AD FS applies its own access control policies
}
_SAML_REQUEST = {
    "generic": [REFEDS_MFA],
    "okta": [REFEDS_MFA],
    "entra": [MS_MULTIPLE_AUTHN],
    "adfs": [MS_MULTIPLE_AUTHN],
    "google": [],
}


def asserts_mfa(connection: Connection, amr: Iterable[str], acr: str | None) -> bool:
    """Whether what the IdP reported proves a multi-factor sign-in."""
    methods = {str(m) for m in amr}
    if methods & MFA_METHODS:
        return True
    if sum(1 for factor in _FACTORS.values() if methods & factor) >= 2:
        return True
    accepted = MFA_CONTEXTS | set(connection.settings.get("mfa_values") or [])
    return acr is not None and acr in accepted


def _requested(connection: Connection, by_preset: dict[str, list[str]]) -> list[str]:
    """What to ask the IdP for: nothing unless the org requires MFA; then the connection's
    ``mfa_request``, else its preset's values."""
    if not connection_policy(connection).mfa_required:
        return []
    configured = connection.settings.get("mfa_request")
    if configured is not None:
        return [str(v) for v in configured]
    return by_preset.get(connection.settings.get("preset") or "generic", by_preset["generic"])


def requested_acr_values(connection: Connection) -> list[str]:
    """OIDC ``acr_values`` to send (OpenID Connect Core §3.1.2.1)."""
    return _requested(connection, _OIDC_REQUEST)


def requested_authn_contexts(connection: Connection) -> list[str]:
    """SAML ``RequestedAuthnContext`` class refs to send (SAML core §3.3.2.2.1)."""
    return _requested(connection, _SAML_REQUEST)
