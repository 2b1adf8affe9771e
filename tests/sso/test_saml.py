"""SAML SP end to end against a real SimpleSAMLphp IdP on loopback, and the attacks on it."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C

from idp import create_app
from idp.actors import system_actor
from idp.connections.models import Connection
from idp.connections.services import update_connection
from idp.db import db
from idp.errors import BadRequest
from idp.orgs import services as orgs
from idp.orgs.models import Organization
from idp.orgs.role_mappings import set_role_mapping
from idp.orgs.roles import Role
from idp.sso import saml
from idp.sso.models import SeenAssertion
from idp.sso.views_saml import purge_seen_assertions
from idp.users.models import User
from tests.builders import make_member, make_org
from tests.peers import SamlIdp, self_signed_cert
from tests.sso import saml_fixtures as sf

# python3-saml still calls datetime.utcnow() (deprecated from Python 3.12).
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utc:DeprecationWarning")

BOB = {
    "password": "bob-password",
    "attributes": {
        "email": "bob@example.com",
        "displayName": "Bob Builder",
        "groups": ["engineering", "on-call"],
    },
}
# Registered at the IdP with an email that *starts* with the victim's.
MALLORY = {
    "password": "mallory-password",
    "attributes": {"email": "admin@acme.example.evil.example", "displayName": "Mallory"},
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ALLOW_HTTP_LOOPBACK": True}


@dataclass
class Env:
    org: Organization
    connection: Connection
    idp: SamlIdp
    other_org: Organization
    other: Connection


@pytest.fixture
def env(app: Flask) -> Iterator[Env]:
    org = make_org("acme")
    other_org = make_org("globex")
    connection, keys = sf.new_saml_connection(org, "Acme IdP")
    other, other_keys = sf.new_saml_connection(other_org, "Globex IdP")
    sps = [sf.sp_entry(connection, keys), sf.sp_entry(other, other_keys)]
    with SamlIdp(sps=sps, users={"bob": BOB, "mallory": MALLORY}) as idp:
        sf.configure(org, connection, keys, idp)
        sf.configure(other_org, other, other_keys, idp)
        yield Env(org, connection, idp, other_org, other)


def refused(response: Any, code: str) -> None:
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert response.headers.get("X-Gatehouse-Error") == code, response.get_data(as_text=True)
    assert "gatehouse_session" not in response.headers.get("Set-Cookie", "")


def post_acs(client: FlaskClient, connection: Connection, fields: dict[str, str]) -> Any:
    return client.post(sf.acs_path(connection), data=fields)


# --- the happy path -----------------------------------------------------------------------------


def test_metadata_names_entity_id_acs_and_certificate(client: FlaskClient, env: Env) -> None:
    response = client.get(f"/sso/saml/{env.connection.id}/metadata")
    assert response.status_code == 200
    assert response.content_type.startswith("application/samlmetadata+xml")
    xml = response.get_data(as_text=True)
    assert f'entityID="http://gatehouse.test/sso/saml/{env.connection.id}/metadata"' in xml
    assert f'Location="http://gatehouse.test/sso/saml/{env.connection.id}/acs"' in xml
    assert saml.certificate_body(env.connection.settings["sp_cert"]) in xml
    assert "PRIVATE" not in xml


def test_login_redirect_is_signed_sha256(client: FlaskClient, env: Env) -> None:
    response = client.get(f"/sso/saml/{env.connection.id}/login", base_url="http://evil.test")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(env.idp.sso_url + "?SAMLRequest=")
    assert "Signature=" in location
    assert "SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256" in location
    assert "evil.test" not in location


def test_sp_initiated_login_signs_in_jit_member_with_mapped_role(
    client: FlaskClient, env: Env
) -> None:
    set_role_mapping(system_actor(), env.org, group="engineering", role=Role.ADMIN)
    db.session.commit()
    before = sf.session_count()

    fields = sf.idp_login(client, env.connection, env.idp, next_url="/welcome")
    response = post_acs(client, env.connection, fields)

    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/welcome")
    assert "gatehouse_session=" in response.headers["Set-Cookie"]
    assert sf.session_count() == before + 1
    user = db.session.scalar(db.select(User).where(User.email == "bob@example.com"))
    assert user is not None and user.name == "Bob Builder"
    membership = orgs.find_membership(env.org.id, user.id)
    assert membership is not None
    assert membership.role == Role.ADMIN
    assert sorted(membership.sso_groups) == ["engineering", "on-call"]
    me = client.get("/api/v1/me")
    assert me.status_code == 200


def test_post_binding_authn_request(client: FlaskClient, env: Env) -> None:
    settings = {**env.connection.settings, "authn_request_binding": "post"}
    update_connection(system_actor(), env.org, env.connection, settings=settings)
    db.session.commit()
    page = client.get(f"/sso/saml/{env.connection.id}/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'action="{env.idp.sso_url}"' in html
    doc = etree.HTML(html)
    saml_request = doc.xpath("//input[@name='SAMLRequest']/@value")[0]
    xml = base64.b64decode(saml_request)
    assert b"<ds:Signature" in xml and C.RSA_SHA256.encode() in xml

    browser = sf.Browser([env.idp.base_url])
    login = browser.post(env.idp.sso_url, {"SAMLRequest": saml_request})
    done = browser.submit_form(login, {"username": "bob", "password": BOB["password"]})
    _action, fields = browser.auto_post(done)
    assert post_acs(client, env.connection, fields).status_code == 303


# --- replay and binding to the browser ----------------------------------------------------------


def test_replayed_response_is_refused(client: FlaskClient, env: Env) -> None:
    fields = sf.idp_login(client, env.connection, env.idp)
    assert post_acs(client, env.connection, fields).status_code == 303
    count = sf.session_count()
    refused(post_acs(client, env.connection, fields), "assertion_replayed")
    assert sf.session_count() == count


def test_replay_to_another_process_is_refused(app: Flask, client: FlaskClient, env: Env) -> None:
    fields = sf.idp_login(client, env.connection, env.idp)
    assert post_acs(client, env.connection, fields).status_code == 303
    count = sf.session_count()
    second = create_app(app.extensions["gatehouse.settings"])
    try:
        refused(
            second.test_client().post(sf.acs_path(env.connection), data=fields),
            "assertion_replayed",
        )
    finally:
        with second.app_context():
            db.engine.dispose()
    assert sf.session_count() == count


def test_response_posted_by_another_browser_is_refused(
    app: Flask, client: FlaskClient, env: Env
) -> None:
    fields = sf.idp_login(client, env.connection, env.idp)
    other = app.test_client()
    other.get(f"/sso/saml/{env.connection.id}/login")  # a login cookie of its own
    refused(post_acs(other, env.connection, fields), "invalid_state")
    assert sf.session_count() == 0
    # Refused there, the response still works for the browser that asked for it.
    assert post_acs(client, env.connection, fields).status_code == 303


def _resigned(env: Env, fields: dict[str, str], edit: Any) -> dict[str, str]:
    root = sf.decode(fields)
    edit(root)
    sf.sign_assertion(root, env.idp.key_pem, env.idp.cert_pem)
    return {**fields, "SAMLResponse": sf.encode(root)}


def _drop_in_response_to(root: etree._Element) -> None:
    del root.attrib["InResponseTo"]
    for data in root.xpath("//saml:SubjectConfirmationData", namespaces=sf.NS):
        del data.attrib["InResponseTo"]


def _set_in_response_to(root: etree._Element) -> None:
    root.set("InResponseTo", "_unknown0123456789")
    for data in root.xpath("//saml:SubjectConfirmationData", namespaces=sf.NS):
        data.set("InResponseTo", "_unknown0123456789")


def test_unsolicited_response_is_refused_unless_allowed(client: FlaskClient, env: Env) -> None:
    fields = _resigned(env, sf.idp_login(client, env.connection, env.idp), _drop_in_response_to)
    refused(post_acs(client, env.connection, fields), "unsolicited_response")
    assert sf.session_count() == 0

    settings = {**env.connection.settings, "allow_idp_initiated": True}
    update_connection(system_actor(), env.org, env.connection, settings=settings)
    db.session.commit()
    ok = post_acs(client, env.connection, {**fields, "RelayState": "https://evil.example/x"})
    assert ok.status_code == 303
    assert ok.headers["Location"] == "/"


def test_unknown_in_response_to_is_refused(client: FlaskClient, env: Env) -> None:
    fields = _resigned(env, sf.idp_login(client, env.connection, env.idp), _set_in_response_to)
    refused(post_acs(client, env.connection, fields), "invalid_state")
    assert sf.session_count() == 0


def test_response_stripped_of_in_response_to_but_signed_with_it_is_refused(
    client: FlaskClient, env: Env
) -> None:
    """The response element is not signed: dropping its InResponseTo must not make the
    assertion (which names the request) unsolicited."""
    fields = sf.idp_login(client, env.connection, env.idp)
    root = sf.decode(fields)
    sf.strip_signature(root)
    del root.attrib["InResponseTo"]
    refused(
        post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(root)}),
        "invalid_subject_confirmation",
    )


def test_response_for_one_org_posted_to_another_orgs_acs(client: FlaskClient, env: Env) -> None:
    fields = sf.idp_login(client, env.connection, env.idp)
    refused(post_acs(client, env.other, fields), "wrong_destination")
    assert sf.session_count() == 0


# --- signatures ---------------------------------------------------------------------------------

# python3-saml refuses every XSW shape before it reaches a signature check: the XSD (strict mode),
# one assertion per response and signed-element checks. Each is still a clean refusal.
# The last two are schema-valid and fail on the signature itself.
XSW_CODES = {
    **dict.fromkeys(sf.XSW, "invalid_saml_response"),
    "tampered": "invalid_signature",
    "reference_elsewhere": "invalid_signature",
}


@pytest.mark.parametrize("shape", sorted(sf.XSW))
def test_signature_wrapping_is_refused(client: FlaskClient, env: Env, shape: str) -> None:
    make_member(env.org, "admin@acme.example", Role.OWNER)
    fields = sf.idp_login(client, env.connection, env.idp)
    wrapped = sf.XSW[shape](sf.decode(fields))
    response = post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(wrapped)})
    refused(response, XSW_CODES[shape])
    assert sf.session_count() == 0


def test_nameid_comment_injection_is_refused(client: FlaskClient, env: Env) -> None:
    make_member(env.org, "admin@acme.example", Role.OWNER)
    fields = sf.idp_login(
        client, env.connection, env.idp, username="mallory", password=MALLORY["password"]
    )
    root = sf.decode(fields)
    name_id = sf.one(sf.assertion_of(root), "saml:Subject/saml:NameID")
    assert name_id.text == "admin@acme.example.evil.example"
    # Comments are outside the canonical form: both signatures stay valid.
    name_id.text = "admin@acme.example"
    comment = etree.Comment("")
    comment.tail = ".evil.example"
    name_id.append(comment)
    refused(
        post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(root)}),
        "invalid_saml_response",
    )
    assert sf.session_count() == 0


def test_nameid_comment_injection_resigned_by_attacker_is_refused(
    client: FlaskClient, env: Env
) -> None:
    fields = sf.idp_login(client, env.connection, env.idp)
    root = sf.decode(fields)
    cert, key = self_signed_cert("attacker")
    sf.sign_assertion(root, key, cert)
    name_id = sf.one(sf.assertion_of(root), "saml:Subject/saml:NameID")
    name_id.text = "admin@acme.example"
    name_id.append(etree.Comment("x"))
    refused(
        post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(root)}),
        "invalid_saml_response",
    )


def test_unsigned_assertion_is_refused(client: FlaskClient, env: Env) -> None:
    fields = sf.idp_login(client, env.connection, env.idp)
    root = sf.decode(fields)
    sf.strip_signature(root)
    sf.strip_signature(sf.assertion_of(root))
    refused(
        post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(root)}),
        "invalid_signature",
    )
    assert sf.session_count() == 0


def test_signed_response_with_unsigned_assertion_is_refused(client: FlaskClient, env: Env) -> None:
    """wantAssertionsSigned: a signed envelope does not stand in for a signed assertion."""
    fields = sf.idp_login(client, env.connection, env.idp)
    root = sf.decode(fields)
    sf.strip_signature(root)
    sf.strip_signature(sf.assertion_of(root))
    signed = saml.OneLogin_Saml2_Utils.add_sign(
        etree.tostring(root), env.idp.key_pem, env.idp.cert_pem
    )
    refused(
        post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(signed)}),
        "invalid_signature",
    )


def test_assertion_signed_by_another_key_is_refused(client: FlaskClient, env: Env) -> None:
    fields = sf.idp_login(client, env.connection, env.idp)
    root = sf.impersonate(sf.decode(fields))  # the NameID the attacker wants
    cert, key = self_signed_cert("attacker")
    sf.sign_assertion(root, key, cert)
    refused(
        post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(root)}),
        "invalid_signature",
    )
    assert sf.session_count() == 0


def test_sha1_signature_is_refused(client: FlaskClient, env: Env) -> None:
    fields = sf.idp_login(client, env.connection, env.idp)
    root = sf.decode(fields)
    sf.sign_assertion(root, env.idp.key_pem, env.idp.cert_pem, algorithm=C.RSA_SHA1, digest=C.SHA1)
    refused(
        post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(root)}),
        "deprecated_algorithm",
    )
    assert sf.session_count() == 0


def test_resigned_by_the_idp_key_is_accepted(client: FlaskClient, env: Env) -> None:
    """The control for the edits below: re-signing alone changes nothing."""
    fields = _resigned(env, sf.idp_login(client, env.connection, env.idp), lambda root: None)
    assert post_acs(client, env.connection, fields).status_code == 303


def test_second_idp_certificate_is_accepted(client: FlaskClient, env: Env) -> None:
    """Certificate rollover: any of the configured signing certificates verifies."""
    old_cert, _ = self_signed_cert("old idp cert")
    settings = {
        **env.connection.settings,
        "idp_certs": [saml.certificate_body(old_cert), *env.connection.settings["idp_certs"]],
    }
    update_connection(system_actor(), env.org, env.connection, settings=settings)
    db.session.commit()
    fields = sf.idp_login(client, env.connection, env.idp)
    assert post_acs(client, env.connection, fields).status_code == 303


# --- conditions ---------------------------------------------------------------------------------


def _set(path: str, attribute: str | None, value: str | None) -> Any:
    def edit(root: etree._Element) -> None:
        for node in root.xpath(path, namespaces=sf.NS):
            if value is None:
                node.getparent().remove(node)
            elif attribute is None:
                node.text = value
            else:
                node.set(attribute, value)

    return edit


PAST = "2020-01-01T00:00:00Z"
FUTURE = "2999-01-01T00:00:00Z"
CONDITIONS = "//saml:Assertion/saml:Conditions"


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (_set(f"{CONDITIONS}/saml:AudienceRestriction", None, None), "wrong_audience"),
        (
            _set(f"{CONDITIONS}/saml:AudienceRestriction/saml:Audience", None, "http://sp.evil"),
            "wrong_audience",
        ),
        (_set(CONDITIONS, "NotOnOrAfter", PAST), "assertion_expired"),
        (_set(CONDITIONS, "NotBefore", FUTURE), "assertion_not_yet_valid"),
        (
            _set("//saml:SubjectConfirmationData", "NotOnOrAfter", PAST),
            "invalid_subject_confirmation",
        ),
        (
            # python3-saml alone accepts a Recipient that merely contains the ACS URL.
            _set("//saml:SubjectConfirmationData", "Recipient", "{acs}/../evil"),
            "invalid_subject_confirmation",
        ),
        (
            # ... and a Destination that merely starts with it.
            _set("/samlp:Response", "Destination", "{acs}-evil"),
            "wrong_destination",
        ),
        (_set("/samlp:Response", "Destination", "http://gatehouse.test/"), "wrong_destination"),
        (_set("//saml:Assertion/saml:Issuer", None, "http://evil.idp/"), "wrong_issuer"),
    ],
    ids=[
        "no-audience",
        "wrong-audience",
        "expired",
        "not-yet-valid",
        "confirmation-expired",
        "wrong-recipient",
        "destination-prefix",
        "wrong-destination",
        "wrong-issuer",
    ],
)
def test_edited_conditions_are_refused(client: FlaskClient, env: Env, edit: Any, code: str) -> None:
    acs = saml.acs_url(env.connection)

    def apply(root: etree._Element) -> None:
        edit(root)
        for node in root.iter():
            for name, value in node.attrib.items():
                if "{acs}" in value:
                    node.set(name, value.replace("{acs}", acs))

    fields = _resigned(env, sf.idp_login(client, env.connection, env.idp), apply)
    refused(post_acs(client, env.connection, fields), code)
    assert sf.session_count() == 0


# --- hostile XML --------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0">&lol4;
</samlp:Response>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0">&xxe;
</samlp:Response>"""


