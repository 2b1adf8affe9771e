"""The admin API answers as its OpenAPI document says: every operation, driven by schemathesis.

The document is loaded from the app itself (``/api/v1/openapi.json`` over WSGI), an org is
seeded with one of everything, and each operation is called with a fixed number of generated
requests, positive and negative, from a fixed seed, with every check schemathesis has on:
no 5xx, documented status codes, content types, headers and response schemas, a missing
required body or parameter refused, invalid input refused and valid input accepted, a
credential that is required and not sent refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import schemathesis.engine
from flask import Flask
from flask.testing import FlaskClient
from schemathesis.engine import Status, events
from werkzeug.routing import Rule

from idp.admin.api import OPERATIONS
from idp.admin.openapi import build_spec
from idp.orgs.roles import Role
from tests.builders import auth, make_key, make_member, make_org, signed_in_cookie
from tests.proxies import serve_app

SEED = 20261207
EXAMPLES = 6  # per operation and phase: enough to reach every branch of the document


def _seed(client: FlaskClient, key: str) -> dict[str, str]:
    """One of every resource in org ``acme``; the ids become the generated paths' values."""
    org = make_org("acme")
    owner = make_member(org, "owner@acme.test", Role.OWNER)
    member = make_member(org, "member@acme.test")
    headers = auth(key)

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(f"/api/v1{path}", json=body, headers=headers)
        assert response.status_code in (200, 201), (path, response.status_code, response.json)
        return response.json

    team = post("/orgs/acme/teams", {"name": "Platform"})
    post(f"/orgs/acme/teams/{team['id']}/members", {"user_id": member.user_id})
    invitation = post("/orgs/acme/invitations", {"email": "new@acme.test"})
    domain = post("/orgs/acme/domains", {"domain": "acme.test"})
    connection = post("/orgs/acme/connections", {"kind": "saml", "name": "Okta"})
    role = post("/orgs/acme/roles", {"key": "auditor", "name": "Auditor", "permissions": []})
    post("/roles", {"key": "finance", "name": "Finance", "permissions": []})
    post("/permissions", {"key": "tunnels:use"})
    post("/resource-types", {"key": "project", "roles": [{"key": "viewer", "permissions": []}]})
    post("/orgs/acme/resources", {"type": "project", "id": "p1"})
    post("/orgs/acme/resources/project/p1/members", {"user_id": member.user_id, "role": "viewer"})
    mapping = post("/orgs/acme/role-mappings", {"group": "admins", "role": "admin"})
    org_key = post("/orgs/acme/api-keys", {"name": "ci"})
    scim = post("/orgs/acme/scim-tokens", {"name": "okta"})
    link = post("/orgs/acme/setup-links", {"intents": ["sso"]})
    app_client = post("/clients", {"name": "Portal", "redirect_uris": ["https://app.test/cb"]})
    own = client.get("/api/v1/api-keys", headers=headers).json["data"][0]
    return {
        "slug": "acme",
        "user_id": member.user_id,
        "team_id": team["id"],
        "invitation_id": invitation["id"],
        "domain_id": domain["id"],
        "connection_id": connection["id"],
        "role": role["key"],
        "template": "finance",
        "permission": "tunnels:use",
        "rtype": "project",
        "rid": "p1",
        "principal_id": member.user_id,
        "mapping_id": mapping["id"],
        # The workspace's only key: revoking it must be refused (409 last_workspace_key).
        "key_id": own["id"] if own["org_id"] is None else org_key["id"],
        "token_id": scim["id"],
        "link_id": link["id"],
        "client_id": app_client["client_id"],
        "_cookie": signed_in_cookie(owner),
    }


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Thousands of cases from one address, many with no or a wrong key on purpose: the
    # failure limits (tests/test_ratelimit.py) would lock this address out after 50.
    return {
        "RATE_LIMIT_IP_FAILURES": "100000 per 10 minutes",
        "RATE_LIMIT_CREDENTIAL_FAILURES": "100000 per 10 minutes",
    }


@pytest.fixture
def api_schema(app: Flask, client: FlaskClient) -> Iterator[Any]:
    """The document as the running app serves it (over HTTP on loopback: schemathesis's
    in-process WSGI transport cannot send its unauthenticated probes)."""
    key = make_key()
    values = _seed(client, key)
    cookie = values.pop("_cookie")
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},  # nothing carried from run to run: the same cases
            # Each operation's own security scheme: the key, or the session cookie.
            "auth": {"openapi": {"apiKey": {"bearer": key}, "session": {"api_key": cookie}}},
            "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True},
            "checks": {
                "enabled": True,
                # Schema-valid input that the domain refuses with a 400 naming its rule: names
                # without control characters, slugs, URIs, the roles and types that exist, one
                # principal of two. JSON Schema cannot say all of these; the refusal is the
                # documented 400, never a 5xx or a silent acceptance.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429"]
                },
            },
            "phases": {"stateful": {"enabled": False}},
            "parameters": {f"path.{name}": value for name, value in values.items()},
        }
    )
    with serve_app(app) as port:
        yield schemathesis.openapi.from_url(
            f"http://127.0.0.1:{port}/api/v1/openapi.json", config=config
        )


def test_every_operation_answers_as_documented(api_schema: Any) -> None:
    findings: list[str] = []
    for event in schemathesis.engine.from_schema(api_schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for case_id, nodes in event.recorder.checks.items():
                for node in nodes:
                    if node.status is Status.FAILURE and node.failure_info is not None:
                        failure = node.failure_info.failure
                        response = event.recorder.find_response(case_id=case_id)
                        findings.append(
                            f"{event.phase.value} {event.recorder.label} [{node.name}] "
                            f"{failure.title}: {failure.message[:300]}\n    "
                            f"{node.failure_info.code_sample}\n    -> "
                            f"{response.status_code if response else None} "
                            f"{(response.content[:200] if response else b'')!r}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            findings.append(f"error: {getattr(event, 'label', '')} {event.info.format()}")
    assert not findings, f"{len(findings)} findings:\n" + "\n".join(sorted(set(findings)))


def test_each_documented_operation_exists_and_each_rule_is_documented(app: Flask) -> None:
    documented = {
        (path, method.upper()) for path, item in build_spec()["paths"].items() for method in item
    }
    served: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") or rule.rule == "/auth/check":
            path = _openapi_path(rule)
            # Flask adds HEAD and OPTIONS to every rule; only forward-auth means them.
            methods = rule.methods or set()
            if path != "/auth/check":
                methods = methods - {"HEAD", "OPTIONS"}
            served |= {(path, m) for m in methods}
    missing = served - documented
    assert not missing, f"served, not documented: {sorted(missing)}"
    assert not documented - served, f"documented, not served: {sorted(documented - served)}"
    assert len(OPERATIONS) + 1 + 7 == len(documented)  # declared ones, /me, /auth/check


def _openapi_path(rule: Rule) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
