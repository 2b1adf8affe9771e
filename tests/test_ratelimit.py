"""Rate limits against both stores: the real Redis on 127.0.0.1:6379 and the database table.

Each kind of credential is locked out after N failures (429 with Retry-After, in its
surface's format), the right credential too while locked, never another prefix or another
client IP; counters are shared by two app instances on one database; windows end; login
mails stop at their limits while the answer stays the same.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from limits import parse

from idp import create_app
from idp.actors import system_actor
from idp.config import ConfigError
from idp.credentials.services import create_scim_token
from idp.db import db
from idp.oauth.services import create_client
from idp.orgs import invitations
from idp.ratelimit import DatabaseStorage, RateLimitCounter, limiter, throughput_key
from idp.sessions.services import issue_email_link
from tests.builders import auth, make_key, make_member, make_org, workspace
from tests.forms import form_post
from tests.test_mail import Inbox, start_smtp

REDIS_URL = "redis://127.0.0.1:6379/0"
PER_CREDENTIAL = 3  # failures per credential prefix
PER_IP = 6  # failures per client IP (and kind)
LIMITS = {
    "RATE_LIMIT_CREDENTIAL_FAILURES": f"{PER_CREDENTIAL} per 1 minute",
    "RATE_LIMIT_IP_FAILURES": f"{PER_IP} per 1 minute",
}
REFUSED: dict[str, int] = {}  # 429s per kind over this module's tests (printed at the end)


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def redis_settings(store: str) -> dict[str, Any]:
    if store == "database":
        return {}
    # A prefix of this test's own: parallel runs (SQLite and PostgreSQL) share the Redis.
    return {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": f"gh-test-{secrets.token_hex(6)}"}


@pytest.fixture
def extra_limits() -> dict[str, Any]:
    """Parametrized by the tests that need other limits."""
    return {}


@pytest.fixture
def settings_overrides(redis_settings: dict[str, Any], extra_limits: dict[str, Any]) -> dict:
    return {**LIMITS, **redis_settings, **extra_limits}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print("\nrefused (429) per kind:", dict(sorted(REFUSED.items())))


def _variant(app: Flask, **changes: Any) -> Flask:
    """Another app on the same database and store, with some settings changed."""
    return create_app(replace(app.extensions["gatehouse.settings"], **changes))


@pytest.fixture(autouse=True)
def _clean_redis(app: Flask) -> Iterator[None]:
    yield
    rate = app.extensions["gatehouse.ratelimit"]
    if rate.redis is not None:
        rate.redis.storage.reset()  # only this test's prefix


@dataclass
class Kind:
    """One kind of credential: how to make a good one, send one, and one of the same prefix."""

    name: str
    make: Callable[[], Any]  # a fresh good credential
    send: Callable[[FlaskClient, Any, str], Any]  # (client, credential, ip) -> response
    same_prefix_wrong: Callable[[Any, int], Any]
    random_wrong: Callable[[int], Any]
    ok: int  # the good credential's status
    refused: int  # a wrong one's status
    check_body: Callable[[Any], None]


def _ip(ip: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def _token_like(token: str, i: int) -> str:
    return token[:12] + f"wrong{i}" + secrets.token_urlsafe(20)


def _scim_body(response: Any) -> None:
    assert response.content_type == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "429"


def _api_body(response: Any) -> None:
    body = response.get_json()
    assert body["error"] == "rate_limited"
    assert body["retry_after"] == int(response.headers["Retry-After"])


def _oauth_body(response: Any) -> None:
    body = response.get_json()
    assert body["error"] == "temporarily_unavailable"
    assert response.headers["Cache-Control"] == "no-store"


def _page_body(response: Any) -> None:
    assert response.mimetype == "text/html"
    assert "Too many attempts" in response.get_data(as_text=True)


def _scim_kind() -> Kind:
    def make() -> Any:
        org = make_org(f"o{secrets.token_hex(4)}")
        _, token = create_scim_token(system_actor(), org, name="idp")
        db.session.commit()
        return (org.slug, token)

    def send(client: FlaskClient, cred: Any, ip: str) -> Any:
        slug, token = cred
        return client.get(f"/scim/v2/{slug}/Users", headers=auth(token), **_ip(ip))

    return Kind(
        "scim_token",
        make,
        send,
        lambda cred, i: (cred[0], _token_like(cred[1], i)),
        lambda i: ("nobody", "ghs_" + secrets.token_urlsafe(32)),
        200,
        401,
        _scim_body,
    )


def _api_key_kind() -> Kind:
    def make() -> Any:
        key = make_key()
        db.session.commit()
        return key

    def send(client: FlaskClient, key: Any, ip: str) -> Any:
        return client.get("/api/v1/orgs", headers=auth(key), **_ip(ip))

    return Kind(
        "api_key",
        make,
        send,
        _token_like,
        lambda i: "ghk_" + secrets.token_urlsafe(32),
        200,
        401,
        _api_body,
    )


def _oauth_kind() -> Kind:
    def make() -> Any:
        client, secret = create_client(
            workspace().id, name="Web app", redirect_uris=["https://app.example/cb"]
        )
        db.session.commit()
        return (client.client_id, secret)

    def send(client: FlaskClient, cred: Any, ip: str) -> Any:
        raw = f"{cred[0]}:{cred[1]}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return client.post("/oauth/introspect", data={"token": "x"}, headers=headers, **_ip(ip))

    return Kind(
        "oauth_client",
        make,
        send,
        lambda cred, i: (cred[0], f"wrong-secret-{i}"),
        lambda i: (f"client-{secrets.token_hex(6)}", "wrong"),
        200,
        401,
        _oauth_body,
    )


def _invitation_kind() -> Kind:
    org_slug = f"i{secrets.token_hex(4)}"

    def make() -> Any:
        from idp.orgs.models import Organization

        org = db.session.scalar(db.select(Organization).where(Organization.slug == org_slug))
        org = org or make_org(org_slug)
        _, token = invitations.create_invite_link(system_actor(), org)
        db.session.commit()
        return token

    def send(client: FlaskClient, token: Any, ip: str) -> Any:
        return client.get("/invitations/accept", query_string={"token": token}, **_ip(ip))

    return Kind(
        "invitation",
        make,
        send,
        _token_like,
        lambda i: "ghi_" + secrets.token_urlsafe(32),
        200,
        404,
        _page_body,
    )


def _invitation_api_kind() -> Kind:
    base = _invitation_kind()

    def make() -> Any:
        org = make_org(f"j{secrets.token_hex(4)}")
        email = f"x{secrets.token_hex(4)}@example.com"
        _, token = invitations.invite_by_email(system_actor(), org, email=email)
        db.session.commit()
        return token

    def send(client: FlaskClient, token: Any, ip: str) -> Any:
        return client.post("/api/v1/invitations/reject", json={"token": token}, **_ip(ip))

    return Kind("invitation_api", make, send, _token_like, base.random_wrong, 200, 404, _api_body)


def _email_link_kind() -> Kind:
    def make() -> Any:
        org = make_org(f"e{secrets.token_hex(4)}")
        member = make_member(org, f"m{secrets.token_hex(4)}@example.com")
        _, token = issue_email_link(member.user.email)
        db.session.commit()
        return token

    def send(client: FlaskClient, token: Any, ip: str) -> Any:
        return form_post(client, "/login/email", query_string={"token": token}, **_ip(ip))

    return Kind(
        "email_link",
        make,
        send,
        _token_like,
        lambda i: "ghl_" + secrets.token_urlsafe(32),
        303,
        401,
        _page_body,
    )


KINDS = {
    "scim_token": _scim_kind,
    "api_key": _api_key_kind,
    "oauth_client": _oauth_kind,
    "invitation": _invitation_kind,
    "invitation_api": _invitation_api_kind,
    "email_link": _email_link_kind,
}


def _refused(kind: Kind, response: Any, label: str = "") -> None:
    """A 429 in the kind's format, with a Retry-After of whole seconds within the window."""
    assert response.status_code == 429, response.get_data(as_text=True)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    kind.check_body(response)
    label = label or kind.name
    REFUSED[label] = REFUSED.get(label, 0) + 1


