"""The client side: a keep-alive HTTP client, latency statistics, a multi-process load generator.

Standard library only, so the spawned load processes start quickly.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import queue
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REQUEST_TIMEOUT = 10.0
BARRIER_TIMEOUT = 60.0
MAX_REQUESTS_PER_CONNECTION = 1_000_000
IDLE_REOPEN = 1.0  # seconds; below gunicorn's default keep-alive of 2 s
MAX_BATCHES_SECONDS = 300.0  # a whole post_batches run, warm-up included
_RECONNECT = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Reply:
    """One response: status, body, and milliseconds from sending to the last body byte."""

    status: int
    body: bytes
    ms: float

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One HTTP/1.1 connection to the server under test, kept alive between requests."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str | None = None,
        content_type: str = "application/json",
        timeout: float = REQUEST_TIMEOUT,
        cookie: str | None = None,
    ) -> None:
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        if cookie:  # a browser's: the console's pages answer its session
            self._headers["Cookie"] = cookie
        self._content_type = content_type
        self._last_used = 0.0

    def get(self, path: str) -> Reply:
        """GET ``path``; reconnects once if the server closed an idle keep-alive connection."""
        for attempt in (1, 2):
            try:
                return self._exchange("GET", path, None, self._headers)
            except _RECONNECT:
                self._conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def send(self, method: str, path: str, body: Any = None) -> Reply:
        """``method`` with ``body`` as JSON; never resent, since it may not be idempotent.

        A connection idle for longer than the server keeps it alive (gunicorn: 2 s) may be
        closed under the request, so it is reopened first rather than retried after.
        """
        if method == "GET" and body is None:
            return self.get(path)
        if time.monotonic() - self._last_used > IDLE_REOPEN:
            self._conn.close()
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = self._content_type
        return self._exchange(method, path, data, headers)

    def _exchange(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str]
    ) -> Reply:
        start = time.perf_counter()
        self._conn.request(method, path, body=data, headers=headers)
        response = self._conn.getresponse()
        body = response.read()
        reply = Reply(response.status, body, (time.perf_counter() - start) * 1000)
        self._last_used = time.monotonic()
        return reply

    def close(self) -> None:
        self._conn.close()


def summarize(values: list[float]) -> dict[str, float]:
    """Count, median, p95, min and max of a sample."""
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p95": percentile(ordered, 95),
        "min": ordered[0],
        "max": ordered[-1],
    }


def percentile(values: list[float], pct: float) -> float:
    """The ``pct``-th percentile by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Target:
    """What one segment of a load schedule requests."""

    path: str
    token: str | None = None
    expect: int = 200
    method: str = "GET"
    body: bytes | None = None  # JSON, for a POST
    name: str | None = None  # how segments are told apart (default: the path)

    @property
    def key(self) -> str:
        return self.name or self.path

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        return headers


@dataclass(frozen=True)
class Segment:
    """Responses completed inside one segment's window, summed over every connection."""

    path: str
    duration: float
    requests: int
    per_connection: list[int]

    @property
    def rps(self) -> float:
        return self.requests / self.duration


@dataclass(frozen=True)
class LoadRun:
    """A whole schedule: its segments in order, and every failed request (warm-up included)."""

    segments: list[Segment]
    errors: int
    first_error: str | None

    def rps(self, path: str) -> float:
        """Requests per second on ``path`` over all of its segments."""
        mine = [s for s in self.segments if s.path == path]
        return sum(s.requests for s in mine) / sum(s.duration for s in mine)

    def details(self) -> list[dict[str, Any]]:
        """Each segment's path, rate and per-connection counts, for the report."""
        return [
            {"path": s.path, "rps": round(s.rps, 1), "per_connection": s.per_connection}
            for s in self.segments
        ]


