"""Run benchmarks: ``python -m bench.run [names...] [--database sqlite|postgres]``.

Writes ``bench/results/<UTC timestamp>.json`` and prints a table. Kept free of heavy imports:
the load generator's spawned processes import this module again.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.deploy import BACKENDS, DEFAULT_POSTGRES_URL, RunOptions
from bench.report import Report, format_table, machine_info, report_dict, write_json

BENCHMARKS = {
    "forward_auth": "bench.forward_auth",
    "members_list": "bench.members_list",
    "console_members": "bench.console_members",
    "permission_decisions": "bench.permission_decisions",
    "resource_decisions": "bench.resource_decisions",
    "scim_provisioning": "bench.scim_provisioning",
    "scim_lookup": "bench.scim_lookup",
    "scim_group_patch": "bench.scim_group_patch",
    "sso_login": "bench.sso_login",
    "oidc_provider": "bench.oidc_provider",
}
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Run benchmarks against a throwaway gunicorn deployment on loopback.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--database", choices=BACKENDS, default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server where a throwaway database is created and dropped (default: %(default)s)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return args


def run_one(name: str, options: RunOptions) -> Report:
    """Run one benchmark; a failure becomes the report's ``error`` instead of stopping the run."""
    started = time.monotonic()
    try:
        report = importlib.import_module(BENCHMARKS[name]).run(options)
    except Exception as exc:
        traceback.print_exc()
        report = Report(name, error=f"{type(exc).__name__}: {exc}")
    report.details["wall_seconds"] = round(time.monotonic() - started, 1)
    return report


def _stop_on_sigterm(signum: int, _frame: Any) -> None:
    # Unwind through the context managers, so servers stop and databases are dropped.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, write the JSON, print the table; exit 1 if any benchmark failed."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    options = RunOptions(database=args.database, postgres_url=args.postgres_url)
    started = datetime.now(UTC)
    machine = machine_info(args.database)
    reports = []
    for name in args.names or list(BENCHMARKS):
        print(f"running {name} on {args.database} ...", file=sys.stderr, flush=True)
        reports.append(run_one(name, options))
    versions = {r.details.get("database_version") for r in reports} - {None}
    machine["database_version"] = ", ".join(sorted(versions)) or None
    payload = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": machine,
        "benchmarks": [report_dict(r) for r in reports],
    }
    path = write_json(args.results_dir, started.strftime("%Y%m%dT%H%M%SZ"), payload)
    print(format_table(reports))
    print(f"\nresults: {path}")
    return 1 if any(r.error for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
