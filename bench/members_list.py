"""members_list: ms per page when paging through an org of 10,000 members over HTTP."""

from __future__ import annotations

from urllib.parse import urlencode

from bench.deploy import BenchmarkError, RunOptions, ServerOptions, deployment
from bench.load import Client, summarize
from bench.report import Report
from bench.seed import seed_org

MEMBERS = 10_000
PAGE_SIZE = 100
WARMUP_ROUNDS = 1
ROUNDS = 3
FIRST_PAGE_WARMUP = 5
FIRST_PAGE_SAMPLES = 30
SERVER = ServerOptions(workers=2, threads=2, worker_class="gthread")


def _path(slug: str, **query: str | int) -> str:
    return f"/api/v1/orgs/{slug}/members?{urlencode({'limit': PAGE_SIZE, **query})}"


def _page_through(client: Client, slug: str) -> tuple[list[float], int]:
    """One full round following ``next_cursor``: ms per page, and members seen."""
    times: list[float] = []
    seen: set[str] = set()
    cursor: str | None = None
    while True:
        reply = client.get(_path(slug, cursor=cursor) if cursor else _path(slug))
        if reply.status != 200:
            raise BenchmarkError(f"members page: HTTP {reply.status}: {reply.body[:300]!r}")
        body = reply.json()
        times.append(reply.ms)
        seen.update(m["user_id"] for m in body["data"])
        cursor = body["next_cursor"]
        if not cursor:
            return times, len(seen)
        if len(times) > MEMBERS // PAGE_SIZE + 1:
            raise BenchmarkError("the cursor never ends: more pages than members")


def _first_page(client: Client, path: str, expected: int) -> list[float]:
    """Milliseconds for the first page of a filtered list, checking how many it finds."""
    times = []
    for i in range(FIRST_PAGE_WARMUP + FIRST_PAGE_SAMPLES):
        reply = client.get(path)
        if reply.status != 200:
            raise BenchmarkError(f"{path}: HTTP {reply.status}: {reply.body[:300]!r}")
        found = len(reply.json()["data"])
        if found != expected:
            raise BenchmarkError(f"{path}: {found} members, expected {expected}")
        if i >= FIRST_PAGE_WARMUP:
            times.append(reply.ms)
    return times


def run(options: RunOptions) -> Report:
    """Seed 10,000 members, then time pages, a search and a role filter from this process."""
    report = Report(
        "members_list",
        params={
            "members": MEMBERS,
            "page_size": PAGE_SIZE,
            "rounds": ROUNDS,
            "warmup_rounds": WARMUP_ROUNDS,
            "first_page_samples": FIRST_PAGE_SAMPLES,
            "server": SERVER.as_dict(),
            "key": "workspace",
        },
    )
    with deployment(options, lambda: seed_org(members=MEMBERS), SERVER) as (dep, org):
        report.details["database_version"] = dep.database_version
        client = Client(dep.host, dep.port, org.workspace_key)
        try:
            pages: list[float] = []
            for round_no in range(WARMUP_ROUNDS + ROUNDS):
                times, seen = _page_through(client, org.slug)
                if seen != MEMBERS:
                    raise BenchmarkError(f"a full round saw {seen} members, not {MEMBERS}")
                if round_no >= WARMUP_ROUNDS:
                    pages.extend(times)
            # The search term matches one user, so the database must look at every member.
            term = org.email(MEMBERS - 1 - MEMBERS // 3).split("@")[0]
            search = _first_page(client, _path(org.slug, q=term), expected=1)
            owners = _first_page(client, _path(org.slug, role="owner"), expected=1)
        finally:
            client.close()

    page = summarize(pages)
    q = summarize(search)
    role = summarize(owners)
    report.details.update(page=page, q_first_page=q, role_owner_first_page=role)
    median = report.add("page_median", page["median"], "ms/page")
    p95 = report.add("page_p95", page["p95"], "ms/page")
    report.add_ratio("q_first_page_median", q["median"], "ms/page", median)
    report.add_ratio("q_first_page_p95", q["p95"], "ms/page", p95)
    report.add_ratio("role_owner_first_page_median", role["median"], "ms/page", median)
    report.add_ratio("role_owner_first_page_p95", role["p95"], "ms/page", p95)
    return report
