"""Metrics, logs and traces of one process: ``/metrics`` after a scripted sign-in and a SCIM
sync, who may read it, the JSON log lines those leave, and an OTLP receiver's spans.

Many processes under gunicorn: tests/test_observability_gunicorn.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from idp import create_app, observability
from idp.actors import system_actor
from idp.config import ConfigError, Settings, load_settings
from idp.db import db
from idp.orgs.roles import Role
from idp.policies import services as policies
from tests.builders import make_member, make_org
from tests.forms import form_post
from tests.scim.conftest import scim_for
from tests.test_mail import Inbox

METRICS_TOKEN = "metrics-" + "m" * 40
LINK = re.compile(r"http://gatehouse\.test(/login/email\?token=(\S+))")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def settings_overrides(inbox: Inbox) -> dict[str, Any]:
    return {"SMTP_URL": f"smtp://127.0.0.1:{inbox.port}", "METRICS_TOKEN": METRICS_TOKEN}


def scrape(client: FlaskClient) -> Samples:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.mimetype == "text/plain"
    return parse(answer.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def sign_in_by_link(client: FlaskClient, inbox: Inbox, email: str) -> tuple[Any, str]:
    """Ask for a link, open it, confirm: the answer to the confirmation, and the link's token."""
    inbox.messages.clear()
    assert form_post(client, "/login", data={"email": email}).status_code == 200
    [mail] = inbox.messages
    path, token = LINK.search(mail.body).groups()
    return form_post(client, path), token


