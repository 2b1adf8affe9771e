"""Several hosts on one PostgreSQL: two real gunicorn servers of the same deployment (same
database, secret, key ring and issuer, each on its own port) behind a load balancer that
sends each request anywhere. A sign-in begun on one finishes on the other, its state cannot
be replayed on the first, and a suspension made through one bites on the other's next check.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask

from idp.actors import system_actor
from idp.connections import services as connections
from idp.connections.models import ConnectionKind
from idp.connections.services import create_connection
from idp.db import db, new_id
from idp.sso import oidc
from tests import conftest
from tests.builders import auth, make_key, make_org
from tests.peers import Browser, OidcIdp
from tests.test_mail import Inbox, free_port, start_smtp

pytestmark = pytest.mark.postgres_only

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
START_TIMEOUT = 60.0  # seconds for a server to answer /readyz (imports, pool, workers)
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 10.0

# The load balancer's public URL, the issuer both servers share; nothing listens there: the
# test is the balancer, sending each request to the server it picks.
ISSUER = f"http://127.0.0.1:{free_port()}"
CONNECTION_ID = new_id("con")  # fixed, so the IdP can register the callback up front
LOGIN_PATH = f"/sso/oidc/{CONNECTION_ID}/login"
CALLBACK_PATH = f"/sso/oidc/{CONNECTION_ID}/callback"
CLIENT_ID = "gatehouse-rp"
CLIENT_SECRET = "gatehouse-client-secret-" + secrets.token_hex(16)
ACCOUNTS = {
    "alice": {
        "password": "alice-password",
        "claims": {"email": "alice@example.com", "email_verified": True, "name": "Alice"},
    }
}


@dataclass
class Host:
    """One Gatehouse server: gunicorn started with the project's gunicorn.conf.py."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _environment(database_url: str, smtp_port: int, port: int, instance: Path) -> dict[str, str]:
    """What every host of a deployment shares, plus this host's own port and folder."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEHOUSE_")}
    env.pop("GUNICORN_CMD_ARGS", None)
    env.update(
        GATEHOUSE_ENV="production",
        GATEHOUSE_DATABASE_URL=database_url,
        GATEHOUSE_SECRET_KEY="test-secret-key-" + "x" * 32,
        GATEHOUSE_ENCRYPTION_KEY=conftest.ENCRYPTION_KEY,
        GATEHOUSE_ISSUER=ISSUER,
        GATEHOUSE_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        GATEHOUSE_ALLOW_HTTP_LOOPBACK="1",  # the IdP peer runs on loopback
        GATEHOUSE_INSTANCE_PATH=str(instance),
        GATEHOUSE_PORT=str(port),  # gunicorn.conf.py binds it
        GUNICORN_CMD_ARGS="--workers 1 --graceful-timeout 3 --log-level warning",
    )
    return env


def _start(name: str, env: dict[str, str], log: Path) -> Host:
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own gunicorn, fixed arguments
            [GUNICORN, "--config", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Host(name, int(env["GATEHOUSE_PORT"]), process, log)


def _wait_ready(host: Host) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            pytest.fail(
                f"host {host.name} exited with {host.process.returncode}:\n{host.log_tail()}"
            )
        try:
            if requests.get(f"{host.url}/readyz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(
        f"host {host.name} did not answer /readyz in {START_TIMEOUT:.0f}s:\n{host.log_tail()}"
    )


def _stop(host: Host) -> None:
    """SIGTERM the master (it stops its worker); SIGKILL its own process group if it hangs."""
    if host.process.poll() is not None:
        return
    host.process.terminate()
    try:
        host.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(host.process.pid, signal.SIGKILL)
        host.process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIdp]:
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{ISSUER}{CALLBACK_PATH}"],
    }
    with OidcIdp(clients=[client], accounts=ACCOUNTS) as server:
        yield server


@pytest.fixture(scope="module")
def smtp() -> Iterator[Inbox]:
    controller, inbox = start_smtp()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def hosts(
    _migrated: str, smtp: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Host, Host]]:
    """Two servers on the test database (as its non-superuser role), started side by side."""
    if not _migrated.startswith("postgresql"):
        pytest.skip("several hosts share one PostgreSQL; SQLite is one machine's file")
    folder = tmp_path_factory.mktemp("hosts")
    started: list[Host] = []
    try:
        for name in ("a", "b"):
            env = _environment(_migrated, smtp.port, free_port(), folder / name)
            started.append(_start(name, env, folder / f"{name}.log"))
        for host in started:
            _wait_ready(host)
        yield started[0], started[1]
    finally:
        for host in started:
            _stop(host)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ISSUER": ISSUER, "ALLOW_HTTP_LOOPBACK": True}


@pytest.fixture
def acme(app: Flask, idp: OidcIdp, monkeypatch: pytest.MonkeyPatch) -> str:
    """Acme with its OIDC connection to the IdP; the workspace key, to administer it."""
    org = make_org("acme")
    monkeypatch.setattr(connections, "new_id", lambda _prefix: CONNECTION_ID)
    create_connection(
        system_actor(),
        org,
        kind=ConnectionKind.OIDC,
        name="Acme IdP",
        settings=oidc.build_settings(idp.issuer, CLIENT_ID, scopes=("openid", "email")),
        secret=CLIENT_SECRET,
    )
    db.session.commit()
    return make_key()


def _balanced(url: str, host: Host) -> str:
    """The URL the browser was sent to on the issuer, as the balancer hands it to ``host``."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == ISSUER, url
    return f"{host.url}{parts.path}?{parts.query}"


