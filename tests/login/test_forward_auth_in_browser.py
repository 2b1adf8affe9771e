"""Forward-auth in a real browser through real nginx, with the apps on their own host names:
an app under the shared parent domain (``COOKIE_DOMAIN``, docs/proxies/nginx.conf) and apps on
unrelated domains through the callback (docs/proxies/nginx-callback.conf). A person signs in
once by email link and reaches the app without a redirect loop; suspending them ends it on
their next request."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, Response, expect

from idp.actors import system_actor
from idp.db import db
from idp.orgs.models import MembershipStatus
from idp.orgs.roles import Role
from idp.orgs.services import set_member_status
from tests.browser import chromium, new_page
from tests.builders import make_member, make_org
from tests.proxies import (
    echo_upstream,
    free_port,
    render_nginx_site,
    run_nginx,
    serve_app,
)
from tests.test_mail import Inbox

AUTH, SHARED, APP, OTHER = (
    "auth.gatehouse.test",
    "app.gatehouse.test",
    "app.acme.test",
    "other-app.test",
)
MAIL_WAIT = 10.0


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"gatehouse": free_port(), "shared": free_port(), "callback": free_port()}


@pytest.fixture(scope="module")
def issuer(ports: dict[str, int]) -> str:
    return f"http://{AUTH}:{ports['gatehouse']}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(hosts=[AUTH, SHARED, APP, OTHER]) as launched:
        yield launched


@pytest.fixture
def settings_overrides(inbox: Inbox, issuer: str, ports: dict[str, int]) -> dict[str, Any]:
    return {
        "ISSUER": issuer,
        "ALLOW_HTTP_LOOPBACK": True,
        "SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
        "COOKIE_DOMAIN": "gatehouse.test",
        "FORWARD_AUTH_HOSTS": f"{SHARED}=acme,{APP}=acme,{OTHER}=acme",
        "RETURN_ORIGINS": f"http://{SHARED}:{ports['shared']}",
    }


@pytest.fixture
def proxies(
    app: Flask, nginx_binary: str, ports: dict[str, int], tmp_path: Path
) -> Iterator[dict[str, int]]:
    """Gatehouse on its own host, and nginx in front of the echoing app, once per pattern."""
    with serve_app(app, ports["gatehouse"]), echo_upstream() as upstream:
        shared = render_nginx_site(ports["shared"], ports["gatehouse"], upstream)
        callback = render_nginx_site(
            ports["callback"], ports["gatehouse"], upstream, name="nginx-callback.conf"
        )
        with (
            run_nginx(nginx_binary, tmp_path / "shared", shared, ports["shared"]),
            run_nginx(nginx_binary, tmp_path / "callback", callback, ports["callback"]),
        ):
            yield ports


@pytest.fixture
def ann(app: Flask) -> Any:
    org = make_org("acme")
    make_member(org, "owner@acme.example", Role.OWNER)
    return org, make_member(org, "ann@acme.example", Role.MEMBER).user


def journey(page: Page) -> list[tuple[int, str]]:
    """Every response the page's navigations get, in order (redirects included)."""
    seen: list[tuple[int, str]] = []

    def record(response: Response) -> None:
        if response.request.is_navigation_request():
            seen.append((response.status, response.url))

    page.on("response", record)
    return seen


def sign_in_by_email(page: Page, inbox: Inbox, issuer: str) -> None:
    """On Gatehouse's sign-in page: the email, then the mailed link, confirmed."""
    before = len(inbox.messages)
    page.get_by_label("Work email").fill("ann@acme.example")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    deadline = time.monotonic() + MAIL_WAIT
    while len(inbox.messages) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(inbox.messages) > before, "no sign-in mail arrived"
    link = re.search(rf"{re.escape(issuer)}/login/email\?token=\S+", inbox.messages[-1].body)
    assert link is not None
    page.goto(link.group(0))
    page.get_by_role("button", name="Sign in").click()


