"""scim_lookup: latency of a userName filter in an org of 1,000 vs one of 1,000,000 users."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from urllib.parse import quote

from bench.deploy import BenchmarkError, RunOptions, ServerOptions, deployment
from bench.load import Client, summarize
from bench.report import Report
from bench.seed import ScimOrg, analyze, seed_scim_org

SMALL = 1_000
LARGE = 1_000_000
WARMUP = 30  # lookups per org before the measured ones
SAMPLES = 300  # measured lookups per org
MISSING_EVERY = 10  # one lookup in ten asks for a userName nobody has (Okta's check-then-create)
SERVER = ServerOptions(workers=2, threads=2, worker_class="gthread")
RANDOM_SEED = 7644


@dataclass(frozen=True)
class Orgs:
    small: ScimOrg
    large: ScimOrg
    seed_seconds: float


def _seed() -> Orgs:
    # Both orgs in one database, served by one server: only the org's size differs.
    started = time.monotonic()
    small = seed_scim_org("small", users=SMALL)
    large = seed_scim_org("large", users=LARGE, member_cap=LARGE)
    analyze()
    return Orgs(small, large, time.monotonic() - started)


def _lookup(client: Client, org: ScimOrg, user_name: str, exists: bool) -> float:
    """One filtered list; checks it found exactly that user (or nobody); milliseconds."""
    condition = f'userName eq "{user_name}"'
    path = f"{org.base}/Users?filter={quote(condition)}"
    reply = client.get(path)
    if reply.status != 200:
        raise BenchmarkError(f"{path}: HTTP {reply.status}: {reply.body[:300]!r}")
    body = reply.json()
    found = [r["userName"] for r in body["Resources"]]
    if body["totalResults"] != int(exists) or found != ([user_name] if exists else []):
        raise BenchmarkError(f"{path}: found {found} ({body['totalResults']} in all)")
    if exists and body["Resources"][0]["emails"][0]["value"] != user_name:
        raise BenchmarkError(f"{path}: the seeded user's document is not as provisioned")
    return reply.ms


def run(options: RunOptions) -> Report:
    """Seed 1,000 and 1,000,000 users in two orgs; time userName lookups in each, alternately."""
    report = Report(
        "scim_lookup",
        params={
            "request": 'GET /scim/v2/<org>/Users?filter=userName eq "<userName>"',
            "small_org_users": SMALL,
            "large_org_users": LARGE,
            "warmup_per_org": WARMUP,
            "samples_per_org": SAMPLES,
            "missing_every": MISSING_EVERY,
            "server": SERVER.as_dict(),
            "client": "one keep-alive connection per org, requests one at a time, alternating",
        },
    )
    rng = random.Random(RANDOM_SEED)
    times: dict[str, list[float]] = {"small": [], "large": []}
    misses: dict[str, list[float]] = {"small": [], "large": []}
    with deployment(options, _seed, SERVER) as (dep, orgs):
        report.details["database_version"] = dep.database_version
        report.details["seed_seconds"] = round(orgs.seed_seconds, 1)
        clients = {
            org.slug: Client(dep.host, dep.port, org.token) for org in (orgs.small, orgs.large)
        }
        try:
            for i in range(WARMUP + SAMPLES):
                pair = (orgs.small, orgs.large) if i % 2 == 0 else (orgs.large, orgs.small)
                for org in pair:
                    exists = i % MISSING_EVERY != 0
                    # A number past the org's users names nobody in it.
                    n = rng.randrange(org.users) if exists else org.users + i
                    ms = _lookup(clients[org.slug], org, org.user_name(n), exists)
                    if i >= WARMUP:
                        times[org.slug].append(ms)
                        if not exists:
                            misses[org.slug].append(ms)
        finally:
            for client in clients.values():
                client.close()

    small, large = summarize(times["small"]), summarize(times["large"])
    report.details.update(
        small=small,
        large=large,
        small_missing=summarize(misses["small"]),
        large_missing=summarize(misses["large"]),
    )
    p50 = report.add("lookup_1k_p50", small["median"], "ms")
    p95 = report.add("lookup_1k_p95", small["p95"], "ms")
    report.add_ratio("lookup_1m_p50", large["median"], "ms", p50)
    report.add_ratio("lookup_1m_p95", large["p95"], "ms", p95)
    return report