def _sign_in_across(browser: Browser, idp: OidcIdp, begin: Host, finish: Host) -> str:
    """Alice's SSO sign-in, begun on ``begin``, its callback on ``finish``; the IdP's redirect."""
    at_idp = browser.get(f"{begin.url}{LOGIN_PATH}", {"next": f"{ISSUER}/dashboard"})
    assert at_idp.status == 200 and at_idp.url.startswith(idp.issuer), at_idp.text
    back = browser.submit_form(at_idp, {"login": "alice", "password": "alice-password"})
    assert back.location is not None and back.location.startswith(f"{ISSUER}{CALLBACK_PATH}?")
    done = browser.get(_balanced(back.location, finish))
    assert done.status == 303, done.text
    assert done.location == f"{ISSUER}/dashboard"  # the app, behind the balancer
    return back.location


def _cookies(browser: Browser) -> dict[str, str]:
    return {cookie.name: cookie.value or "" for cookie in browser.cookies}


def test_a_sign_in_begun_on_one_host_finishes_on_the_other(
    hosts: tuple[Host, Host], idp: OidcIdp, acme: str
) -> None:
    a, b = hosts
    browser = Browser([a.url, b.url, idp.issuer])
    answer = _sign_in_across(browser, idp, begin=a, finish=b)

    for host in (a, b):  # the session B started is good on A: it lives in the database
        me = requests.get(f"{host.url}/api/v1/me", cookies=_cookies(browser), timeout=HTTP_TIMEOUT)
        assert me.status_code == 200, (host.name, me.text)
        assert (me.json()["user"]["email"], me.json()["org"]["slug"]) == (
            "alice@example.com",
            "acme",
        )

    # The IdP's answer again, now to A: B used up its state, and A knows it.
    replayed = browser.get(_balanced(answer, a))
    assert replayed.status == 403, replayed.text
    assert replayed.headers["X-Gatehouse-Error"] == "invalid_state"


def test_a_suspension_through_one_host_bites_on_the_other(
    hosts: tuple[Host, Host], idp: OidcIdp, acme: str
) -> None:
    a, b = hosts
    browser = Browser([a.url, b.url, idp.issuer])
    _sign_in_across(browser, idp, begin=b, finish=a)
    cookies = _cookies(browser)
    check = requests.get(f"{b.url}/auth/check", cookies=cookies, timeout=HTTP_TIMEOUT)
    assert check.status_code == 200, check.text
    assert check.headers["X-Gatehouse-Email"] == "alice@example.com"
    user_id = check.headers["X-Gatehouse-User"]

    suspended = requests.patch(
        f"{a.url}/api/v1/orgs/acme/members/{user_id}",
        json={"status": "suspended"},
        headers=auth(acme),
        timeout=HTTP_TIMEOUT,
    )
    assert suspended.status_code == 200, suspended.text

    # B's very next request: no cache to wait out.
    refused = requests.get(f"{b.url}/auth/check", cookies=cookies, timeout=HTTP_TIMEOUT)
    assert refused.status_code == 401
    assert (
        requests.get(f"{b.url}/api/v1/me", cookies=cookies, timeout=HTTP_TIMEOUT).status_code == 401
    )
