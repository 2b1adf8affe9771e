"""permission_decisions: admin API requests/s that each decide a permission, vs a bare endpoint."""

from __future__ import annotations

from bench.deploy import BenchmarkError, RunOptions, ServerOptions, deployment
from bench.load import Client, Target, generate_load
from bench.report import Report
from bench.seed import seed_org

MEMBERS = 100  # the decision path reads the key and the org, never the member list
CONCURRENCY = 4  # one keep-alive connection per load process, as many as server threads
WARMUP = 1.0
WINDOW = 1.25  # counted seconds per segment; 4 segments per target, so 5 s each
SETTLE = 0.1  # uncounted seconds at each switch, for requests still in flight
ORDER = "ABBAABBA"  # A = bare, B = decision; the mirrored order cancels a linear drift
SERVER = ServerOptions(workers=2, threads=2, worker_class="gthread")
BARE = "/healthz"


def _check(client: Client, path: str, key: str, value: str) -> None:
    """One request before the load: the endpoint answers 200 with what it should."""
    reply = client.get(path)
    if reply.status != 200 or reply.json().get(key) != value:
        raise BenchmarkError(f"{path}: HTTP {reply.status}: {reply.body[:300]!r}")


def run(options: RunOptions) -> Report:
    """Load ``/healthz`` and ``GET /api/v1/orgs/<slug>`` (org key) in turn; report the ratio."""
    report = Report(
        "permission_decisions",
        params={
            "bare": f"GET {BARE}",
            "decision": "GET /api/v1/orgs/<slug> (org-scoped admin key, org:read)",
            "concurrency": CONCURRENCY,
            "warmup_s": WARMUP,
            "window_s": WINDOW,
            "settle_s": SETTLE,
            "order": ORDER,
            "server": SERVER.as_dict(),
            "load": "Python processes (spawn), one keep-alive connection each",
        },
    )
    with deployment(options, lambda: seed_org(members=MEMBERS), SERVER) as (dep, org):
        report.details["database_version"] = dep.database_version
        decision = f"/api/v1/orgs/{org.slug}"
        client = Client(dep.host, dep.port, org.org_key)
        try:
            _check(client, BARE, "status", "ok")
            _check(client, decision, "slug", org.slug)
        finally:
            client.close()
        targets = {"A": Target(BARE), "B": Target(decision, token=org.org_key)}
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
    bare = report.add("bare_rps", load.rps(BARE), "req/s")
    report.add_ratio("decisions_rps", load.rps(decision), "req/s", bare)
    return report
