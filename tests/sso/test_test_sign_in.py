"""Test sign-ins against the real SimpleSAMLphp: nobody is signed in, each check of the IdP's
answer is kept (expected against received, never a secret nor the raw assertion), a failing
check is named exactly, and a test's answer never completes a login."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from lxml import etree

from idp.actors import system_actor
from idp.connections.models import ConnectionTest
from idp.connections.services import update_connection
from idp.db import db
from idp.sso import saml, testing
from tests.peers import Browser, self_signed_cert
from tests.sso import saml_fixtures as sf
from tests.sso.test_saml import (  # noqa: F401 - fixtures shared with the SAML tests
    CONDITIONS,
    Env,
    _resigned,
    _set,
    env,
    settings_overrides,
)


def answer_to_test(env: Env) -> tuple[ConnectionTest, dict[str, str]]:  # noqa: F811
    """Start a test sign-in, log in at the IdP, and return the fields it auto-posts."""
    test, url = testing.start_test(
        system_actor(), env.org, env.connection, lambda test_id: f"/results/{test_id}"
    )
    db.session.commit()
    browser = Browser([env.idp.base_url])
    page = browser.get(url)
    done = browser.submit_form(page, {"username": "bob", "password": "bob-password"})
    action, fields = browser.auto_post(done)
    assert action == saml.acs_url(env.connection)
    return test, fields


def checks_of(test: ConnectionTest) -> dict[str, dict[str, Any]]:
    db.session.refresh(test)
    return {c["key"]: c for c in test.checks}


def test_a_test_sign_in_passes_and_signs_nobody_in(client: FlaskClient, env: Env) -> None:  # noqa: F811
    update_connection(system_actor(), env.org, env.connection, enabled=False)  # not on yet
    db.session.commit()
    test, fields = answer_to_test(env)
    answered = client.post(sf.acs_path(env.connection), data=fields)
    assert answered.status_code == 303 and answered.headers["Location"] == f"/results/{test.id}"
    assert "gatehouse_session" not in answered.headers.get("Set-Cookie", "")
    assert sf.session_count() == 0
    checks = checks_of(test)
    assert test.passed is True, checks
    assert all(c["passed"] is not False for c in checks.values())
    assert checks["email"]["received"] == "bob@example.com"
    assert checks["audience"]["received"] == [saml.sp_entity_id(env.connection)]
    assert checks["clock"]["passed"] and checks["clock"]["received"].endswith("seconds")
    kept = json.dumps(test.checks)
    assert "SignatureValue" not in kept and "Assertion" not in kept and "PRIVATE" not in kept
    assert testing.has_passed_test(env.connection)
    # The same answer again: the test is finished, so it is a login's answer now -- refused.
    again = client.post(sf.acs_path(env.connection), data=fields)
    assert again.status_code >= 400 and sf.session_count() == 0


def test_a_wrong_audience_is_named_with_what_was_expected_and_received(
    client: FlaskClient,
    env: Env,  # noqa: F811
) -> None:
    test, fields = answer_to_test(env)
    wrong = _set(
        f"{CONDITIONS}/saml:AudienceRestriction/saml:Audience", None, "https://typo.example"
    )
    client.post(sf.acs_path(env.connection), data=_resigned(env, fields, wrong))
    checks = checks_of(test)
    assert test.passed is False
    assert checks["audience"]["passed"] is False
    assert checks["audience"]["expected"] == saml.sp_entity_id(env.connection)
    assert checks["audience"]["received"] == ["https://typo.example"]
    failed = [key for key, c in checks.items() if c["passed"] is False]
    assert failed == ["audience"]
    assert not testing.has_passed_test(env.connection)


def test_a_forged_signature_is_named(client: FlaskClient, env: Env) -> None:  # noqa: F811
    test, fields = answer_to_test(env)
    root = sf.decode(fields)
    sf.sign_assertion(root, *sf_keys())
    client.post(sf.acs_path(env.connection), data={**fields, "SAMLResponse": sf.encode(root)})
    checks = checks_of(test)
    assert test.passed is False and checks["signature"]["passed"] is False


def sf_keys() -> tuple[str, str]:
    cert, key = self_signed_cert("Not the IdP")
    return key, cert


def test_an_unreadable_answer_is_one_failed_line(client: FlaskClient, env: Env) -> None:  # noqa: F811
    test, fields = answer_to_test(env)
    root = sf.decode(fields)
    raw = etree.tostring(root).replace(b"<saml:Issuer", b"<!-- x --><saml:Issuer", 1)
    client.post(sf.acs_path(env.connection), data={**fields, "SAMLResponse": sf.encode(raw)})
    assert checks_of(test) == {
        "readable": {
            "key": "readable",
            "label": "The response can be read",
            "passed": False,
            "expected": None,
            "received": None,
        }
    }


def test_the_trace_names_the_attributes_sent_never_their_values(
    client: FlaskClient,
    env: Env,  # noqa: F811
) -> None:
    test, fields = answer_to_test(env)
    client.post(sf.acs_path(env.connection), data=fields)
    sent = checks_of(test)["attributes"]
    assert sent["passed"] is None and "email" in sent["received"]
    assert "bob@example.com" not in json.dumps(sent)