@pytest.mark.parametrize("name", list(KINDS))
def test_failures_lock_out_the_prefix_and_the_ip_and_nothing_else(
    app: Flask, client: FlaskClient, name: str
) -> None:
    kind = KINDS[name]()
    good = kind.make()
    other = kind.make()  # another holder's credential (another org's IdP, another app)
    # 1. From one IP, wrong credentials sharing the good one's prefix: the prefix locks.
    for i in range(PER_CREDENTIAL):
        assert kind.send(client, kind.same_prefix_wrong(good, i), "10.0.0.1").status_code == (
            kind.refused
        )
    _refused(kind, kind.send(client, kind.same_prefix_wrong(good, 99), "10.0.0.1"))
    # 2. The right credential from a clean IP is refused too while its prefix is locked.
    _refused(kind, kind.send(client, good, "10.0.0.2"))
    # 3. Another prefix from the guessing IP (under its own limit) is not locked out.
    assert kind.send(client, other, "10.0.0.1").status_code == kind.ok
    # 4. Random guesses from another IP, each its own prefix: the IP locks after PER_IP.
    for i in range(PER_IP):
        assert kind.send(client, kind.random_wrong(i), "10.0.0.3").status_code == kind.refused
    _refused(kind, kind.send(client, kind.random_wrong(99), "10.0.0.3"))
    fresh = kind.make()
    _refused(kind, kind.send(client, fresh, "10.0.0.3"))  # right, but from the locked IP
    assert kind.send(client, fresh, "10.0.0.4").status_code == kind.ok  # elsewhere: fine


