"""The setup portal in a real browser: the operator makes a setup link; the customer's IT admin
opens it in a fresh browser (no account), picks their IdP, gives SimpleSAMLphp the SP's values
read off the page, brings back the IdP's metadata URL (a wrong one first: the error beside the
field, what was typed kept), switches the connection on, and a person signs in through it.
Then provisioning: a token shown once, a real SCIM client provisions a user over loopback, and
the page shows the IdP's first request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from playwright.sync_api import Browser, Page, expect
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Email, ScimProvider, User
from sqlalchemy import select

from idp.audit.models import AuditEvent
from idp.connections.models import Connection
from idp.db import db
from idp.orgs.models import Membership, Organization
from idp.orgs.roles import Role
from tests.browser import chromium, new_page, screenshot, serious_findings
from tests.builders import make_member, make_org, signed_in_cookie
from tests.peers import SamlIdp, SamlSp
from tests.proxies import free_port, serve_app
from tests.test_cli import ok

# Gatehouse and SimpleSAMLphp on one host (their ports differ): over plain http the login
# cookie is SameSite=Lax, which a browser sends with the IdP's form post only from the same
# site (over https it is SameSite=None; Secure, and any IdP host works).
HOST = "127.0.0.1"
ANN = {
    "ann": {
        "password": "ann-password",
        "attributes": {"email": "ann@acme.example", "displayName": "Ann Example"},
    }
}


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def issuer(port: int) -> str:
    return f"http://{HOST}:{port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def settings_overrides(issuer: str) -> dict[str, Any]:
    return {"ISSUER": issuer, "ALLOW_HTTP_LOOPBACK": True}


@pytest.fixture
def served(app: Flask, port: int) -> Iterator[None]:
    with serve_app(app, port):
        yield


def accessible(page: Any, seen: dict[str, list[Any]], name: str) -> None:
    """axe-core over the page as it stands: no serious or critical finding (and, for the
    docs, a screenshot)."""
    seen[page.url.split("?")[0] + f"#{len(seen)}"] = serious_findings(page)
    screenshot(page, name)


def run_test_sign_in(admin: Page) -> Page:
    """Run a test sign-in in the window it opens; that window ends on the trace."""
    with admin.context.expect_page() as opened:
        admin.get_by_role("link", name="Run a test sign-in").click()
    window = opened.value
    window.fill("input[name=username]", "ann")
    window.fill("input[name=password]", "ann-password")
    window.get_by_role("button", name="Login").click()
    expect(window.get_by_role("heading", level=1)).to_contain_text("Test sign-in through")
    return window


def failed_checks(trace: Page) -> list[str]:
    rows = trace.locator("tr[data-passed=no]")
    return [r.get_attribute("id").removeprefix("check-") for r in rows.all()]  # type: ignore[union-attr]


def test_the_it_admin_connects_saml_and_scim_through_a_setup_link(
    app: Flask, served: None, browser: Browser, runner: FlaskCliRunner, issuer: str
) -> None:
    started = time.monotonic()
    checked: dict[str, list[Any]] = {}
    make_org("acme", name="Acme")
    url = ok(
        runner, "setup-link", "create", "acme", "--intent", "sso", "--intent", "scim"
    ).stdout.strip()
    assert url.startswith(f"{issuer}/setup/")

    # The IT admin opens the link: the token leaves the address bar at once.
    admin = new_page(browser)
    admin.goto(url)
    expect(admin.get_by_role("heading", level=1)).to_have_text("Set up Acme")
    assert admin.url == f"{issuer}/setup"
    accessible(admin, checked, "setup-overview")
    admin.get_by_role("link", name="Connect an identity provider").click()
    accessible(admin, checked, "setup-choose-idp")
    admin.get_by_label("Another SAML 2.0 IdP").check()
    admin.get_by_role("button", name="Continue").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Connect Another SAML 2.0 IdP")
    entity_id = admin.locator("#entity-id").inner_text()
    acs_url = admin.locator("#acs-url").inner_text()
    assert acs_url.startswith(f"{issuer}/sso/saml/") and acs_url.endswith("/acs")
    expect(admin.locator("#connection-status")).to_have_text("Save your IdP's values first.")
    accessible(admin, checked, "setup-connection-draft")

    sp = SamlSp(entity_id, acs_url)
    with SamlIdp(sps=[sp], users=ANN, sign_response=False, sign_assertion=False) as unsigned:
        # A wrong URL first: the error beside the field, the value kept, nothing saved.
        wrong = unsigned.metadata_url.replace("/metadata", "/no-such-metadata")
        admin.get_by_label("IdP metadata URL").fill(wrong)
        admin.get_by_role("button", name="Save").click()
        expect(admin.locator("#metadata_url-error")).to_be_visible()
        expect(admin.get_by_label("IdP metadata URL")).to_have_value(wrong)
        accessible(admin, checked, "setup-connection-error")  # with an error shown
        connection = db.session.scalars(select(Connection)).one()
        assert connection.draft is True

        # An IdP that signs nothing: the test sign-in names exactly that check.
        admin.get_by_label("IdP metadata URL").fill(unsigned.metadata_url)
        admin.get_by_role("button", name="Save").click()
        expect(admin.get_by_role("status")).to_contain_text("Saved")
        expect(admin.locator("#connection-status")).to_have_text(
            "Run a test sign-in that passes first."
        )
        trace = run_test_sign_in(admin)
        expect(trace.locator("#test-outcome")).to_contain_text("Failed")
        assert failed_checks(trace) == ["signature"]
        accessible(trace, checked, "setup-test-failed")
        trace.close()

    with SamlIdp(sps=[sp], users=ANN) as idp:
        admin.reload()
        admin.get_by_label("IdP metadata URL").fill(idp.metadata_url)
        admin.get_by_role("button", name="Save").click()
        expect(admin.get_by_role("status")).to_contain_text("Saved")
        trace = run_test_sign_in(admin)
        expect(trace.locator("#test-outcome")).to_contain_text("Passed")
        assert failed_checks(trace) == []
        expect(trace.locator("#check-email")).to_contain_text("ann@acme.example")
        expect(trace.locator("#check-attributes")).to_contain_text("displayName, email")
        expect(trace.get_by_label("Email attribute names", exact=False)).to_have_value(
            "email, mail, urn:oid:0.9.2342.19200300.100.1.3, "
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
        )
        trace.close()
        admin.reload()
        admin.get_by_role("button", name="Switch on Another SAML 2.0 IdP").click()
        expect(admin.locator("#connection-status")).to_have_text("Another SAML 2.0 IdP is on.")

        # A person of Acme signs in through it.
        ann = new_page(browser)
        ann.goto(acs_url.replace("/acs", "/login"))
        ann.fill("input[name=username]", "ann")
        ann.fill("input[name=password]", "ann-password")
        ann.get_by_role("button", name="Login").click()
        expect(ann.locator("#signed-in")).to_have_text(
            "Signed in as ann@acme.example to Acme (member)."
        )

    # Provisioning: a token shown once, then the IdP's first request seen.
    admin.goto(f"{issuer}/setup/scim")
    base_url = admin.locator("#scim-base-url").inner_text()
    admin.get_by_role("button", name="Create a token").click()
    token = admin.locator("#scim-token").inner_text()
    expect(admin.locator("#scim-status")).to_contain_text("Waiting for your IdP's first request")
    accessible(admin, checked, "setup-scim")
    with httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        scim = SyncSCIMClient(http, provider=ScimProvider(models=[User]))
        scim.discover()
        scim.create(
            User(
                user_name="bob@acme.example", emails=[Email(value="bob@acme.example", primary=True)]
            )
        )
    admin.reload()
    expect(admin.locator("#scim-status")).to_contain_text("First request received")
    admin.reload()
    assert token not in admin.content()  # shown once
    admin.goto(f"{issuer}/setup/nothing-here")
    accessible(admin, checked, "setup-error-page")  # an error page

    db.session.expire_all()
    members = {m.email for m in db.session.scalars(select(Membership))}
    assert members == {"ann@acme.example", "bob@acme.example"}
    # Acme's owner sees them in the console: Ann signed in through SAML, Bob provisioned.
    owner = make_member(
        db.session.get(Organization, connection.org_id), "boss@acme.example", Role.OWNER
    )
    console = new_page(browser)
    console.context.add_cookies(
        [{"name": "gatehouse_session", "value": signed_in_cookie(owner), "url": issuer}]
    )
    console.goto(f"{issuer}/console/orgs/acme/members")
    table = console.get_by_role("table", name="Members")
    expect(table).to_contain_text("ann@acme.example")
    expect(table).to_contain_text("bob@acme.example")
    changes = select(AuditEvent.action, AuditEvent.actor_type).where(
        AuditEvent.action.in_(
            ("connection.created", "connection.updated", "connection.test_started")
        )
    )
    assert {actor for _action, actor in db.session.execute(changes)} == {"setup_link"}
    assert len(checked) == 7 and not any(checked.values()), checked
    print(f"IT-admin flow: {time.monotonic() - started:.1f} s")