def scim_sync(client: FlaskClient, org: Any) -> tuple[str, list[int]]:
    """What an IdP's first push does: look up, create, update, a miss, a group. Its token."""
    scim = scim_for(client, org)
    statuses = [
        scim("GET", "/Users", filter='userName eq "cy@acme.example"').status_code,
        (
            created := scim(
                "POST",
                "/Users",
                {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "cy@acme.example",
                    "emails": [{"value": "cy@acme.example", "primary": True}],
                    "active": True,
                },
            )
        ).status_code,
        scim(
            "PATCH",
            f"/Users/{created.json['id']}",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Cy"}],
            },
        ).status_code,
        scim("GET", "/Users/no-such-user").status_code,
        scim(
            "POST",
            "/Groups",
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng"},
        ).status_code,
    ]
    return scim.token, statuses


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """What the JSON handler writes while the test runs."""
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    settings = replace(Settings(), log_format="json")
    handler = observability.log_handler(settings, stream)
    logging.getLogger().addHandler(handler)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def test_metrics_count_sign_ins_scim_and_policy_refusals(
    client: FlaskClient, inbox: Inbox, events: io.StringIO
) -> None:
    acme = make_org("acme")
    make_member(acme, "ann@acme.example", Role.ADMIN)
    beta = make_org("beta")
    make_member(beta, "bob@elsewhere.example")
    policies.set_org_policy(system_actor(), beta, {"allowed_email_domains": ["beta.example"]})
    db.session.commit()
    before = scrape(client)

    signed_in, link_token = sign_in_by_link(client, inbox, "ann@acme.example")
    assert signed_in.status_code == 303
    bogus = form_post(client, "/login/email?token=ghl_not-a-real-link")
    assert bogus.headers["X-Gatehouse-Error"] == "invalid_link"
    refused, refused_token = sign_in_by_link(client, inbox, "bob@elsewhere.example")
    assert refused.headers["X-Gatehouse-Error"] == "policy_violation"
    # An SSO sign-in refused at its start counts under its protocol; metadata is no sign-in.
    assert client.get("/sso/oidc/con_nope/login").status_code == 404
    assert client.get("/sso/saml/con_nope/metadata").status_code == 404
    assert client.get("/no/such/acme/page").status_code == 404  # no route: one series for all
    scim_token, statuses = scim_sync(client, acme)
    assert statuses == [200, 201, 200, 404, 201]
    after = scrape(client)

    sign_ins = "gatehouse_sign_ins_total"
    assert delta(before, after, sign_ins, method="email_link", result="success", reason="") == 1
    assert (
        delta(before, after, sign_ins, method="email_link", result="refused", reason="invalid_link")
        == 1
    )
    assert (
        delta(
            before,
            after,
            sign_ins,
            method="email_link",
            result="refused",
            reason="policy_violation",
        )
        == 1
    )
    oidc = {"method": "oidc", "result": "refused", "reason": "connection_not_found"}
    assert delta(before, after, sign_ins, **oidc) == 1
    saml = {**oidc, "method": "saml"}
    assert delta(before, after, sign_ins, **saml) == 0
    policy = "gatehouse_policy_refusals_total"
    assert delta(before, after, policy, policy="allowed_email_domains") == 1
    scim = "gatehouse_scim_operations_total"
    assert delta(before, after, scim, resource="Users", operation="list", result="success") == 1
    assert delta(before, after, scim, resource="Users", operation="create", result="success") == 1
    assert delta(before, after, scim, resource="Users", operation="patch", result="success") == 1
    assert delta(before, after, scim, resource="Users", operation="get", result="client_error") == 1
    assert delta(before, after, scim, resource="Groups", operation="create", result="success") == 1
    http = "gatehouse_http_requests_total"
    assert delta(before, after, http, method="POST", route="/login/email", status="303") == 1
    item = "/scim/v2/<org_slug>/Users/<user_id>"
    assert delta(before, after, http, method="PATCH", route=item, status="200") == 1
    assert delta(before, after, http, method="GET", route=item, status="404") == 1
    assert delta(before, after, http, method="GET", route="unmatched", status="404") == 1
    duration = "gatehouse_http_request_duration_seconds_count"
    assert delta(before, after, duration, method="PATCH", route=item) == 1
    # Labels are routes and codes: no slug, id, address or token is ever one.
    values = {v for (name, labels) in after if name.startswith("gatehouse_") for _, v in labels}
    assert not [v for v in values if "acme" in v or "@" in v or v.startswith(("ghl_", "scim"))]

    # The log: one line per sign-in, success and refusals, and per provisioning change.
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    for line in lines:
        assert {
            "timestamp",
            "level",
            "logger",
            "message",
            "request_id",
            "org",
            "actor",
            "event",
        } <= line.keys()
    sign_in_lines = [line for line in lines if line["event"] == "sign_in"]
    assert [(line["result"], line.get("reason"), line.get("policy")) for line in sign_in_lines] == [
        ("success", None, None),
        ("refused", "invalid_link", None),
        ("refused", "policy_violation", "allowed_email_domains"),
        ("refused", "connection_not_found", None),
    ]
    success = sign_in_lines[0]
    assert success["request_id"] == signed_in.headers["X-Request-Id"]
    assert success["org"] == acme.id and success["actor"].startswith("user:usr_")
    assert success["method"] == "email_link"
    provisioned = [
        (line["event"], line["org"], line["request_id"] is not None)
        for line in lines
        if (line["actor"] or "").startswith("scim_token:")
    ]
    assert provisioned == [
        ("member.provisioned", acme.id, True),
        ("member.provisioning_updated", acme.id, True),
        ("team.created", acme.id, True),
    ]
    # An admin change (the SCIM token's creation, by the operator): its line too.
    created = [line for line in lines if line.get("target_type") == "scim_token"]
    assert [(line["event"], line["org"]) for line in created] == [("scim_token.created", acme.id)]
    # No secret in any line: the links' tokens, the SCIM token, the session cookie.
    cookie = client.get_cookie("gatehouse_session")
    secrets = [link_token, refused_token, scim_token, METRICS_TOKEN, "ghl_not-a-real-link"]
    if cookie is not None:
        secrets.append(cookie.value.rsplit(".", 1)[0])  # the token, without its signature
    text = events.getvalue()
    assert [s for s in secrets if s in text] == []


# --- who may read /metrics --------------------------------------------------------------


def app_with(app: Flask, **settings: str) -> Flask:
    """Another app on this test's database, with some settings changed."""
    return create_app(replace(app.extensions["gatehouse.settings"], **settings))


