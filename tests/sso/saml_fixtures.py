"""Helpers for the SAML tests: a connection wired to a real SimpleSAMLphp IdP, a login driven
through it, and the XML surgery an attacker would do to a real signed response."""

from __future__ import annotations

import base64
import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.connections.models import Connection, ConnectionKind
from idp.connections.services import create_connection, update_connection
from idp.db import db
from idp.orgs.models import Organization
from idp.sessions.models import Session
from idp.sso import saml
from tests.peers import Browser, SamlIdp, SamlSp

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}


@dataclass
class SpKeys:
    cert_pem: str
    key_pem: str


def new_saml_connection(org: Organization, name: str = "Test IdP") -> tuple[Connection, SpKeys]:
    """A SAML connection not yet pointed at an IdP (its id is needed for the IdP's SP entry)."""
    connection = create_connection(
        system_actor(), org, kind=ConnectionKind.SAML, name=name, settings={}, secret=None
    )
    db.session.commit()
    cert, key = saml.new_sp_keypair()
    return connection, SpKeys(cert, key)


def sp_entry(connection: Connection, keys: SpKeys) -> SamlSp:
    """What the IdP is told about Gatehouse (entity id, ACS from the issuer, signing cert)."""
    return SamlSp(saml.sp_entity_id(connection), saml.acs_url(connection), cert_pem=keys.cert_pem)


def configure(
    org: Organization, connection: Connection, keys: SpKeys, idp: SamlIdp, **options: Any
) -> Connection:
    """Point the connection at the running IdP through its metadata URL."""
    settings, key = saml.build_settings(
        metadata_url=idp.metadata_url,
        sp_cert_pem=keys.cert_pem,
        sp_key_pem=keys.key_pem,
        **options,
    )
    update_connection(system_actor(), org, connection, settings=settings, secret=key)
    db.session.commit()
    return connection


def acs_path(connection: Connection) -> str:
    return f"/sso/saml/{connection.id}/acs"


def idp_login(
    client: FlaskClient,
    connection: Connection,
    idp: SamlIdp,
    *,
    username: str = "bob",
    password: str = "bob-password",  # noqa: S107 - the test IdP's throwaway user
    next_url: str | None = None,
) -> dict[str, str]:
    """Begin at Gatehouse, log in at the IdP, return the fields it auto-posts to the ACS."""
    query = {"next": next_url} if next_url else {}
    start = client.get(f"/sso/saml/{connection.id}/login", query_string=query)
    assert start.status_code == 302, start.get_data(as_text=True)
    browser = Browser([idp.base_url])
    page = browser.get(start.headers["Location"])
    assert page.status == 200, idp.log()[-2000:]
    done = browser.submit_form(page, {"username": username, "password": password})
    action, fields = browser.auto_post(done)
    assert action == saml.acs_url(connection)
    return fields


def session_count() -> int:
    db.session.rollback()  # read what is committed now
    return db.session.scalar(select(func.count()).select_from(Session)) or 0


# --- XML surgery --------------------------------------------------------------------------------


def decode(fields: dict[str, str]) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(base64.b64decode(fields["SAMLResponse"]), parser)


def encode(root: etree._Element | bytes) -> str:
    raw = root if isinstance(root, bytes) else etree.tostring(root)
    return base64.b64encode(raw).decode()


def one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert len(found) == 1, (path, len(found))
    return found[0]


def assertion_of(root: etree._Element) -> etree._Element:
    return one(root, "/samlp:Response/saml:Assertion")


def strip_signature(element: etree._Element) -> etree._Element:
    """Remove the element's own (enveloped) signature."""
    for signature in element.findall("ds:Signature", NS):
        element.remove(signature)
    return element


def sign_assertion(
    root: etree._Element,
    key_pem: str,
    cert_pem: str,
    *,
    algorithm: str = C.RSA_SHA256,
    digest: str = C.SHA256,
) -> etree._Element:
    """Drop both signatures and sign the (edited) assertion again with the given key."""
    strip_signature(root)
    assertion = strip_signature(assertion_of(root))
    signed = OneLogin_Saml2_Utils.add_sign(
        etree.tostring(assertion),
        key_pem,
        cert_pem,
        sign_algorithm=algorithm,
        digest_algorithm=digest,
    )
    root.replace(assertion, etree.fromstring(signed))
    return root


def make_evil(assertion: etree._Element, name_id: str = "admin@acme.example") -> etree._Element:
    """A clone of the assertion naming someone else."""
    evil = copy.deepcopy(assertion)
    one(evil, "saml:Subject/saml:NameID").text = name_id
    for value in evil.xpath(
        "saml:AttributeStatement/saml:Attribute[@Name='email']/saml:AttributeValue", namespaces=NS
    ):
        value.text = name_id
    return evil