def _drive(
    host: str,
    port: int,
    schedule: list[Target],
    warmup: float,
    settle: float,
    window: float,
    barrier: Any,
    results: Any,
) -> None:
    """One load connection: warm up, then count per segment the responses done in its window."""
    conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
    counts = [0] * len(schedule)
    errors = sent = 0
    first_error: str | None = None

    def hit(target: Target, headers: dict[str, str]) -> tuple[bool, float]:
        nonlocal errors, first_error, sent
        conn.request(target.method, target.path, body=target.body, headers=headers)
        response = conn.getresponse()
        body = response.read()
        sent += 1
        if response.status == target.expect:
            return True, time.perf_counter()
        errors += 1
        first_error = first_error or f"{target.key}: HTTP {response.status}: {body[:200]!r}"
        return False, time.perf_counter()

    try:
        conn.connect()
        barrier.wait(BARRIER_TIMEOUT)
        begin = time.perf_counter()
        distinct = list(dict.fromkeys(schedule))
        for i, target in enumerate(distinct):  # warm-up: an equal share of it on each target
            until, headers = begin + warmup * (i + 1) / len(distinct), target.headers
            while time.perf_counter() < until:
                hit(target, headers)
        for k, target in enumerate(schedule):
            opens = begin + warmup + k * (settle + window) + settle
            closes = opens + window
            headers = target.headers
            while sent < MAX_REQUESTS_PER_CONNECTION and time.perf_counter() < closes:
                ok, finished = hit(target, headers)
                if ok and opens <= finished <= closes:
                    counts[k] += 1
        results.put({"counts": counts, "errors": errors, "first_error": first_error})
    except Exception as exc:  # reported to the parent, which fails the benchmark
        barrier.abort()
        errors += 1
        results.put({"counts": counts, "errors": errors, "first_error": repr(exc)})
    finally:
        conn.close()


def _collect(
    processes: list[Any], results: Any, barrier: Any, timeout: float
) -> list[dict[str, Any]]:
    """Every process's outcome; a process that died without reporting fails the load at once."""
    outcomes: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(outcomes) < len(processes):
        try:
            outcomes.append(results.get(timeout=0.2))
            continue
        except queue.Empty:
            pass
        dead = [p for p in processes if p.exitcode not in (None, 0)]
        if dead or time.monotonic() > deadline:
            barrier.abort()  # release the others from the barrier
            why = f"exit code {dead[0].exitcode}" if dead else f"no result in {timeout:.0f}s"
            raise RuntimeError(f"a load process failed ({why})")
    return outcomes


