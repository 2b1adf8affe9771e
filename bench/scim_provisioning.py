"""scim_provisioning: POST /Users per second, Gatehouse (durable) against scim2-server (memory)."""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
from dataclasses import dataclass

from bench.deploy import HOST, BenchmarkError, RunOptions, ServerOptions, gunicorn, prepared, serve
from bench.load import Batch, BatchRun, Client, post_batches
from bench.payloads import okta_user
from bench.report import Report
from bench.seed import ScimOrg, seed_scim_org

REFERENCE_REQUIREMENT = "scim2-server>=0.8.3"
REFERENCE_APP = "bench.scim2_reference:application"
SCIM_JSON = "application/scim+json"
WARMUP = 100  # creates per server before the measured ones
CREATES = 2_000  # measured creates per server
BATCH = 500  # creates per measured batch; CREATES / BATCH batches per server
CONCURRENCY = 4  # one keep-alive connection per load process, as for permission_decisions
# R = scim2-server, S = Gatehouse on one worker, D = Gatehouse on its default two workers.
# Batches run one at a time; the mirrored order cancels a linear drift (a growing database).
ORDER = "RSDDSRRSDDSR"
# scim2-server keeps its resources in the worker's memory: one worker, or each worker would
# hold its own directory. Gatehouse is measured on the same single worker (the headline
# ratio), and on its usual configuration.
SINGLE = ServerOptions(workers=1, threads=2, worker_class="gthread")
DEFAULT = ServerOptions(workers=2, threads=2, worker_class="gthread")
NAMES = {"R": "scim2_server", "S": "gatehouse_1w", "D": "gatehouse_2w"}


@dataclass(frozen=True)
class Orgs:
    single: ScimOrg
    default: ScimOrg


def _seed() -> Orgs:
    # One org per Gatehouse server, both empty: each server provisions into its own org.
    cap = WARMUP + CREATES + BATCH
    return Orgs(seed_scim_org("solo", member_cap=cap), seed_scim_org("duo", member_cap=cap))


def _require_reference() -> None:
    if importlib.util.find_spec("scim2_server") is None:
        message = (
            "scim_provisioning compares with the reference server scim2-server, which is not "
            f"installed: .venv/bin/pip install '{REFERENCE_REQUIREMENT}'"
        )
        print(message, file=sys.stderr)
        raise BenchmarkError(message)


def _count(port: int, path: str, token: str) -> int:
    """totalResults of a list with no filter: every user the server holds."""
    client = Client(HOST, port, token)
    try:
        reply = client.get(f"{path}?count=0")
    finally:
        client.close()
    if reply.status != 200:
        raise BenchmarkError(f"{path}: HTTP {reply.status}: {reply.body[:300]!r}")
    return reply.json()["totalResults"]


def _rate(runs: list[BatchRun]) -> float:
    return sum(r.batch.count for r in runs) / sum(r.seconds for r in runs)


def run(options: RunOptions) -> Report:
    """Provision users into scim2-server and Gatehouse (1 and 2 workers) in turn; creates/s."""
    _require_reference()
    report = Report(
        "scim_provisioning",
        params={
            "request": "POST /Users, Okta's create body (tests/data/okta-create-user.json)",
            "warmup_per_server": WARMUP,
            "creates_per_server": CREATES,
            "batch": BATCH,
            "order": ORDER,
            "concurrency": CONCURRENCY,
            "load": "Python processes (spawn), one keep-alive connection each per batch",
            "servers": {
                "scim2_server": {**SINGLE.as_dict(), "app": REFERENCE_APP, "storage": "memory"},
                "gatehouse_1w": {**SINGLE.as_dict(), "storage": options.database},
                "gatehouse_2w": {**DEFAULT.as_dict(), "storage": options.database},
            },
            "reference": REFERENCE_REQUIREMENT,
        },
    )
    token = os.urandom(16).hex()
    reference_env = {**os.environ, "SCIM_BEARER_TOKENS": token}
    with prepared(options, _seed) as (base, orgs):
        report.details["database_version"] = base.database_version
        with (
            serve(base, SINGLE, "gatehouse-1w.log") as single,
            serve(base, DEFAULT, "gatehouse-2w.log") as default,
            gunicorn(
                reference_env,
                SINGLE,
                base.directory / "scim2-server.log",
                app=REFERENCE_APP,
                ready_path="/v2/ServiceProviderConfig",
            ) as reference_port,
        ):
            targets = {
                "R": (reference_port, "/v2/Users", token),
                "S": (single.port, f"{orgs.single.base}/Users", orgs.single.token),
                "D": (default.port, f"{orgs.default.base}/Users", orgs.default.token),
            }

            def batch(letter: str, tag: str, count: int) -> Batch:
                port, path, key = targets[letter]
                return Batch(port, path, tag, count, key, SCIM_JSON, expect=201)

            warmups = [batch(letter, f"{letter}w".lower(), WARMUP) for letter in "RSD"]
            measured = [
                batch(letter, f"{letter}{k}".lower(), BATCH) for k, letter in enumerate(ORDER)
            ]
            runs, errors, first_error = post_batches(
                HOST, warmups + measured, okta_user, concurrency=CONCURRENCY
            )
            if errors:
                raise BenchmarkError(f"{errors} failed creates ({first_error})")
            expected = WARMUP + CREATES
            for letter, (port, path, key) in targets.items():
                held = _count(port, path, key)
                if held != expected:
                    raise BenchmarkError(f"{NAMES[letter]} holds {held} users, not {expected}")

    runs = runs[len(warmups) :]
    by_server = {
        letter: [r for r, o in zip(runs, ORDER, strict=True) if o == letter] for letter in "RSD"
    }
    report.details["batches"] = [
        {"server": NAMES[o], "creates": r.batch.count, "per_s": round(r.rate, 1)}
        for r, o in zip(runs, ORDER, strict=True)
    ]
    report.details["create_ms_median"] = {
        NAMES[letter]: round(statistics.median(ms for r in rs for ms in r.ms), 2)
        for letter, rs in by_server.items()
    }
    reference = report.add("scim2_server_creates", _rate(by_server["R"]), "creates/s")
    report.add_ratio("gatehouse_1w_creates", _rate(by_server["S"]), "creates/s", reference)
    report.add_ratio("gatehouse_2w_creates", _rate(by_server["D"]), "creates/s", reference)
    return report
