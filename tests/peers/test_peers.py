"""Smoke tests: both real identity providers start and complete an SSO round trip end to end."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from tests.peers import (
    NAMEID_FORMATS,
    Browser,
    OidcIdp,
    SamlIdp,
    SamlSp,
    self_signed_cert,
)

# python3-saml still calls datetime.utcnow() (deprecated from Python 3.12).
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utc:DeprecationWarning")

REDIRECT_URI = "http://rp.test/callback"
CLIENT_SECRET = "rp-secret-" + "x" * 32
ALICE = {
    "password": "alice-password",
    "claims": {
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Liddell",
        "groups": ["engineering", "admins"],
        "amr": ["pwd", "otp"],
        "acr": "urn:gatehouse:acr:mfa",
    },
}

SP_ENTITY_ID = "http://sp.test/metadata"
SP_ACS_URL = "http://sp.test/acs"
BOB = {
    "password": "bob-password",
    "attributes": {
        "email": "bob@example.com",
        "givenName": "Bob",
        "sn": "Builder",
        "displayName": "Bob Builder",
        "groups": ["engineering", "on-call"],
    },
}
DS = {"ds": "http://www.w3.org/2000/09/xmldsig#"}


# --- OIDC ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oidc_idp() -> Iterator[OidcIdp]:
    clients = [
        {"client_id": "rp-rs256", "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]},
        {
            "client_id": "rp-es256",
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_post",
            "id_token_signed_response_alg": "ES256",
        },
    ]
    with OidcIdp(clients=clients, accounts={"alice": ALICE}) as idp:
        yield idp


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize(idp: OidcIdp, client_id: str, challenge: str, state: str, nonce: str) -> str:
    """Log alice in through the browser; return the code from the redirect to the RP."""
    browser = Browser([idp.base_url])
    login_page = browser.get(
        idp.authorization_endpoint,
        {
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "openid email profile groups",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert login_page.status == 200
    assert browser.form(login_page).user_fields == ["login", "password"]
    done = browser.submit_form(login_page, {"login": "alice", "password": ALICE["password"]})

    # The browser stopped at the redirect that leaves the IdP: nobody listens at rp.test.
    assert done.status in (302, 303)
    assert done.location is not None
    assert done.location.startswith(REDIRECT_URI + "?")
    params = done.redirect_params()
    assert params["state"] == state
    # RFC 9207: the authorization response names its issuer.
    assert idp.discovery()["authorization_response_iss_parameter_supported"] is True
    assert params["iss"] == idp.issuer
    return params["code"]


def _token_request(
    idp: OidcIdp, client_id: str, form: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if client_id == "rp-rs256":  # client_secret_basic
        pair = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(CLIENT_SECRET)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:  # client_secret_post
        form = {**form, "client_id": client_id, "client_secret": CLIENT_SECRET}
    request = urllib.request.Request(  # noqa: S310 - loopback http
        idp.token_endpoint,
        data=urllib.parse.urlencode(form).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, _json(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _json(error.read())


def _json(body: bytes) -> dict[str, Any]:
    return dict(json.loads(body))


@pytest.mark.parametrize(("client_id", "alg"), [("rp-rs256", "RS256"), ("rp-es256", "ES256")])
def test_oidc_code_flow_with_pkce_issues_id_token_with_claims(
    oidc_idp: OidcIdp, client_id: str, alg: str
) -> None:
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    code = _authorize(oidc_idp, client_id, challenge, state, nonce)

    status, tokens = _token_request(
        oidc_idp,
        client_id,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert status == 200, tokens
    assert tokens["token_type"].lower() == "bearer"

    keys = KeySet.import_key_set(oidc_idp.jwks())  # type: ignore[arg-type]
    token = jwt.decode(tokens["id_token"], keys, algorithms=[alg])
    assert token.header["alg"] == alg
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": oidc_idp.issuer},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True, "value": "alice"},
    ).validate(token.claims)
    claims = token.claims
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Liddell"
    assert claims["groups"] == ["engineering", "admins"]
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["acr"] == "urn:gatehouse:acr:mfa"

    # The code is single-use.
    status, error = _token_request(
        oidc_idp,
        client_id,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert (status, error["error"]) == (400, "invalid_grant")


def test_oidc_rejects_wrong_pkce_verifier(oidc_idp: OidcIdp) -> None:
    _verifier, challenge = _pkce()
    code = _authorize(oidc_idp, "rp-rs256", challenge, "s", "n")
    status, error = _token_request(
        oidc_idp,
        "rp-rs256",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": _pkce()[0],
        },
    )
    assert (status, error["error"]) == (400, "invalid_grant")


def test_oidc_wrong_password_stays_on_login_form(oidc_idp: OidcIdp) -> None:
    browser = Browser([oidc_idp.base_url])
    page = browser.get(
        oidc_idp.authorization_endpoint,
        {
            "client_id": "rp-rs256",
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "openid",
        },
    )
    again = browser.submit_form(page, {"login": "alice", "password": "wrong"})
    assert again.status == 401
    assert not again.is_redirect
    assert browser.form(again).user_fields == ["login", "password"]


# --- SAML ---------------------------------------------------------------------------------------


def _onelogin_settings(idp: SamlIdp, **security: Any) -> dict[str, Any]:
    return {
        "strict": True,
        "sp": {
            "entityId": SP_ENTITY_ID,
            "assertionConsumerService": {
                "url": SP_ACS_URL,
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
            },
            "NameIDFormat": NAMEID_FORMATS["email"],
            **security.pop("sp", {}),
        },
        "idp": idp.onelogin_idp_settings(),
        "security": {
            "wantAssertionsSigned": True,
            "wantMessagesSigned": True,
            "requestedAuthnContext": False,
            **security,
        },
    }


def _sso(idp: SamlIdp, settings: dict[str, Any]) -> tuple[str, dict[str, str], str]:
    """AuthnRequest (HTTP-Redirect) + UserPass login; return the ACS, posted fields, request id."""
    sp_request = {"https": "off", "http_host": "sp.test", "script_name": "/login"}
    auth = OneLogin_Saml2_Auth(sp_request, settings)
    redirect_url = auth.login(return_to="http://sp.test/after-login")
    request_id = auth.get_last_request_id()
    assert redirect_url.startswith(idp.sso_url + "?SAMLRequest=")

    browser = Browser([idp.base_url])
    login_page = browser.get(redirect_url)
    assert login_page.status == 200
    done = browser.submit_form(login_page, {"username": "bob", "password": BOB["password"]})
    action, fields = browser.auto_post(done)
    return action, fields, request_id


def _validated(
    settings: dict[str, Any], fields: dict[str, str], request_id: str
) -> OneLogin_Saml2_Response:
    response = OneLogin_Saml2_Response(OneLogin_Saml2_Settings(settings), fields["SAMLResponse"])
    acs_request = {
        "https": "off",
        "http_host": "sp.test",
        "script_name": "/acs",
        "post_data": fields,
    }
    assert response.is_valid(acs_request, request_id=request_id, raise_exceptions=True)
    return response


def test_saml_sso_returns_signed_response_with_attributes() -> None:
    sp = SamlSp(SP_ENTITY_ID, SP_ACS_URL)
    with SamlIdp(sps=[sp], users={"bob": BOB}) as idp:
        metadata = idp.metadata_xml()
        assert f'entityID="{idp.entity_id}"' in metadata
        assert idp.cert_base64 in metadata

        settings = _onelogin_settings(idp)
        action, fields, request_id = _sso(idp, settings)

    assert action == SP_ACS_URL
    assert fields["RelayState"] == "http://sp.test/after-login"
    # Strict python3-saml: signatures (response and assertion) against the IdP certificate,
    # destination, audience, timing and InResponseTo.
    response = _validated(settings, fields, request_id)
    assert response.get_in_response_to() == request_id
    assert response.get_nameid() == "bob@example.com"
    assert response.get_nameid_format() == NAMEID_FORMATS["email"]
    attributes = response.get_attributes()
    assert attributes["email"] == ["bob@example.com"]
    assert attributes["groups"] == ["engineering", "on-call"]
    assert attributes["displayName"] == ["Bob Builder"]

    document = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    methods = document.xpath(
        "//ds:Signature/ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=DS
    )
    assert methods == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] * 2


def test_saml_persistent_nameid_and_authn_context() -> None:
    mfa = "https://refeds.org/profile/mfa"
    with SamlIdp(
        sps=[SamlSp(SP_ENTITY_ID, SP_ACS_URL)],
        users={"bob": BOB},
        name_id_format="persistent",
        authn_context=mfa,
    ) as idp:
        settings = _onelogin_settings(idp, sp={"NameIDFormat": NAMEID_FORMATS["persistent"]})
        _action, fields, request_id = _sso(idp, settings)

    response = _validated(settings, fields, request_id)
    assert response.get_nameid_format() == NAMEID_FORMATS["persistent"]
    assert response.get_nameid() == "bob"
    assert response.get_authn_contexts() == [mfa]


def test_saml_sp_with_certificate_must_sign_authn_requests() -> None:
    sp_cert, sp_key = self_signed_cert("sp.test")
    with SamlIdp(
        sps=[SamlSp(SP_ENTITY_ID, SP_ACS_URL, cert_pem=sp_cert)], users={"bob": BOB}
    ) as idp:
        signed = _onelogin_settings(
            idp, sp={"x509cert": sp_cert, "privateKey": sp_key}, authnRequestsSigned=True
        )
        _action, fields, request_id = _sso(idp, signed)
        _validated(signed, fields, request_id)

        unsigned = _onelogin_settings(idp)
        auth = OneLogin_Saml2_Auth(
            {"https": "off", "http_host": "sp.test", "script_name": "/login"}, unsigned
        )
        refused = Browser([idp.base_url]).get(auth.login())
        # SimpleSAMLphp 1.19 shows its error page with status 200: no login form, though.
        assert not refused.is_redirect
        assert all(not form.user_fields for form in Browser([]).forms(refused))
        assert "no signature found on message" in idp.log()