def test_metrics_refuse_without_the_token(client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401 and refused.json["error"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert "gatehouse_" not in refused.text
    assert (
        client.get("/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"}).status_code
        == 200
    )


def test_metrics_are_closed_unless_opened(app: Flask) -> None:
    closed = app_with(app, metrics_token="").test_client().get("/metrics")
    assert closed.status_code == 403 and "GATEHOUSE_METRICS_TOKEN" in closed.json["message"]
    # The test client is 127.0.0.1: a network that holds it opens, one that does not refuses.
    opened = app_with(app, metrics_token="", metrics_allow="10.0.0.0/8, 127.0.0.1")
    assert opened.test_client().get("/metrics").status_code == 200
    elsewhere = app_with(app, metrics_token="", metrics_allow="10.0.0.0/8")
    assert elsewhere.test_client().get("/metrics").status_code == 403


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"METRICS_TOKEN": "short"}, "GATEHOUSE_METRICS_TOKEN must be at least 32"),
        ({"METRICS_ALLOW": "10.0.0.1/8"}, "GATEHOUSE_METRICS_ALLOW: '10.0.0.1/8' is not"),
        ({"METRICS_ALLOW": "localhost"}, "GATEHOUSE_METRICS_ALLOW: 'localhost' is not"),
        ({"LOG_FORMAT": "xml"}, "GATEHOUSE_LOG_FORMAT must be json or text"),
    ],
)
def test_bad_observability_settings_stop_start_up(
    settings: dict[str, str], message: str, tmp_path: Any
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({"ENV": "testing", **settings}, environ={}, default_instance_path=tmp_path)


# --- traces -----------------------------------------------------------------------------


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver on loopback: keeps every export request it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.exports: list[ExportTraceServiceRequest] = []
        self.received = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/v1/traces"
        assert self.headers["Content-Type"] == "application/x-protobuf"
        self.server.exports.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.received.set()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_request_is_a_span_at_the_otlp_receiver(
    app: Flask, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gatehouse-test")
    traced = app_with(app)
    provider = traced.extensions["gatehouse.tracer_provider"]
    try:
        assert traced.test_client().get("/readyz").status_code == 200
        assert provider.force_flush(timeout_millis=10_000)
        assert collector.received.wait(timeout=10)
    finally:
        provider.shutdown()
        with traced.app_context():
            db.engine.dispose()
    spans = [
        (span, resource.resource)
        for export in collector.exports
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = [span.name for span, _resource in spans]
    assert "GET /readyz" in names  # the route, as Flask's URL rule names it
    [(request_span, resource)] = [(s, r) for s, r in spans if s.name == "GET /readyz"]
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "gatehouse-test"
    attributes = {a.key: a.value for a in request_span.attributes}
    assert attributes["http.route"].string_value == "/readyz"
    # The old semantic conventions' name, or the stable one (OTEL_SEMCONV_STABILITY_OPT_IN).
    status = attributes.get("http.status_code") or attributes["http.response.status_code"]
    assert status.int_value == 200


def test_tracing_stays_unloaded_without_its_variables(app: Flask) -> None:
    """Nothing of OpenTelemetry is imported, so it costs nothing, unless its variables ask."""
    assert not observability.tracing_requested({})
    assert not observability.tracing_requested({"OTEL_TRACES_EXPORTER": "none"})
    assert not observability.tracing_requested(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    )
    assert observability.tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    assert "gatehouse.tracer_provider" not in app.extensions
    script = (
        "import sys; from idp import create_app; "
        "create_app({'ENV': 'testing', 'INSTANCE_PATH': sys.argv[1]}); "
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('opentelemetry.')}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    found = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script, app.instance_path],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert found.stdout.strip() == "[]", found.stdout + found.stderr


def test_the_log_format_is_json_in_production_unless_chosen() -> None:
    assert observability.log_format(Settings(env="production")) == "json"
    assert observability.log_format(Settings(env="development")) == "text"
    assert observability.log_format(Settings(env="production", log_format="text")) == "text"
    stream = io.StringIO()
    handler = observability.log_handler(Settings(env="development"), stream)
    handler.handle(logging.makeLogRecord({"name": "idp.x", "levelname": "INFO", "msg": "hi"}))
    assert stream.getvalue().rstrip().endswith("INFO idp.x hi")
