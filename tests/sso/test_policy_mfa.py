"""Org policy at SSO sign-in, end to end against the real IdPs on loopback (oidc-provider,
SimpleSAMLphp): MFA asked for and verified, IdP-initiated SAML, JIT provisioning and
``sso_required``."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from idp.actors import system_actor
from idp.connections.mfa import REFEDS_MFA, asserts_mfa
from idp.connections.models import Connection, ExternalIdentity
from idp.db import db
from idp.orgs.models import Membership, MembershipSource, Organization
from idp.orgs.roles import Role
from idp.policies.services import set_org_policy, set_workspace_policy
from idp.sessions.models import Session
from idp.sso import saml
from idp.users.models import User
from tests.builders import (
    auth,
    make_key,
    make_member,
    make_org,
    make_verified_domain,
    workspace,
)
from tests.peers import Browser, OidcIdp, SamlIdp
from tests.sso import saml_fixtures as sf
from tests.sso.test_oidc import (
    CALLBACK,
    CLIENT_ID,
    CLIENT_SECRET,
    acme_connection,
    assert_refused,
    begin,
    callback,
    url_params,
)
from tests.sso.test_saml import BOB

# python3-saml still calls datetime.utcnow() (deprecated from Python 3.12).
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utc:DeprecationWarning")

PAPE_MFA = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
PASSWORD = "account-password"


def _account(login: str, **how: Any) -> dict[str, Any]:
    claims = {"email": f"{login}@example.com", "email_verified": True, "name": login.title()}
    return {"password": PASSWORD, "claims": {**claims, **how}}


# How each account authenticates at the OIDC IdP: what its ID tokens say in amr and acr.
ACCOUNTS = {
    "pat": _account("pat", amr=["pwd"]),  # a password only
    "otto": _account("otto", amr=["pwd", "otp"]),  # two factors (RFC 8176)
    "max": _account("max", amr=["mfa"]),  # "mfa" outright
    "ada": _account("ada", amr=["pwd"], acr=PAPE_MFA),  # an MFA acr
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ALLOW_HTTP_LOOPBACK": True}


def set_policy(org: Organization, **values: Any) -> None:
    set_org_policy(system_actor(), org, values)
    db.session.commit()


def count(model: type) -> int:
    db.session.rollback()  # read what the requests committed
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def only_session() -> Session:
    db.session.rollback()
    return db.session.scalars(select(Session)).one()


def assert_policy_refused(response: TestResponse, message: str) -> None:
    """403 ``policy_violation``, no session cookie; the page says which rule refused."""
    assert_refused(response, "policy_violation")
    assert message in response.text


def assert_admitted(client: FlaskClient) -> None:
    """The new session is accepted by its org under the same policy (the SESSION checks)."""
    me = client.get("/api/v1/me")
    assert me.status_code == 200, me.text


# --- OIDC ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oidc_idp() -> Iterator[OidcIdp]:
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [CALLBACK]}
    with OidcIdp(clients=[client], accounts=ACCOUNTS) as server:
        yield server


@pytest.fixture
def oidc_connection(app: Flask, oidc_idp: OidcIdp, monkeypatch: pytest.MonkeyPatch) -> Connection:
    return acme_connection(oidc_idp, monkeypatch)


def org_of(connection: Connection) -> Organization:
    org = db.session.get(Organization, connection.org_id)
    assert org is not None
    return org


def oidc_login(client: FlaskClient, idp: OidcIdp, login: str) -> TestResponse:
    """Begin at Gatehouse, sign in at the IdP as ``login``, hand its answer to the callback."""
    browser = Browser([idp.base_url])
    page = browser.get(begin(client))
    assert page.status == 200, page.text
    done = browser.submit_form(page, {"login": login, "password": PASSWORD})
    assert done.location is not None and done.location.startswith(CALLBACK + "?"), done.text
    return callback(client, done.redirect_params())


def test_oidc_asks_for_mfa_only_when_the_org_requires_it(
    client: FlaskClient, oidc_connection: Connection
) -> None:
    assert "acr_values" not in url_params(begin(client))
    set_policy(org_of(oidc_connection), mfa_required=True)
    assert url_params(begin(client))["acr_values"] == PAPE_MFA


def test_the_workspace_names_what_means_mfa_and_an_admin_what_to_ask_for(
    client: FlaskClient, oidc_connection: Connection
) -> None:
    org = org_of(oidc_connection)
    set_policy(org, mfa_required=True)
    url = f"/api/v1/orgs/{org.slug}/connections/{oidc_connection.id}"
    workspace_key, admin_key = auth(make_key()), auth(make_key(org, Role.ADMIN))
    asked = client.patch(url, json={"mfa_request": ["urn:example:loa:3"]}, headers=admin_key)
    assert asked.status_code == 200, asked.text
    assert url_params(begin(client))["acr_values"] == "urn:example:loa:3"
    named = client.patch(url, json={"mfa_values": ["urn:example:loa:3"]}, headers=workspace_key)
    assert named.status_code == 200, named.text
    db.session.expire_all()
    changed = db.session.get(Connection, oidc_connection.id)
    assert asserts_mfa(changed, ["pwd"], "urn:example:loa:3")
    too_long = client.patch(url, json={"mfa_values": ["x" * 201]}, headers=workspace_key)
    assert too_long.status_code == 400 and too_long.json["error"] == "validation_error"
    none = client.patch(url, json={"mfa_request": []}, headers=admin_key)
    assert none.status_code == 200
    assert "acr_values" not in url_params(begin(client))


def test_an_org_key_cannot_redefine_what_counts_as_mfa(
    client: FlaskClient, oidc_connection: Connection
) -> None:
    org = org_of(oidc_connection)
    set_workspace_policy(system_actor(), workspace(), {"mfa_required": True})
    db.session.commit()
    url = f"/api/v1/orgs/{org.slug}/connections/{oidc_connection.id}"
    # A password-only sign-in reported as "urn:example:password" would then count as MFA.
    body = {"mfa_values": ["urn:example:password"]}
    for role in (Role.ADMIN, Role.OWNER):
        response = client.patch(url, json=body, headers=auth(make_key(org, role)))
        assert response.status_code == 403, response.text
        assert response.json["error"] == "forbidden"
        assert "workspace authority" in response.json["message"]
    db.session.expire_all()
    kept = db.session.get(Connection, oidc_connection.id)
    assert "mfa_values" not in kept.settings
    assert not asserts_mfa(kept, ["pwd"], "urn:example:password")


def test_oidc_password_only_is_refused_when_mfa_is_required(
    client: FlaskClient, oidc_idp: OidcIdp, oidc_connection: Connection
) -> None:
    set_policy(org_of(oidc_connection), mfa_required=True)
    response = oidc_login(client, oidc_idp, "pat")
    assert_policy_refused(response, "multi-factor")
    assert count(Session) == 0
    assert count(Membership) == 0
    assert count(ExternalIdentity) == 0
    assert count(User) == 0


@pytest.mark.parametrize("login", ["otto", "max", "ada"])
def test_oidc_mfa_sign_in_is_accepted_and_remembered(
    client: FlaskClient, oidc_idp: OidcIdp, oidc_connection: Connection, login: str
) -> None:
    set_policy(org_of(oidc_connection), mfa_required=True)
    response = oidc_login(client, oidc_idp, login)
    assert response.status_code == 303, response.text
    session = only_session()
    assert session.mfa is True
    claims = ACCOUNTS[login]["claims"]
    assert list(session.amr) == claims["amr"]  # what the IdP's ID token really said
    assert session.acr == claims.get("acr")
    membership = db.session.scalars(select(Membership)).one()
    assert membership.source is MembershipSource.JIT
    assert_admitted(client)


def test_oidc_password_only_signs_in_without_mfa_when_not_required(
    client: FlaskClient, oidc_idp: OidcIdp, oidc_connection: Connection
) -> None:
    """The control for the refusal above: the policy, not the account, refuses it."""
    assert oidc_login(client, oidc_idp, "pat").status_code == 303
    assert only_session().mfa is False


def test_oidc_jit_refused_by_workspace_baseline_but_members_sign_in(
    client: FlaskClient, oidc_idp: OidcIdp, oidc_connection: Connection
) -> None:
    set_workspace_policy(system_actor(), workspace(), {"jit_provisioning": False})
    db.session.commit()

    assert_policy_refused(oidc_login(client, oidc_idp, "otto"), "first sign-in")
    assert count(Membership) == 0
    assert count(Session) == 0
    assert count(User) == 0

    # The org vouches for its IdP's addresses (its verified domain): the member signs in.
    make_verified_domain(org_of(oidc_connection), "example.com")
    member = make_member(org_of(oidc_connection), "otto@example.com")
    response = oidc_login(client, oidc_idp, "otto")
    assert response.status_code == 303, response.text
    assert only_session().user_id == member.user_id
    assert count(Membership) == 1
    assert_admitted(client)


def test_oidc_sso_required_is_met_by_the_orgs_own_connection(
    client: FlaskClient, oidc_idp: OidcIdp, oidc_connection: Connection
) -> None:
    set_policy(org_of(oidc_connection), sso_required=True)
    response = oidc_login(client, oidc_idp, "pat")
    assert response.status_code == 303, response.text
    assert count(Session) == 1
    assert_admitted(client)


# --- SAML ---------------------------------------------------------------------------------------


@contextmanager
def saml_idp(
    org: Organization, authn_context: str | None = None, **options: Any
) -> Iterator[tuple[Connection, SamlIdp]]:
    """A SimpleSAMLphp IdP asserting ``authn_context``, and the org's connection to it."""
    connection, keys = sf.new_saml_connection(org, "Acme IdP")
    sps = [sf.sp_entry(connection, keys)]
    with SamlIdp(sps=sps, users={"bob": BOB}, authn_context=authn_context) as idp:
        sf.configure(org, connection, keys, idp, **options)
        yield connection, idp