def test_counters_are_shared_by_two_app_instances(app: Flask, client: FlaskClient) -> None:
    """Two create_app on one database (two workers, two hosts): failures add up."""
    kind = _api_key_kind()
    key = kind.make()
    other_app = _variant(app)
    other = other_app.test_client()
    try:
        for i in range(PER_CREDENTIAL):
            by = client if i % 2 == 0 else other
            assert kind.send(by, _token_like(key, i), "10.1.0.1").status_code == 401
        _refused(kind, kind.send(other, key, "10.1.0.2"))
        _refused(kind, kind.send(client, key, "10.1.0.2"))
    finally:
        with other_app.app_context():
            db.engine.dispose()
            limiter().dispose()


def _poll(condition: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize("extra_limits", [{"RATE_LIMIT_CREDENTIAL_FAILURES": "2 per 2 seconds"}])
def test_the_window_ends_and_the_right_credential_works_again(
    app: Flask, client: FlaskClient
) -> None:
    kind = _scim_kind()
    good = kind.make()
    for i in range(2):
        assert kind.send(client, kind.same_prefix_wrong(good, i), "10.2.0.1").status_code == 401
    _refused(kind, kind.send(client, good, "10.2.0.1"))
    # The next answer other than 429 is the good one's 200, within the 2-second window.
    statuses: list[int] = []
    assert _poll(
        lambda: (
            statuses.append(kind.send(client, good, "10.2.0.1").status_code)
            or (statuses[-1] != 429)
        )
    )
    assert statuses[-1] == 200
    REFUSED["scim_token_window"] = REFUSED.get("scim_token_window", 0) + statuses.count(429)


def test_a_window_ends_in_the_store(app: Flask, store: str) -> None:
    """The store directly: a 1-second window ends (polled, never slept through blindly)."""
    rate = limiter()
    item = parse("2 per 1 second")
    key = f"probe/{secrets.token_hex(4)}"
    assert rate.hit(item, key) is None
    assert rate.hit(item, key) is None
    assert rate.hit(item, key) == 1
    assert rate.retry_after(item, key) == 1
    assert _poll(lambda: rate.retry_after(item, key) is None)
    assert rate.hit(item, key) is None  # a new window, counted from one


def test_a_rolled_back_request_still_counts_its_failure(app: Flask, client: FlaskClient) -> None:
    """A used-up email link writes (the UPDATE) then fails: counted once the rollback freed
    SQLite's write lock, on its own connection (no self-deadlock, no lost count)."""
    kind = _email_link_kind()
    token = kind.make()
    assert kind.send(client, token, "10.3.0.1").status_code == 303  # uses it up
    for _ in range(PER_CREDENTIAL):
        assert kind.send(client, token, "10.3.0.2").status_code == 401
    _refused(kind, kind.send(client, token, "10.3.0.3"))


def test_scim_writes_per_org(app: Flask, client: FlaskClient, redis_settings: Any) -> None:
    """The write throughput of one org; another org's IdP writes on."""
    limited = _variant(app, rate_limit_scim_writes="3 per 1 minute")
    other = limited.test_client()
    try:
        kind = _scim_kind()
        slug, token = kind.make()
        other_slug, other_token = kind.make()
        for i in range(3):
            body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}
            body["userName"] = f"u{i}@example.com"
            response = other.post(f"/scim/v2/{slug}/Users", json=body, headers=auth(token))
            assert response.status_code == 201, response.get_json()
        body["userName"] = "over@example.com"
        over = other.post(f"/scim/v2/{slug}/Users", json=body, headers=auth(token))
        _refused(kind, over, "scim_writes")
        assert other.get(f"/scim/v2/{slug}/Users", headers=auth(token)).status_code == 200
        created = other.post(f"/scim/v2/{other_slug}/Users", json=body, headers=auth(other_token))
        assert created.status_code == 201
    finally:
        with limited.app_context():
            db.engine.dispose()
            limiter().dispose()


