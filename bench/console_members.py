"""console_members: the console's members page against the admin API's members page, both
the first page (50) of an org of 10,000 members, in one run.

The page is the same list (the same service) plus what a person sees beside it: the counts
per role, the seats, the pending invitations and the forms; it answers a browser's session
cookie (the owner's), the API a key. Requests alternate, A B A B ..., on one keep-alive
connection each, so a noisy neighbour slows both alike. Target: p95 at most 2x the API's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from bench.deploy import BenchmarkError, RunOptions, ServerOptions, deployment
from bench.load import Client, summarize
from bench.report import Report
from bench.seed import SeededOrg, seed_org
from idp.db import db
from idp.login.cookies import SESSION_COOKIE, signed_session_cookie
from idp.orgs.models import Membership, Organization
from idp.orgs.roles import Role
from idp.sessions.services import start_email_session

MEMBERS = 10_000
PAGE = 50
WARMUP = 30
SAMPLES = 300
SERVER = ServerOptions(workers=2, threads=2, worker_class="gthread")


@dataclass(frozen=True)
class Seeded:
    org: SeededOrg
    cookie: str


def _seed() -> Seeded:
    org = seed_org(members=MEMBERS)
    owner = db.session.scalars(
        select(Membership)
        .join(Organization)
        .where(Organization.slug == org.slug, Membership.role == Role.OWNER.value)
    ).one()
    _session, token = start_email_session(
        owner.user, db.session.get(Organization, owner.org_id), lifetime=timedelta(hours=4)
    )
    db.session.commit()
    return Seeded(org, f"{SESSION_COOKIE}={signed_session_cookie(token)}")


def _sample(client: Client, path: str, marker: bytes) -> float:
    reply = client.get(path)
    if reply.status != 200 or marker not in reply.body:
        raise BenchmarkError(f"{path}: HTTP {reply.status}: {reply.body[:300]!r}")
    return reply.ms


def run(options: RunOptions) -> Report:
    report = Report(
        "console_members",
        params={
            "members": MEMBERS,
            "page": PAGE,
            "warmup": WARMUP,
            "samples": SAMPLES,
            "server": SERVER.as_dict(),
        },
    )
    with deployment(options, _seed, SERVER) as (dep, seeded):
        report.details["database_version"] = dep.database_version
        api = Client(dep.host, dep.port, seeded.org.org_key)
        page = Client(dep.host, dep.port, cookie=seeded.cookie)
        api_path = f"/api/v1/orgs/{seeded.org.slug}/members?limit={PAGE}"
        page_path = f"/console/orgs/{seeded.org.slug}/members"
        try:
            api_ms: list[float] = []
            page_ms: list[float] = []
            for i in range(WARMUP + SAMPLES):
                a = _sample(api, api_path, b'"next_cursor"')
                b = _sample(page, page_path, b"Members of ")
                if i >= WARMUP:
                    api_ms.append(a)
                    page_ms.append(b)
        finally:
            api.close()
            page.close()
    api_stats, page_stats = summarize(api_ms), summarize(page_ms)
    report.details.update(api=api_stats, page=page_stats)
    api_p95 = report.add("api_members_p95", api_stats["p95"], "ms")
    report.add("api_members_median", api_stats["median"], "ms")
    report.add_ratio("console_members_p95", page_stats["p95"], "ms", api_p95)
    report.add("console_members_median", page_stats["median"], "ms")
    return report