def post_acs(client: FlaskClient, connection: Connection, fields: dict[str, str]) -> TestResponse:
    return client.post(sf.acs_path(connection), data=fields)


def asserted_context(fields: dict[str, str]) -> str:
    """The AuthnContextClassRef in the IdP's response (to show what the IdP really said)."""
    statement = "saml:AuthnStatement/saml:AuthnContext/saml:AuthnContextClassRef"
    return str(sf.one(sf.assertion_of(sf.decode(fields)), statement).text)


def authn_request(client: FlaskClient, connection: Connection) -> etree._Element:
    """The AuthnRequest Gatehouse redirects to the IdP (SAML bindings §3.4.4.1: DEFLATE)."""
    start = client.get(f"/sso/saml/{connection.id}/login")
    assert start.status_code == 302, start.text
    (encoded,) = parse_qs(urlsplit(start.headers["Location"]).query)["SAMLRequest"]
    xml = zlib.decompress(base64.b64decode(encoded), -zlib.MAX_WBITS)
    return etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))


def requested_contexts(request: etree._Element) -> list[str] | None:
    found = request.xpath("samlp:RequestedAuthnContext", namespaces=sf.NS)
    if not found:
        return None
    assert found[0].get("Comparison") == "exact"
    return [str(r.text) for r in found[0].xpath("saml:AuthnContextClassRef", namespaces=sf.NS)]


