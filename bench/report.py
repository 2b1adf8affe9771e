"""Benchmark results: one row per measured figure, written as JSON and printed as a table."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Result:
    """One measured figure; ``ratio`` is ``value`` over the ``baseline`` figure of the same run."""

    benchmark: str
    metric: str
    value: float
    unit: str
    ratio: float | None = None
    baseline: str | None = None


@dataclass
class Report:
    """What one benchmark returns: its figures and the parameters they were measured with."""

    name: str
    results: list[Result] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def add(self, metric: str, value: float, unit: str) -> Result:
        """Record a figure and return it (to serve as a baseline)."""
        result = Result(self.name, metric, value, unit)
        self.results.append(result)
        return result

    def add_ratio(self, metric: str, value: float, unit: str, baseline: Result) -> Result:
        """Record a figure with its ratio to ``baseline`` (measured in the same run)."""
        ratio = value / baseline.value if baseline.value else None
        result = Result(self.name, metric, value, unit, ratio, baseline.metric)
        self.results.append(result)
        return result


def machine_info(database: str, database_version: str | None = None) -> dict[str, Any]:
    """What the figures depend on besides the code: CPUs, load, Python, database."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "database": database,
        "database_version": database_version,
    }


def write_json(directory: Path, stamp: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``<directory>/<stamp>.json`` and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def report_dict(report: Report) -> dict[str, Any]:
    """A report as plain JSON-ready data."""
    return {
        "name": report.name,
        "params": report.params,
        "results": [asdict(r) for r in report.results],
        "details": report.details,
        "error": report.error,
    }


def _format_value(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"


def format_table(reports: list[Report]) -> str:
    """A plain-text table of every figure, then one line per failed benchmark."""
    header = ("benchmark", "metric", "value", "unit", "ratio", "baseline")
    rows = [
        (
            r.benchmark,
            r.metric,
            _format_value(r.value),
            r.unit,
            "" if r.ratio is None else f"{r.ratio:.3f}",
            r.baseline or "",
        )
        for report in reports
        for r in report.results
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    numeric = {2, 4}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths))]
    out += [line(row) for row in rows]
    out += [f"{report.name}: FAILED: {report.error}" for report in reports if report.error]
    return "\n".join(out)