@pytest.mark.parametrize(
    "payload",
    [
        base64.b64encode(BILLION_LAUGHS).decode(),
        base64.b64encode(EXTERNAL_ENTITY).decode(),
        base64.b64encode(b"<samlp:Response").decode(),
        base64.b64encode(b"\xff\xfe not xml").decode(),
        "not base64 at all!",
        "",
        "A" * (saml.MAX_RESPONSE + 4),
    ],
    ids=["billion-laughs", "external-entity", "truncated", "binary", "not-base64", "empty", "huge"],
)
def test_hostile_xml_is_a_clean_refusal(client: FlaskClient, env: Env, payload: str) -> None:
    client.get(f"/sso/saml/{env.connection.id}/login")
    response = post_acs(client, env.connection, {"SAMLResponse": payload})
    refused(response, "invalid_saml_response")
    assert response.status_code == 400
    assert sf.session_count() == 0


def test_unknown_connection_is_404(client: FlaskClient, app: Flask) -> None:
    response = client.post("/sso/saml/con_nope/acs", data={"SAMLResponse": "x"})
    assert response.status_code == 404
    assert response.headers["X-Gatehouse-Error"] == "connection_not_found"


# --- logs, housekeeping, settings ---------------------------------------------------------------


def test_logs_never_hold_the_response(
    client: FlaskClient, env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fields = sf.idp_login(client, env.connection, env.idp)
    root = sf.decode(fields)
    assertion_id = sf.assertion_of(root).get("ID")
    assert post_acs(client, env.connection, fields).status_code == 303
    refused(post_acs(client, env.connection, fields), "assertion_replayed")
    bad = sf.impersonate(root)
    post_acs(client, env.connection, {**fields, "SAMLResponse": sf.encode(bad)})
    text = caplog.text
    assert fields["SAMLResponse"][:40] not in text
    assert assertion_id not in text
    assert "bob@example.com" not in text
    assert "<saml" not in text


def test_expired_replay_cache_rows_are_purged(app: Flask, env: Env) -> None:
    db.session.add(
        SeenAssertion(
            connection_id=env.connection.id,
            assertion_id="_old",
            not_on_or_after=saml._time(PAST),
        )
    )
    db.session.add(
        SeenAssertion(
            connection_id=env.connection.id,
            assertion_id="_new",
            not_on_or_after=saml._time(FUTURE),
        )
    )
    db.session.commit()
    assert purge_seen_assertions() == 1
    db.session.commit()
    left = db.session.scalars(db.select(SeenAssertion.assertion_id)).all()
    assert left == ["_new"]


def test_build_settings_keeps_several_certificates(app: Flask) -> None:
    one, _ = self_signed_cert("one")
    two, _ = self_signed_cert("two")
    settings, key = saml.build_settings(
        idp_entity_id="https://idp.example/",
        sso_url="https://idp.example/sso",
        idp_certs=[one, two, one],
        preset="entra",
    )
    assert settings["idp_certs"] == [saml.certificate_body(one), saml.certificate_body(two)]
    assert settings["sp_entity_id"] is None
    assert "BEGIN PRIVATE KEY" in key and "PRIVATE" not in settings["sp_cert"]
    assert settings["attribute_map"] == saml.PRESETS["entra"]


@pytest.mark.parametrize(
    "url",
    ["http://idp.example/metadata", "http://10.0.0.1/metadata", "file:///etc/passwd"],
)
def test_metadata_url_must_be_https(app: Flask, url: str) -> None:
    with pytest.raises(BadRequest) as info:
        saml.build_settings(metadata_url=url)
    assert info.value.code == "insecure_metadata_url"


def test_entra_preset_maps_claims() -> None:
    claims = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
    assertion = saml.map_attributes(
        saml.PRESETS["entra"],
        "opaque-name-id",
        C.NAMEID_PERSISTENT,
        {
            f"{claims}/emailaddress": ["Ann@Contoso.example"],
            f"{claims}/givenname": ["Ann"],
            f"{claims}/surname": ["Lee"],
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["g-1", "g-2"],
            "http://schemas.microsoft.com/identity/claims/objectidentifier": ["oid-1"],
        },
    )
    assert assertion.email == "Ann@Contoso.example"
    assert assertion.name == "Ann Lee"
    assert list(assertion.groups) == ["g-1", "g-2"]
    assert assertion.external_id == "oid-1"
    assert assertion.subject == "opaque-name-id"


def test_xsd_is_compiled_once_per_thread() -> None:
    xml = b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>'
    first = saml.OneLogin_Saml2_XML.validate_xml(xml, "saml-schema-protocol-2.0.xsd")
    assert first == "invalid_xml"  # no ID, Version, IssueInstant, Status
    cached = dict(saml._schemas.by_url)
    assert any(url.endswith("saml-schema-protocol-2.0.xsd") for url in cached)
    saml.OneLogin_Saml2_XML.validate_xml(xml, "saml-schema-protocol-2.0.xsd")
    assert saml._schemas.by_url == cached


def test_concurrent_posts_of_one_response_sign_in_once(
    app: Flask, client: FlaskClient, env: Env
) -> None:
    """The replay cache and the single-use request id hold between parallel transactions."""
    fields = sf.idp_login(client, env.connection, env.idp)
    cookie = client.get_cookie("gatehouse_login", path="/sso/")
    assert cookie is not None
    path = sf.acs_path(env.connection)  # read here: the test's session is not for threads
    db.session.commit()
    workers = 4
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def work(index: int) -> None:
        with app.app_context():
            browser = app.test_client()
            browser.set_cookie("gatehouse_login", cookie.value, path="/sso/")
            barrier.wait(timeout=30)
            results[index] = browser.post(path, data=fields)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(303) == 1, statuses
    for response in results:
        if response.status_code != 303:
            assert response.headers["X-Gatehouse-Error"] in {
                "assertion_replayed",
                "invalid_state",
                "conflict",
            }
    assert sf.session_count() == 1