def test_saml_requests_mfa_context_only_when_the_org_requires_it(
    client: FlaskClient, app: Flask
) -> None:
    org = make_org("acme")
    with saml_idp(org) as (connection, _idp):
        assert requested_contexts(authn_request(client, connection)) is None
        set_policy(org, mfa_required=True)
        assert requested_contexts(authn_request(client, connection)) == [REFEDS_MFA]


def test_saml_password_context_is_refused_when_mfa_is_required(
    client: FlaskClient, app: Flask
) -> None:
    org = make_org("acme")
    set_policy(org, mfa_required=True)
    with saml_idp(org, PASSWORD_PROTECTED) as (connection, idp):
        fields = sf.idp_login(client, connection, idp)
    assert asserted_context(fields) == PASSWORD_PROTECTED
    assert_policy_refused(post_acs(client, connection, fields), "multi-factor")
    assert count(Session) == 0
    assert count(Membership) == 0


def test_saml_refeds_mfa_context_signs_in_with_mfa(client: FlaskClient, app: Flask) -> None:
    org = make_org("acme")
    set_policy(org, mfa_required=True)
    with saml_idp(org, REFEDS_MFA) as (connection, idp):
        fields = sf.idp_login(client, connection, idp)
    assert asserted_context(fields) == REFEDS_MFA
    response = post_acs(client, connection, fields)
    assert response.status_code == 303, response.text
    session = only_session()
    assert session.mfa is True
    assert session.acr == REFEDS_MFA
    assert_admitted(client)


def test_saml_password_context_signs_in_without_mfa_when_not_required(
    client: FlaskClient, app: Flask
) -> None:
    """The control for the refusal above: the policy, not the response, refuses it."""
    org = make_org("acme")
    with saml_idp(org, PASSWORD_PROTECTED) as (connection, idp):
        fields = sf.idp_login(client, connection, idp)
    assert post_acs(client, connection, fields).status_code == 303
    assert only_session().mfa is False


def idp_initiated_login(idp: SamlIdp, connection: Connection, relay_state: str) -> dict[str, str]:
    """Bob starts at the IdP (SimpleSAMLphp's ``spentityid``): the unsolicited response."""
    browser = Browser([idp.base_url])
    page = browser.get(
        idp.sso_url, {"spentityid": saml.sp_entity_id(connection), "RelayState": relay_state}
    )
    assert page.status == 200, idp.log()[-2000:]
    done = browser.submit_form(page, {"username": "bob", "password": BOB["password"]})
    action, fields = browser.auto_post(done)
    assert action == saml.acs_url(connection)
    assert sf.decode(fields).get("InResponseTo") is None  # really unsolicited
    return fields


def test_saml_idp_initiated_login_follows_the_org_policy(client: FlaskClient, app: Flask) -> None:
    org = make_org("acme")
    set_policy(org, idp_initiated_login=False)
    with saml_idp(org, allow_idp_initiated=True) as (connection, idp):
        response = idp_initiated_login(idp, connection, "/welcome")
        refused = post_acs(client, connection, response)
        assert_policy_refused(refused, "started at the identity provider")
        assert count(Session) == 0
        assert count(Membership) == 0

        set_policy(org, idp_initiated_login=True)
        # The refused response was used up: it does not pass now that the policy allows it.
        replayed = post_acs(client, connection, response)
        assert replayed.headers["X-Gatehouse-Error"] == "assertion_replayed"
        accepted = post_acs(client, connection, idp_initiated_login(idp, connection, "/welcome"))
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["Location"] == "/welcome"
    assert count(Session) == 1
    assert_admitted(client)


def test_saml_sso_required_is_met_by_the_orgs_own_connection(
    client: FlaskClient, app: Flask
) -> None:
    org = make_org("acme")
    set_policy(org, sso_required=True)
    with saml_idp(org) as (connection, idp):
        fields = sf.idp_login(client, connection, idp)
    response = post_acs(client, connection, fields)
    assert response.status_code == 303, response.text
    assert count(Session) == 1
    assert_admitted(client)