def test_counters_never_wait_on_the_apps_pool(app: Flask) -> None:
    """A request holding its session's only pooled connection still counts: the database
    counters draw from their own pool (sharing one, a burst of requests each holding one
    and waiting for a second deadlocked until the pool's timeout)."""
    single = _variant(app, database_pool_size=1, database_max_overflow=0)
    browser = single.test_client()
    try:
        org = make_org("one-pool")
        _, token = create_scim_token(system_actor(), org, name="idp")
        db.session.commit()
        slug = org.slug
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}
        body["userName"] = "one@example.com"
        started = time.monotonic()
        created = browser.post(f"/scim/v2/{slug}/Users", json=body, headers=auth(token))
        assert created.status_code == 201, created.get_json()
        assert browser.get(f"/scim/v2/{slug}/Users", headers=auth("wrong")).status_code == 401
        assert time.monotonic() - started < 10  # the app pool's 30 s timeout never ran out
        with single.app_context():
            rate = limiter()
            store = rate.database if rate.redis is None else rate.redis
            stats = store.get_window_stats(
                rate.limits.scim_writes, throughput_key("scim_writes", org.id)
            )
            assert rate.limits.scim_writes.amount - stats.remaining == 1
    finally:
        with single.app_context():
            db.engine.dispose()
            limiter().dispose()


def test_token_endpoint_per_client(app: Flask, redis_settings: Any) -> None:
    limited = _variant(app, rate_limit_token_requests="2 per 1 minute")
    browser = limited.test_client()
    try:
        kind = _oauth_kind()
        client_id, secret = kind.make()
        raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        headers = {"Authorization": "Basic " + raw}
        form = {"grant_type": "refresh_token", "refresh_token": "ghr_unknown"}
        for _ in range(2):
            response = browser.post("/oauth/token", data=form, headers=headers)
            assert response.get_json()["error"] == "invalid_grant"
        _refused(kind, browser.post("/oauth/token", data=form, headers=headers), "token_requests")
        other_id, other_secret = kind.make()
        raw = base64.b64encode(f"{other_id}:{other_secret}".encode()).decode()
        response = browser.post(
            "/oauth/token", data=form, headers={"Authorization": "Basic " + raw}
        )
        assert response.get_json()["error"] == "invalid_grant"
    finally:
        with limited.app_context():
            db.engine.dispose()
            limiter().dispose()


# --- login mails ------------------------------------------------------------------------


@pytest.fixture
def smtp_inbox() -> Iterator[Inbox]:
    controller, inbox = start_smtp()
    try:
        yield inbox
    finally:
        controller.stop()


def _mail_app(app: Flask, inbox: Inbox, **limits: str) -> Flask:
    return _variant(app, smtp_url=f"smtp://127.0.0.1:{inbox.port}", **limits)


def _answer(page: Any) -> str:
    """The page without its request id (the one part that differs on every response)."""
    return re.sub(r"Request [0-9a-f]+", "", page.get_data(as_text=True))


