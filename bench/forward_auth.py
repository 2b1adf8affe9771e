"""forward_auth: ``/auth/check`` requests/s with a live session cookie, vs a bare endpoint, and
for an org whose policy sets a maximum age, an idle timeout and allowed domains (the policy
check on every request, and the once-a-minute record of use), vs the default policy."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any

from bench.deploy import BenchmarkError, RunOptions, ServerOptions, deployment
from bench.load import Target, generate_load
from bench.report import Report

MEMBERS = 10_000  # the org's size; the check reads one membership by (org, user)
OTHER_SESSIONS = 10_000  # live sessions of other members, so the digest lookup is a real one
CONCURRENCY = 4  # one keep-alive connection per load process, as many as server threads
WARMUP = 1.0
WINDOW = 1.25  # counted seconds per segment; 4 segments per target, so 5 s each
SETTLE = 0.1  # uncounted seconds at each switch, for requests still in flight
# A = bare, B = forward-auth (default policy), C = forward-auth in the org with a strict policy;
# the mirrored order cancels a linear drift.
ORDER = "ABCCBAABCCBA"
SERVER = ServerOptions(workers=2, threads=2, worker_class="gthread")
BARE = "/healthz"
CHECK = "/auth/check"
SLUG = "bench"
STRICT_SLUG = "bench-strict"
STRICT_POLICY = {
    "session_max_age": "8h",
    "session_idle_timeout": "30m",
    "allowed_email_domains": ["bench.example"],
}


@dataclass(frozen=True)
class Browser:
    """What the proxy forwards for the seeded person: their session cookie."""

    cookie: str  # the Cookie header's value
    user_id: str


@dataclass(frozen=True)
class ProxiedTarget(Target):
    """A forward-auth request as a proxy sends it: the browser's cookie and the org."""

    cookie: str = ""
    org: str = SLUG

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie, "X-Gatehouse-Org": self.org}


def seed() -> Browser:
    """In an app context: the org, a signed-in member (email link) and other live sessions."""
    # Imported here: the load processes unpickle ProxiedTarget from this module and should not
    # pay for importing the app.
    from datetime import timedelta

    from sqlalchemy import insert, select

    from bench.seed import analyze, member_email, seed_org
    from idp.actors import system_actor
    from idp.crypto import new_token, token_digest
    from idp.db import db, new_id, utcnow
    from idp.login.cookies import SESSION_COOKIE, signed_session_cookie
    from idp.orgs import services
    from idp.orgs.models import Membership, Organization, Workspace
    from idp.people import services as people
    from idp.policies.services import set_org_policy
    from idp.sessions.models import Session, SessionMethod
    from idp.sessions.services import SESSION_TOKEN_PREFIX, start_session
    from idp.users.models import User

    seed_org(slug=SLUG, members=MEMBERS)
    org = db.session.scalar(select(Organization).where(Organization.slug == SLUG))
    user = db.session.scalar(select(User).where(User.email_normalized == member_email(SLUG, 1)))
    _, token = start_session(user, org, method=SessionMethod.EMAIL_LINK, lifetime=timedelta(days=1))
    now = utcnow()
    others = db.session.execute(
        select(Membership.user_id).where(Membership.org_id == org.id).limit(OTHER_SESSIONS)
    ).scalars()
    db.session.execute(
        insert(Session.__table__),
        [
            {
                "id": new_id("ses"),
                "token_digest": token_digest(new_token(SESSION_TOKEN_PREFIX)),
                "workspace_id": org.workspace_id,
                "user_id": user_id,
                "org_id": org.id,
                "method": SessionMethod.EMAIL_LINK.value,
                "amr": ["email"],
                "auth_time": now,
                "expires_at": now + timedelta(days=1),
                "created_at": now,
            }
            for user_id in others
        ],
    )
    # The same person in a second org, whose policy the check then applies on every request.
    workspace = db.session.get(Workspace, org.workspace_id)
    strict = services.create_org(system_actor("bench"), workspace, slug=STRICT_SLUG, name="Strict")
    people.add_member(system_actor("bench"), strict, email=user.email)
    set_org_policy(system_actor("bench"), strict, STRICT_POLICY)
    db.session.commit()
    analyze()
    return Browser(f"{SESSION_COOKIE}={signed_session_cookie(token)}", user.id)


def _check(host: str, port: int, target: Target, expect: dict[str, str]) -> None:
    """One request before the load: 200 with the expected headers."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", target.path, headers=target.headers)
        response = conn.getresponse()
        body = response.read()
        seen = {name: response.getheader(name) for name in expect}
        if response.status != 200 or seen != expect:
            raise BenchmarkError(f"{target.path}: HTTP {response.status} {seen}: {body[:300]!r}")
    finally:
        conn.close()


def run(options: RunOptions) -> Report:
    """Load ``/healthz`` and ``/auth/check`` (a live session) in turn; report the ratio."""
    report = Report(
        "forward_auth",
        params={
            "bare": f"GET {BARE}",
            "check": f"GET {CHECK} (session cookie, X-Gatehouse-Org: {SLUG})",
            "check_strict": f"GET {CHECK} (X-Gatehouse-Org: {STRICT_SLUG}, {STRICT_POLICY})",
            "members": MEMBERS,
            "other_sessions": OTHER_SESSIONS,
            "concurrency": CONCURRENCY,
            "warmup_s": WARMUP,
            "window_s": WINDOW,
            "settle_s": SETTLE,
            "order": ORDER,
            "server": SERVER.as_dict(),
            "load": "Python processes (spawn), one keep-alive connection each",
        },
    )
    with deployment(options, seed, SERVER) as (dep, browser):
        report.details["database_version"] = dep.database_version
        bare = Target(BARE)
        check = ProxiedTarget(CHECK, cookie=browser.cookie)
        _check(dep.host, dep.port, bare, {})
        _check(
            dep.host,
            dep.port,
            check,
            {"X-Gatehouse-User": browser.user_id, "X-Gatehouse-Org": SLUG},
        )
        strict = ProxiedTarget(CHECK + "?policy", cookie=browser.cookie, org=STRICT_SLUG)
        _check(
            dep.host,
            dep.port,
            strict,
            {"X-Gatehouse-User": browser.user_id, "X-Gatehouse-Org": STRICT_SLUG},
        )
        targets: dict[str, Any] = {"A": bare, "B": check, "C": strict}
        load = generate_load(
            dep.host,
            dep.port,
            [targets[letter] for letter in ORDER],
            concurrency=CONCURRENCY,
            warmup=WARMUP,
            window=WINDOW,
            settle=SETTLE,
        )
    if load.errors:
        raise BenchmarkError(f"{load.errors} failed requests under load ({load.first_error})")

    report.details["segments"] = load.details()
    bare_rps = report.add("bare_rps", load.rps(BARE), "req/s")
    check_rps = report.add_ratio("forward_auth_rps", load.rps(CHECK), "req/s", bare_rps)
    report.add_ratio("forward_auth_strict_policy_rps", load.rps(strict.path), "req/s", check_rps)
    return report
