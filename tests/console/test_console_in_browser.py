"""The org console in a real browser: an admin invites, the invitee accepts in another
browser, the admin changes their role and suspends them; a member cannot reach the admin's
page and another org's pages are not found. axe-core over each page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from idp.orgs import services
from idp.orgs.models import MembershipStatus
from idp.orgs.roles import Role
from tests.browser import chromium, new_page, screenshot, serious_findings
from tests.builders import make_member, make_org, signed_in_cookie
from tests.proxies import free_port, serve_app
from tests.test_mail import Inbox

HOST = "gatehouse.test"


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def issuer(port: int) -> str:
    return f"http://{HOST}:{port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(hosts=[HOST]) as launched:
        yield launched


@pytest.fixture
def settings_overrides(inbox: Inbox, issuer: str) -> dict[str, Any]:
    return {"ISSUER": issuer, "SMTP_URL": f"smtp://127.0.0.1:{inbox.port}", "OPERATOR_ORG": "house"}


@pytest.fixture
def served(app: Flask, port: int) -> Iterator[None]:
    with serve_app(app, port):
        yield


def signed_in(browser: Browser, issuer: str, cookie: str) -> Page:
    page = new_page(browser)
    page.context.add_cookies([{"name": "gatehouse_session", "value": cookie, "url": issuer}])
    return page


def no_serious_findings(page: Page, name: str | None = None) -> None:
    found = serious_findings(page)
    assert not found, (page.url, found)
    if name:
        screenshot(page, name)


PAGES = {
    "teams": "Teams",
    "roles": "Roles",
    "sso": "Single sign-on",
    "directory": "Directory (SCIM)",
    "domains": "Domains",
    "policy": "Policy",
    "audit": "Audit log",
    "api-keys": "API keys",
    "settings": "Settings",
}


def test_every_console_page_of_an_owner_is_accessible(
    app: Flask, served: None, browser: Browser, issuer: str
) -> None:
    org = make_org("acme", name="Acme")
    owner = make_member(org, "owner@acme.example", Role.OWNER)
    make_member(org, "ann@acme.example")
    page = signed_in(browser, issuer, signed_in_cookie(owner))
    page.goto(f"{issuer}/console/orgs/acme/members")
    no_serious_findings(page, "console-members")
    for path, heading in PAGES.items():
        page.get_by_role("navigation", name="Console").get_by_role(
            "link", name=heading.split(" (")[0].replace("Single sign-on", "SSO")
        ).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        no_serious_findings(page, f"console-{path}")


def test_an_admin_invites_and_manages_a_member(
    app: Flask, served: None, browser: Browser, inbox: Inbox, issuer: str
) -> None:
    org = make_org("acme", name="Acme")
    make_member(org, "owner@acme.example", Role.OWNER)
    admin_membership = make_member(org, "admin@acme.example", Role.ADMIN)
    beta = make_org("beta", name="Beta")
    make_member(beta, "bee@beta.example", Role.OWNER)

    admin = signed_in(browser, issuer, signed_in_cookie(admin_membership))
    admin.goto(f"{issuer}/console")
    expect(admin.get_by_role("heading", level=1)).to_have_text("Members of Acme")
    no_serious_findings(admin)

    # A typo first: the error beside the field, what was typed kept.
    admin.get_by_label("Email address").fill("new.person@")
    admin.get_by_role("button", name="Invite").click()
    expect(admin.locator("#email-error")).to_be_visible()
    expect(admin.get_by_label("Email address")).to_have_value("new.person@")
    no_serious_findings(admin)
    admin.get_by_label("Email address").fill("new.person@acme.example")
    admin.get_by_label("Their role").select_option("member")
    admin.get_by_role("button", name="Invite").click()
    expect(admin.get_by_role("status")).to_contain_text(
        "Invitation sent to new.person@acme.example"
    )
    expect(
        admin.get_by_role("button", name="Cancel invitation for new.person@acme.example")
    ).to_be_visible()
    no_serious_findings(admin)

    # The invitee accepts in their own browser.
    mail = inbox.messages[-1]
    assert mail.rcpt_tos == ["new.person@acme.example"]
    link = re.search(rf"{re.escape(issuer)}/invitations/accept\?\S+", mail.body).group(0)  # type: ignore[union-attr]
    invitee = new_page(browser)
    invitee.goto(link)
    no_serious_findings(invitee, "invitation")
    invitee.get_by_role("button", name="Accept").click()
    expect(invitee.locator("#signed-in")).to_contain_text(
        "new.person@acme.example to Acme (member)"
    )
    no_serious_findings(invitee, "signed-in")
    expect(invitee.get_by_role("link", name="Acme")).to_have_attribute(
        "href", "/console/orgs/acme/members"
    )

    # A member cannot reach the admin's page; another org's is not found.
    invitee.goto(f"{issuer}/console/orgs/acme/members")
    expect(invitee.get_by_role("heading", level=1)).to_have_text("Not available to your role")
    no_serious_findings(invitee, "console-not-your-role")
    invitee.goto(f"{issuer}/console/orgs/beta/members")
    expect(invitee.locator("#error")).to_have_attribute("data-code", "org_not_found")
    assert "bee@beta.example" not in invitee.content()

    # The admin changes the newcomer's role, then suspends them: their session ends.
    admin.goto(f"{issuer}/console/orgs/acme/members?q=new.person")
    admin.get_by_text("Manage new.person@acme.example").click()
    admin.get_by_label("New role for new.person@acme.example").select_option("admin")
    admin.get_by_role("button", name="Change role of new.person@acme.example").click()
    expect(admin.get_by_role("status")).to_contain_text("Role changed")
    member = next(m for m in services.list_members(org.id, q="new.person").items)
    assert services.get_membership(org.id, member.user_id, fresh=True).role == Role.ADMIN
    admin.get_by_text("Manage new.person@acme.example").click()
    admin.get_by_role("button", name="Suspend new.person@acme.example").click()
    expect(admin.get_by_role("status")).to_contain_text("Member suspended")
    assert (
        services.get_membership(org.id, member.user_id, fresh=True).status
        is MembershipStatus.SUSPENDED
    )
    invitee.goto(f"{issuer}/console/orgs/acme/members")
    expect(invitee.get_by_role("heading", level=1)).to_have_text("Sign in")
    no_serious_findings(invitee, "sign-in")


def test_every_operator_page_is_accessible(
    app: Flask, served: None, browser: Browser, issuer: str
) -> None:
    house = make_org("house", name="The SaaS team")
    make_org("acme", name="Acme")
    page = signed_in(
        browser, issuer, signed_in_cookie(make_member(house, "ops@saas.example", Role.OWNER))
    )
    page.goto(f"{issuer}/console/operator")
    expect(page.get_by_role("heading", level=1)).to_have_text("Organizations")
    no_serious_findings(page, "operator-orgs")
    page.get_by_role("link", name="Acme").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme")
    no_serious_findings(page, "operator-org")
    for label, heading, name in (
        ("Baseline policy", "Baseline policy", "operator-policy"),
        ("Apps", "Apps (OIDC clients)", "operator-apps"),
        ("Workspace keys", "Workspace keys", "operator-keys"),
    ):
        page.get_by_role("navigation", name="Operator").get_by_role("link", name=label).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        no_serious_findings(page, name)