def test_login_mails_per_address_same_answer_no_more_mail(
    app: Flask, smtp_inbox: Inbox, redis_settings: Any
) -> None:
    mailing = _mail_app(app, smtp_inbox, rate_limit_login_mails_per_address="3 per 1 minute")
    browser = mailing.test_client()
    try:
        org = make_org("mailers")
        email = make_member(org, "ada@example.com").user.email
        db.session.commit()
        pages = [form_post(browser, "/login", {"email": email}) for _ in range(6)]
        assert {p.status_code for p in pages} == {200}
        assert len({_answer(p) for p in pages}) == 1  # the same answer
        assert len(smtp_inbox.messages) == 3
        REFUSED["login_mail_address"] = REFUSED.get("login_mail_address", 0) + 3
        unknown = form_post(browser, "/login", {"email": "nobody@example.com"})
        assert _answer(unknown) == _answer(pages[0])
    finally:
        with mailing.app_context():
            db.engine.dispose()
            limiter().dispose()


def test_login_mails_per_ip(app: Flask, smtp_inbox: Inbox, redis_settings: Any) -> None:
    mailing = _mail_app(app, smtp_inbox, rate_limit_login_mails_per_ip="4 per 1 minute")
    browser = mailing.test_client()
    try:
        org = make_org("mailers")
        emails = [make_member(org, f"p{i}@example.com").user.email for i in range(6)]
        db.session.commit()
        for email in emails:
            page = form_post(browser, "/login", {"email": email}, **_ip("10.4.0.1"))
            assert page.status_code == 200
        assert len(smtp_inbox.messages) == 4
        page = form_post(browser, "/login", {"email": emails[5]}, **_ip("10.4.0.2"))
        assert len(smtp_inbox.messages) == 5  # another IP sends
        REFUSED["login_mail_ip"] = REFUSED.get("login_mail_ip", 0) + 2
    finally:
        with mailing.app_context():
            db.engine.dispose()
            limiter().dispose()


# --- settings and the store itself ---------------------------------------------------------


def test_a_malformed_limit_stops_start_up(app: Flask) -> None:
    with pytest.raises(ConfigError, match="GATEHOUSE_RATE_LIMIT_IP_FAILURES"):
        _variant(app, rate_limit_ip_failures="lots")


def test_trusted_proxies_take_the_forwarded_client_ip(app: Flask) -> None:
    proxied = _variant(app, trusted_proxies=1)
    browser = proxied.test_client()
    try:
        key = make_key()
        db.session.commit()
        for i in range(PER_IP):
            headers = {**auth(f"ghk_wrong{i}"), "X-Forwarded-For": "203.0.113.7"}
            assert browser.get("/api/v1/orgs", headers=headers).status_code == 401
        locked = {**auth(key), "X-Forwarded-For": "203.0.113.7"}
        assert browser.get("/api/v1/orgs", headers=locked).status_code == 429
        REFUSED["api_key"] = REFUSED.get("api_key", 0) + 1
        # Without the setting, a forged X-Forwarded-For changes nothing: the peer counts.
        other = {**auth(key), "X-Forwarded-For": "203.0.113.7"}
        assert app.test_client().get("/api/v1/orgs", headers=other).status_code == 200
    finally:
        with proxied.app_context():
            db.engine.dispose()
            limiter().dispose()


def test_the_database_store_sweeps_ended_windows(app: Flask) -> None:
    storage = DatabaseStorage(lambda: db.engine)
    storage.CLEANUP_EVERY = 3
    for i in range(2):
        storage.incr(f"sweep/{i}", -1)  # already ended
    storage.incr("sweep/live", 60)  # the third increment sweeps
    keys = set(db.session.scalars(db.select(RateLimitCounter.key)))
    assert keys == {"sweep/live"}


def test_the_sso_address_confirmation_locks_out_guessed_links(
    app: Flask, client: FlaskClient
) -> None:
    """The link that finishes an SSO sign-in (``/sso/confirm``) is an email-link token too."""
    kind = _email_link_kind()
    guess = "ghl_" + secrets.token_urlsafe(32)
    for i in range(PER_CREDENTIAL):
        token = _token_like(guess, i)
        response = form_post(
            client, "/sso/confirm", query_string={"token": token}, **_ip("10.5.0.1")
        )
        assert response.status_code == 403
    response = form_post(client, "/sso/confirm", query_string={"token": guess}, **_ip("10.5.0.2"))
    _refused(kind, response, "sso_confirm")
