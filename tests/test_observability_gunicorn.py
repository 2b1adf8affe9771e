"""Under a real gunicorn with two workers, as production runs: requests spread over both,
``/metrics`` on either sums them (Prometheus multiprocess mode), and stderr holds only JSON
lines, one per sign-in and per provisioning change, none with a secret."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client import CollectorRegistry, multiprocess

from idp.actors import system_actor
from idp.credentials.services import create_scim_token
from idp.db import db
from idp.orgs.roles import Role
from tests.builders import make_member, make_org
from tests.conftest import ENCRYPTION_KEY
from tests.forms import TOKEN as CSRF_TOKEN
from tests.test_mail import Inbox, free_port
from tests.test_observability import parse

ROOT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "metrics-" + "g" * 40
HEALTHZ = (
    "gatehouse_http_requests_total",
    (("method", "GET"), ("route", "/healthz"), ("status", "200")),
)


class Gunicorn:
    def __init__(self, app: Flask, inbox: Inbox, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = workdir / "metrics"
        self.metrics_dir.mkdir()
        (self.metrics_dir / "counter_1.db").write_bytes(b"")  # a previous run's: emptied
        self.stderr_path = workdir / "stderr"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEHOUSE_", "OTEL_"))}
        env.update(
            GATEHOUSE_ENV="production",  # JSON lines by default
            GATEHOUSE_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
            GATEHOUSE_SECRET_KEY="gunicorn-secret-" + "s" * 32,
            GATEHOUSE_ENCRYPTION_KEY=ENCRYPTION_KEY,
            GATEHOUSE_ISSUER=self.url,
            GATEHOUSE_INSTANCE_PATH=str(workdir / "instance"),
            GATEHOUSE_SMTP_URL=f"smtp://127.0.0.1:{inbox.port}",
            GATEHOUSE_MAIL_DELIVERY="inline",
            GATEHOUSE_METRICS_TOKEN=METRICS_TOKEN,
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir),
        )
        command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
        command += ["--no-control-socket", "--workers", "2", "--bind", f"127.0.0.1:{self.port}"]
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [*command, "wsgi:app"], cwd=ROOT, env=env, stdout=stderr, stderr=stderr
            )
        self.healthz = 0  # answered /healthz requests: what the counters must sum to

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stderr_path.read_text()
            try:
                # /readyz: a request that timed out here may still be answered and counted,
                # and /healthz's count must be exact.
                if requests.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # still booting
                time.sleep(0.05)
        raise AssertionError("gunicorn did not answer within 30 s")

    def get_healthz(self, _n: int) -> None:
        assert requests.get(f"{self.url}/healthz", timeout=10).status_code == 200

    def scrape(self) -> Any:
        answer = requests.get(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        return parse(answer.text)

    def per_worker(self, workdir: Path) -> dict[str, float]:
        """Each worker's own /healthz count, read from its files alone."""
        counts = {}
        pids = {path.stem.rsplit("_", 1)[1] for path in self.metrics_dir.glob("counter_*.db")}
        for pid in pids:
            alone = workdir / f"worker-{pid}"
            alone.mkdir(parents=True)
            for path in self.metrics_dir.glob(f"*_{pid}.db"):
                shutil.copy(path, alone)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, str(alone))
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in registry.collect()
                for s in family.samples
            }
            counts[pid] = samples.get(HEALTHZ, 0.0)
        return counts

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def gunicorn(app: Flask, inbox: Inbox, tmp_path: Path) -> Iterator[Gunicorn]:
    server = Gunicorn(app, inbox, tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def sign_in_by_link(server: Gunicorn, inbox: Inbox, email: str) -> tuple[requests.Response, str]:
    browser = requests.Session()
    origin = {"Origin": server.url}
    page = browser.get(f"{server.url}/login", timeout=10)
    csrf = CSRF_TOKEN.search(page.text).group(1)
    sent = browser.post(
        f"{server.url}/login", data={"email": email, "csrf_token": csrf}, headers=origin, timeout=10
    )
    assert sent.status_code == 200, sent.text
    [mail] = inbox.messages
    link = re.search(re.escape(server.url) + r"(/login/email\?token=(\S+))", mail.body)
    path, token = link.groups()
    confirm = browser.get(server.url + path, timeout=10)
    csrf = CSRF_TOKEN.search(confirm.text).group(1)
    signed_in = browser.post(
        server.url + path,
        data={"csrf_token": csrf},
        headers=origin,
        allow_redirects=False,
        timeout=10,
    )
    return signed_in, token


def test_two_workers_share_metrics_and_write_json_lines(
    app: Flask, gunicorn: Gunicorn, inbox: Inbox, tmp_path: Path
) -> None:
    org = make_org("acme")
    make_member(org, "ann@acme.example", Role.ADMIN)
    _credential, scim_token = create_scim_token(system_actor(), org, name="idp")
    db.session.commit()
    assert not (gunicorn.metrics_dir / "counter_1.db").exists()

    # Concurrent requests: while one sync worker answers, the other takes the next. Bounded
    # batches until both have answered some (the kernel decides who accepts).
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _batch in range(10):
            list(pool.map(gunicorn.get_healthz, range(40)))
            gunicorn.healthz += 40
            busy = [n for n in gunicorn.per_worker(tmp_path / f"batch-{_batch}").values() if n]
            if len(busy) >= 2:
                break
    per_worker = gunicorn.per_worker(tmp_path / "final")
    assert len([n for n in per_worker.values() if n]) == 2, per_worker
    assert sum(per_worker.values()) == gunicorn.healthz

    signed_in, link_token = sign_in_by_link(gunicorn, inbox, "ann@acme.example")
    assert signed_in.status_code == 303, signed_in.text
    session_cookie = signed_in.cookies["gatehouse_session"]
    scim = requests.Session()
    scim.headers.update(
        {"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"}
    )
    base = f"{gunicorn.url}/scim/v2/acme"
    created = scim.post(
        f"{base}/Users",
        data=json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "cy@acme.example",
                "active": True,
            }
        ),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    deactivate = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    patched = scim.patch(
        f"{base}/Users/{created.json()['id']}", data=json.dumps(deactivate), timeout=10
    )
    assert patched.status_code == 200, patched.text

    # Whichever worker answers a scrape, it sums both.
    scrapes = [gunicorn.scrape() for _ in range(4)]
    for samples in scrapes:
        assert samples[HEALTHZ] == gunicorn.healthz
        sign_ins = (
            "gatehouse_sign_ins_total",
            (("method", "email_link"), ("reason", ""), ("result", "success")),
        )
        assert samples[sign_ins] == 1
        scim_key = "gatehouse_scim_operations_total"
        for operation in ("create", "patch"):
            labels = (("operation", operation), ("resource", "Users"), ("result", "success"))
            assert samples[(scim_key, labels)] == 1

    gunicorn.stop()
    output = gunicorn.stderr_path.read_text()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # JSON, all
    keys = {"timestamp", "level", "logger", "message", "request_id", "org", "actor", "event"}
    assert [line for line in lines if not keys <= line.keys()] == []
    [sign_in] = [line for line in lines if line["event"] == "sign_in"]
    assert sign_in["result"] == "success" and sign_in["method"] == "email_link"
    assert sign_in["org"] == org.id and sign_in["request_id"]
    provisioning = [
        line["event"] for line in lines if (line["actor"] or "").startswith("scim_token:")
    ]
    # One line per change: the create, then the PATCH's suspension and its own update.
    assert provisioning == ["member.provisioned", "member.suspended", "member.provisioning_updated"]
    assert "Booting worker" in output  # gunicorn's own lines are JSON too
    secrets = [link_token, scim_token, METRICS_TOKEN, session_cookie.rsplit(".", 1)[0]]
    assert [s for s in secrets if s in output] == []
