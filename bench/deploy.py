"""A throwaway deployment: fresh database, migrated and seeded, served by gunicorn on loopback."""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgres")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 120.0

T = TypeVar("T")


class BenchmarkError(RuntimeError):
    """The benchmark cannot produce a trustworthy figure; the message says why."""


@dataclass(frozen=True)
class RunOptions:
    """What the runner passes to every benchmark."""

    database: str = "sqlite"
    postgres_url: str = DEFAULT_POSTGRES_URL


@dataclass(frozen=True)
class ServerOptions:
    """How gunicorn is started; gthread keeps client connections alive between requests."""

    workers: int = 2
    threads: int = 2
    worker_class: str = "gthread"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Deployment:
    """A running server and where its state lives."""

    backend: str
    database_url: str
    database_version: str
    instance_path: Path
    host: str
    port: int
    server: ServerOptions


def tool(name: str) -> str:
    """A console script of the virtualenv running this process (``gunicorn``, ``gatehouse``)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise BenchmarkError(
            f"{name} not found next to {sys.executable}; run with .venv/bin/python"
        )
    return str(path)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# Benchmarks measure throughput above the default throughput limits: every request still
# pays for its count, none is refused for it.
THROUGHPUT_LIMITS = {
    "RATE_LIMIT_SCIM_WRITES": "1000000 per minute",
    "RATE_LIMIT_TOKEN_REQUESTS": "1000000 per minute",
}


def _environment(instance_path: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GATEHOUSE_ENV="development",
        GATEHOUSE_INSTANCE_PATH=str(instance_path),
        GATEHOUSE_DATABASE_URL=database_url,
        **{f"GATEHOUSE_{name}": value for name, value in THROUGHPUT_LIMITS.items()},
    )
    return env


def app_overrides(instance_path: Path, database_url: str) -> dict[str, str]:
    """The same settings as ``_environment``, for ``create_app`` in this process."""
    return {
        "ENV": "development",
        "INSTANCE_PATH": str(instance_path),
        "DATABASE_URL": database_url,
        **THROUGHPUT_LIMITS,
    }


@contextmanager
def throwaway_database(
    backend: str, directory: Path, postgres_url: str
) -> Iterator[tuple[str, str]]:
    """A fresh database's URL and server version: a SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'gatehouse.db'}", sqlite3.sqlite_version
        return
    if backend != "postgres":
        raise BenchmarkError(f"unknown database backend {backend!r}")
    from sqlalchemy import create_engine, make_url, text

    url = make_url(postgres_url)
    name = f"gatehouse_bench_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False), version
    finally:
        # FORCE: a server that did not stop cleanly must not keep the database alive.
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrate(env: dict[str, str]) -> None:
    """``gatehouse db upgrade`` in a child process, as an operator would run it."""
    done = subprocess.run(
        [tool("gatehouse"), "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchmarkError(f"gatehouse db upgrade failed:\n{done.stderr[-2000:]}")


def seed_with(instance_path: Path, database_url: str, seed: Callable[[], T]) -> T:
    """Run ``seed()`` inside an app context of an app built like the server's."""
    from idp import create_app
    from idp.db import db

    app = create_app(app_overrides(instance_path, database_url))
    with app.app_context():
        try:
            return seed()
        finally:
            db.session.remove()
            db.engine.dispose()


def _wait_until_ready(
    process: subprocess.Popen[bytes], port: int, log: Path, ready_path: str
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"gunicorn exited with {process.returncode}:\n{_tail(log)}")
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", ready_path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise BenchmarkError(f"gunicorn did not answer {ready_path} within {START_TIMEOUT:.0f}s")


def _tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the master (it stops its workers); SIGKILL its process group if it hangs."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # The group is the session gunicorn was started in: only its master and workers.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def gunicorn(
    env: dict[str, str],
    options: ServerOptions,
    log: Path,
    *,
    app: str = "wsgi:app",
    ready_path: str = "/healthz",
) -> Iterator[int]:
    """Serve ``app`` on a free loopback port until the block ends; yields the port.

    ``ready_path`` is polled until it answers 200 (another app than Gatehouse has no
    ``/healthz``).
    """
    port = free_port()
    command = [
        tool("gunicorn"),
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(options.workers),
        "--worker-class",
        options.worker_class,
        "--threads",
        str(options.threads),
        "--log-level",
        "warning",
        "--graceful-timeout",
        "5",
        app,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, port, log, ready_path)
        yield port
    finally:
        _stop(process)


@dataclass(frozen=True)
class Prepared:
    """A migrated, seeded database and the environment a server on it needs; no server yet."""

    backend: str
    database_url: str
    database_version: str
    directory: Path
    instance_path: Path
    env: dict[str, str]


@contextmanager
def prepared(options: RunOptions, seed: Callable[[], T]) -> Iterator[tuple[Prepared, T]]:
    """Create, migrate and seed a database in a temp folder; drop both when the block ends."""
    directory = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    try:
        with throwaway_database(options.database, directory, options.postgres_url) as (
            database_url,
            version,
        ):
            instance = directory / "instance"
            env = _environment(instance, database_url)
            migrate(env)
            seeded = seed_with(instance, database_url, seed)
            yield (
                Prepared(options.database, database_url, version, directory, instance, env),
                seeded,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def serve(
    base: Prepared, server: ServerOptions, log_name: str = "gunicorn.log"
) -> Iterator[Deployment]:
    """Gatehouse under gunicorn on a prepared database, until the block ends."""
    with gunicorn(base.env, server, base.directory / log_name) as port:
        yield Deployment(
            base.backend,
            base.database_url,
            base.database_version,
            base.instance_path,
            HOST,
            port,
            server,
        )


@contextmanager
def deployment(
    options: RunOptions, seed: Callable[[], T], server: ServerOptions | None = None
) -> Iterator[tuple[Deployment, T]]:
    """Create, migrate and seed a database, start gunicorn on it, and tear it all down after."""
    with prepared(options, seed) as (base, seeded), serve(base, server or ServerOptions()) as dep:
        yield dep, seeded
