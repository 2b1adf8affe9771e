"""Okta's and Entra's provisioning sequences at full speed over real HTTP: no 429 under the
default limits, on both stores.

Their published pace, which the defaults leave room for (README, "Rate limits"): Entra's
gallery requirement is that a SCIM endpoint takes at least 25 requests per second per tenant;
Okta says even large bulk loads rarely need more than 10 simultaneous transactions. Here each
vendor runs 10 requests at a time, as fast as the server answers, each in its own org, both
orgs at once, through the golden payloads of ``tests/data/``.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from idp.actors import system_actor
from idp.credentials.services import create_scim_token
from idp.db import db
from idp.ratelimit import limiter, throughput_key
from tests.builders import make_org

DATA = Path(__file__).parent.parent / "data"
USERS = 60  # per vendor
CONCURRENCY = 10
SCIM_JSON = "application/scim+json"


def golden(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text())["request"]


@pytest.fixture(params=["database", "redis"])
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The default limits; only the store changes."""
    if request.param == "database":
        return {}
    return {"REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_PREFIX": f"gh-{secrets.token_hex(6)}"}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        thread.join()
        rate = app.extensions["gatehouse.ratelimit"]
        if rate.redis is not None:
            rate.redis.storage.reset()


class Idp:
    """One IdP's provisioning client: a connection pool per thread, every status kept."""

    def __init__(self, base: str, slug: str, token: str) -> None:
        self.base = f"{base}/scim/v2/{slug}"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
        self.local = threading.local()
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.writes = 0
        self.org_id = ""

    def __call__(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        session = getattr(self.local, "session", None) or requests.Session()
        self.local.session = session
        data = None if body is None else json.dumps(body)
        response = session.request(
            method, self.base + path, data=data, params=params, headers=self.headers, timeout=30
        )
        with self.lock:
            self.statuses[response.status_code] += 1
            self.writes += method != "GET"
        return response


def okta_user(idp: Idp, i: int) -> str:
    """Okta: find, create, read, replace (PUT), deactivate (its guide's order)."""
    user_name = f"okta.user{i}@okta.local"
    found = idp("GET", "/Users", filter=f'userName eq "{user_name}"', startIndex="1", count="100")
    assert found.json()["totalResults"] == 0
    body = golden("okta-create-user")
    body = json.loads(json.dumps(body).replace("test.user@okta.local", user_name))
    body["externalId"] = f"okta-{i}"
    created = idp("POST", "/Users", body)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert idp("GET", f"/Users/{user_id}").status_code == 200
    full = json.loads(
        json.dumps(golden("okta-put-user-full-object")).replace("test.user@okta.local", user_name)
    )
    full["id"] = user_id
    assert idp("PUT", f"/Users/{user_id}", full).status_code == 200
    if i % 4 == 0:
        assert idp("PATCH", f"/Users/{user_id}", golden("okta-patch-user-deactivate")).ok
    return user_id


def entra_user(idp: Idp, i: int) -> str:
    """Entra: query by userName, create, then its capitalised, string-typed PATCH."""
    user_name = f"entra.user{i}@contoso.example"
    found = idp("GET", "/Users", filter=f'userName eq "{user_name}"')
    assert found.json()["totalResults"] == 0
    created = idp(
        "POST",
        "/Users",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "externalId": f"entra-{i}",
            "userName": user_name,
            "active": True,
            "emails": [{"primary": True, "type": "work", "value": user_name}],
            "name": {"givenName": "Entra", "familyName": f"User{i}"},
            "displayName": f"Entra User{i}",
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    if i % 4 == 0:
        patched = idp("PATCH", f"/Users/{user_id}", golden("entra-patch-user-active-string"))
        assert patched.status_code in (200, 204), patched.text
    return user_id


def okta_groups(idp: Idp, members: list[str]) -> None:
    group = golden("okta-create-group")
    created = idp("POST", "/Groups", group)
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    for member in members:
        patch = golden("okta-patch-group-members")
        patch["Operations"] = [
            {"op": "add", "path": "members", "value": [{"value": member}]},
        ]
        assert idp("PATCH", f"/Groups/{group_id}", patch).status_code in (200, 204)


def entra_groups(idp: Idp, members: list[str]) -> None:
    created = idp("POST", "/Groups", golden("entra-create-group-adscim-schema"))
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    for member in members:
        patch = golden("entra-patch-group-add-members")
        patch["Operations"][0]["value"] = [{"$ref": None, "value": member}]
        assert idp("PATCH", f"/Groups/{group_id}", patch).status_code in (200, 204)


def _idp(server: str, slug: str) -> Idp:
    org = make_org(slug)
    _, token = create_scim_token(system_actor(), org, name="idp")
    db.session.commit()
    idp = Idp(server, slug, token)
    idp.org_id = org.id
    return idp


def test_okta_and_entra_sync_bursts_stay_under_the_limits(app: Flask, server: str) -> None:
    okta, entra = _idp(server, "okta-org"), _idp(server, "entra-org")
    started = time.monotonic()

    def sync(idp: Idp, user: Any, groups: Any) -> None:
        with ThreadPoolExecutor(CONCURRENCY) as pool:  # each IdP its own 10 at a time
            ids = list(pool.map(lambda i: user(idp, i), range(USERS)))
        groups(idp, ids[: USERS // 2])

    with ThreadPoolExecutor(2) as vendors:  # both orgs at once
        runs = [
            vendors.submit(sync, okta, okta_user, okta_groups),
            vendors.submit(sync, entra, entra_user, entra_groups),
        ]
        for run in runs:
            run.result()
    elapsed = time.monotonic() - started
    sent = sum(okta.statuses.values()) + sum(entra.statuses.values())
    print(
        f"\n{sent} SCIM requests in {elapsed:.1f} s ({sent / elapsed:.0f}/s); "
        f"okta {dict(okta.statuses)}, entra {dict(entra.statuses)}"
    )
    assert 429 not in okta.statuses and 429 not in entra.statuses
    assert set(okta.statuses) | set(entra.statuses) <= {200, 201, 204}
    # The writes were counted (the limit was in force, not bypassed): each org's window.
    rate = limiter()
    for idp in (okta, entra):
        key = throughput_key("scim_writes", idp.org_id)
        left = rate.database if rate.redis is None else rate.redis
        stats = left.get_window_stats(rate.limits.scim_writes, key)
        assert rate.limits.scim_writes.amount - stats.remaining == idp.writes