def impersonate(root: etree._Element, name_id: str = "admin@acme.example") -> etree._Element:
    """The response with its assertion naming someone else (signatures left as they were)."""
    assertion = assertion_of(root)
    root.replace(assertion, make_evil(assertion, name_id))
    return root


def _new_id(element: etree._Element) -> etree._Element:
    element.set("ID", "_evil" + secrets.token_hex(16))
    return element


def xsw1(root: etree._Element) -> etree._Element:
    """Evil response (new ID) carrying the original signed response inside its Signature."""
    original = copy.deepcopy(root)
    evil = _new_id(copy.deepcopy(root))
    assertion = assertion_of(evil)
    evil.replace(assertion, strip_signature(make_evil(assertion)))
    signature = one(evil, "ds:Signature")
    signature.append(strip_signature(original))
    return evil


def xsw2(root: etree._Element) -> etree._Element:
    """Like XSW1, the original response placed before the signature as a detached sibling."""
    original = copy.deepcopy(root)
    evil = _new_id(copy.deepcopy(root))
    assertion = assertion_of(evil)
    evil.replace(assertion, strip_signature(make_evil(assertion)))
    signature = one(evil, "ds:Signature")
    signature.addprevious(strip_signature(original))
    return evil


def xsw3(root: etree._Element) -> etree._Element:
    """An evil unsigned assertion (new ID) before the original signed one."""
    strip_signature(root)
    assertion = assertion_of(root)
    assertion.addprevious(_new_id(strip_signature(make_evil(assertion))))
    return root


def xsw3_same_id(root: etree._Element) -> etree._Element:
    """An evil unsigned assertion with the original's ID, before the original."""
    strip_signature(root)
    assertion = assertion_of(root)
    assertion.addprevious(strip_signature(make_evil(assertion)))
    return root


def xsw4(root: etree._Element) -> etree._Element:
    """The evil assertion wraps the original signed one as its child."""
    strip_signature(root)
    assertion = assertion_of(root)
    evil = _new_id(strip_signature(make_evil(assertion)))
    root.replace(assertion, evil)
    evil.append(assertion)
    return root


def xsw5(root: etree._Element) -> etree._Element:
    """The evil assertion keeps the copied signature; the original, unsigned, goes last."""
    strip_signature(root)
    assertion = assertion_of(root)
    evil = _new_id(make_evil(assertion))
    original = strip_signature(copy.deepcopy(assertion))
    root.replace(assertion, evil)
    root.append(original)
    return root


def xsw6(root: etree._Element) -> etree._Element:
    """The evil assertion keeps the signature; the original sits inside that signature."""
    strip_signature(root)
    assertion = assertion_of(root)
    evil = _new_id(make_evil(assertion))
    original = strip_signature(copy.deepcopy(assertion))
    one(evil, "ds:Signature").append(original)
    root.replace(assertion, evil)
    return root


def xsw7(root: etree._Element) -> etree._Element:
    """The original signed assertion hidden in an Extensions element; the evil one in view."""
    strip_signature(root)
    assertion = assertion_of(root)
    evil = strip_signature(make_evil(assertion))
    extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
    root.replace(assertion, evil)
    extensions.append(assertion)
    one(root, "saml:Issuer").addnext(extensions)
    return root


def xsw8(root: etree._Element) -> etree._Element:
    """The evil assertion keeps the signature; the original sits in a ds:Object inside it."""
    strip_signature(root)
    assertion = assertion_of(root)
    evil = make_evil(assertion)
    original = strip_signature(copy.deepcopy(assertion))
    obj = etree.SubElement(one(evil, "ds:Signature"), f"{{{NS['ds']}}}Object")
    obj.append(original)
    _new_id(evil)
    root.replace(assertion, evil)
    return root


def tampered(root: etree._Element) -> etree._Element:
    """The signed assertion edited in place (same ID, same signature): schema-valid."""
    strip_signature(root)
    return impersonate(root)


def reference_elsewhere(root: etree._Element) -> etree._Element:
    """An evil assertion (new ID) carrying the original's signature, the original gone."""
    strip_signature(root)
    assertion = assertion_of(root)
    root.replace(assertion, _new_id(make_evil(assertion)))
    return root


XSW: dict[str, Callable[[etree._Element], etree._Element]] = {
    "xsw1": xsw1,
    "xsw2": xsw2,
    "xsw3": xsw3,
    "xsw3_same_id": xsw3_same_id,
    "xsw4": xsw4,
    "xsw5": xsw5,
    "xsw6": xsw6,
    "xsw7": xsw7,
    "xsw8": xsw8,
    "tampered": tampered,
    "reference_elsewhere": reference_elsewhere,
}


def path_of(url: str) -> str:
    return urlsplit(url).path