def shown(page: Page) -> dict[str, Any]:
    return json.loads(page.locator("body").inner_text())


def suspend(ann: Any) -> None:
    org, user = ann
    set_member_status(system_actor(), org, user.id, MembershipStatus.SUSPENDED)
    db.session.commit()


def test_a_person_signs_in_once_and_reaches_an_app_under_the_shared_domain(
    browser: Browser, proxies: dict[str, int], ann: Any, inbox: Inbox, issuer: str
) -> None:
    page = new_page(browser)
    seen = journey(page)
    app_url = f"http://{SHARED}:{proxies['shared']}/dashboard?x=1"
    page.goto(app_url)
    expect(page).to_have_url(re.compile(rf"^{re.escape(issuer)}/login\?org=acme"))
    sign_in_by_email(page, inbox, issuer)
    expect(page).to_have_url(app_url)
    assert shown(page)["headers"]["X-Gatehouse-Email"] == "ann@acme.example"
    (session,) = [c for c in page.context.cookies() if c["name"] == "gatehouse_session"]
    assert session["domain"] == ".gatehouse.test"  # one cookie for Gatehouse and the app
    # Confirmed: Gatehouse's redirect to the app, and the app; no loop.
    confirmed = [i for i, (_, url) in enumerate(seen) if "/login/email" in url][-1]
    hops = [(status, url.split("?")[0]) for status, url in seen[confirmed:]]
    assert hops == [
        (303, f"{issuer}/login/email"),
        (200, app_url.split("?")[0]),
    ], hops

    page.goto(app_url)  # again: straight through
    assert shown(page)["path"] == "/dashboard?x=1"
    suspend(ann)
    page.goto(app_url)  # the very next request: back to sign-in
    expect(page).to_have_url(re.compile(rf"^{re.escape(issuer)}/login\?org=acme"))


def test_a_person_signs_in_once_and_reaches_apps_on_their_own_domains(
    browser: Browser, proxies: dict[str, int], ann: Any, inbox: Inbox, issuer: str
) -> None:
    page = new_page(browser)
    seen = journey(page)
    port = proxies["callback"]
    app_url = f"http://{APP}:{port}/dashboard?x=1"
    page.goto(app_url)
    expect(page).to_have_url(re.compile(rf"^{re.escape(issuer)}/login\?org=acme"))
    sign_in_by_email(page, inbox, issuer)
    expect(page).to_have_url(app_url)
    assert shown(page)["headers"]["X-Gatehouse-Email"] == "ann@acme.example"
    # Confirmed: to /auth/start, to the app's callback with the code, to the page; no loop.
    confirmed = [i for i, (_, url) in enumerate(seen) if "/login/email" in url][-1]
    hops = [(status, url.split("?")[0]) for status, url in seen[confirmed:]]
    assert hops == [
        (303, f"{issuer}/login/email"),
        (302, f"{issuer}/auth/start"),
        (302, f"http://{APP}:{port}/_gatehouse/callback"),
        (200, f"http://{APP}:{port}/dashboard"),
    ], hops
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["gatehouse_forward"]["domain"] == APP  # host-only, on the app's host
    assert cookies["gatehouse_session"]["domain"] == ".gatehouse.test"

    # Another app on another domain: signed in already, so no sign-in page at all.
    seen.clear()
    other_url = f"http://{OTHER}:{port}/reports"
    page.goto(other_url)
    expect(page).to_have_url(other_url)
    assert shown(page)["headers"]["X-Gatehouse-Email"] == "ann@acme.example"
    assert [status for status, _ in seen] == [302, 302, 302, 200], seen
    assert not any("/login" in url for _, url in seen)

    suspend(ann)
    page.goto(app_url)  # the very next request: back to sign-in, the app not reached
    expect(page).to_have_url(re.compile(rf"^{re.escape(issuer)}/login\?org=acme"))
    expect(page.get_by_label("Work email")).to_be_visible()