def generate_load(
    host: str,
    port: int,
    schedule: list[Target],
    *,
    concurrency: int = 4,
    warmup: float = 1.0,
    window: float = 1.0,
    settle: float = 0.1,
) -> LoadRun:
    """Follow ``schedule`` from ``concurrency`` processes, one keep-alive connection each."""
    # The processes meet at a barrier, so they share one timeline: ``warmup`` seconds split
    # over the distinct targets, then per segment ``settle`` uncounted seconds (requests in
    # flight from the previous target finish) and a ``window`` in which responses are counted.
    # Interleaving the targets means a noisy neighbour slows them alike. Traffic is bounded:
    # warmup + len(schedule) * (settle + window) seconds, and a request count per connection.
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(concurrency)
    results = ctx.Queue()
    args = (host, port, schedule, warmup, settle, window, barrier, results)
    processes = [ctx.Process(target=_drive, args=args, daemon=True) for _ in range(concurrency)]
    for process in processes:
        process.start()
    traffic = warmup + len(schedule) * (settle + window)
    outcomes: list[dict[str, Any]] = []
    try:
        outcomes = _collect(processes, results, barrier, BARRIER_TIMEOUT + traffic + 30)
    finally:
        for process in processes:
            if not outcomes:  # failed or interrupted: stop the load now
                process.terminate()
            process.join(timeout=REQUEST_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
    segments = [
        Segment(
            path=target.key,
            duration=window,
            requests=sum(o["counts"][k] for o in outcomes),
            per_connection=[o["counts"][k] for o in outcomes],
        )
        for k, target in enumerate(schedule)
    ]
    return LoadRun(
        segments,
        errors=sum(o["errors"] for o in outcomes),
        first_error=next((o["first_error"] for o in outcomes if o["first_error"]), None),
    )


# --- count-based POST batches -----------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """``count`` POSTs of ``path`` to the server on ``port``; ``make_body(tag, n)`` builds each.

    ``tag`` is passed to the body builder so that every batch makes distinct resources.
    """

    port: int
    path: str
    tag: str
    count: int
    token: str | None = None
    content_type: str = "application/json"
    expect: int = 201


@dataclass(frozen=True)
class BatchRun:
    """One batch as measured: from the first connection leaving the barrier to the last reply."""

    batch: Batch
    seconds: float
    ms: list[float]

    @property
    def rate(self) -> float:
        return self.batch.count / self.seconds


def _post_batches(
    host: str,
    batches: list[Batch],
    make_body: Callable[[str, int], Any],
    index: int,
    concurrency: int,
    barrier: Any,
    results: Any,
) -> None:
    """One load connection per batch: its share of the batch's POSTs, back to back."""
    spans: list[dict[str, Any]] = []
    errors = 0
    first_error: str | None = None
    conn: http.client.HTTPConnection | None = None
    try:
        for batch in batches:
            # Bodies are built and the connection opened before the barrier, so the batch's
            # clock measures the server (and the client's sending and reading) only.
            bodies = [
                json.dumps(make_body(batch.tag, n)).encode()
                for n in range(index, batch.count, concurrency)
            ]
            headers = {"Content-Type": batch.content_type}
            if batch.token:
                headers["Authorization"] = f"Bearer {batch.token}"
            # Connect only once every process is done with the previous batch: gunicorn's
            # gthread worker gives a new connection a thread that waits (up to 5 s) for its
            # first request, so an idle new connection could hold the thread a straggler's
            # last request needs, and stall the barrier until that wait times out.
            barrier.wait(BARRIER_TIMEOUT)
            conn = http.client.HTTPConnection(host, batch.port, timeout=REQUEST_TIMEOUT)
            conn.connect()
            barrier.wait(BARRIER_TIMEOUT)
            ms: list[float] = []
            start = time.perf_counter()
            for body in bodies:
                sent = time.perf_counter()
                conn.request("POST", batch.path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                ms.append((time.perf_counter() - sent) * 1000)
                if response.status != batch.expect:
                    errors += 1
                    first_error = first_error or (
                        f"{batch.tag} {batch.path}: HTTP {response.status}: {answer[:200]!r}"
                    )
            spans.append({"start": start, "end": time.perf_counter(), "ms": ms})
            conn.close()
        results.put({"spans": spans, "errors": errors, "first_error": first_error})
    except Exception as exc:  # reported to the parent, which fails the benchmark
        barrier.abort()
        results.put({"spans": spans, "errors": errors + 1, "first_error": repr(exc)})
    finally:
        if conn is not None:
            conn.close()


def post_batches(
    host: str,
    batches: list[Batch],
    make_body: Callable[[str, int], Any],
    *,
    concurrency: int = 4,
) -> tuple[list[BatchRun], int, str | None]:
    """Send the batches in order from ``concurrency`` processes, one keep-alive connection each.

    The processes meet at a barrier before each batch (and again once connected) and share
    its POSTs (process ``i`` sends
    numbers ``i``, ``i + concurrency``, ...); a batch lasts from the first process leaving
    the barrier to the last reply (``time.perf_counter`` is one system-wide clock on Linux).
    ``make_body`` must be importable from a light module: the processes are spawned.
    Returns the measured batches, the number of failed requests and the first failure.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(concurrency)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=_post_batches,
            args=(host, batches, make_body, i, concurrency, barrier, results),
            daemon=True,
        )
        for i in range(concurrency)
    ]
    for process in processes:
        process.start()
    # Bounded: every request times out after REQUEST_TIMEOUT, and the whole load after this.
    budget = len(batches) * BARRIER_TIMEOUT + sum(b.count for b in batches) * REQUEST_TIMEOUT
    outcomes: list[dict[str, Any]] = []
    try:
        outcomes = _collect(processes, results, barrier, min(budget, MAX_BATCHES_SECONDS))
    finally:
        for process in processes:
            if not outcomes:
                process.terminate()
            process.join(timeout=REQUEST_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
    errors = sum(o["errors"] for o in outcomes)
    first_error = next((o["first_error"] for o in outcomes if o["first_error"]), None)
    if errors:
        return [], errors, first_error
    runs = []
    for k, batch in enumerate(batches):
        spans = [o["spans"][k] for o in outcomes]
        seconds = max(s["end"] for s in spans) - min(s["start"] for s in spans)
        runs.append(BatchRun(batch, seconds, [ms for s in spans for ms in s["ms"]]))
    return runs, 0, None
