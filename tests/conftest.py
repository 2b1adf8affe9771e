"""Fixtures: a migrated database per run (SQLite file, or a fresh PostgreSQL database), an app
per test, and plain ``make_*`` builders.

Tests commit for real (requests commit once, races need separate transactions), so instead
of rolling back one transaction, every table is emptied after each test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import Engine, create_engine, make_url, text

from idp import create_app
from idp.db import db, declare_nothing, declare_workspace_wide
from idp.orgs import services
from tests.builders import make_key
from tests.outbound_peers import Pki, Server, make_pki
from tests.proxies import ProxyUnavailable, install_nginx
from tests.test_mail import Inbox, start_smtp

ISSUER = "http://gatehouse.test"
ENCRYPTION_KEY = Fernet.generate_key().decode()


# The superuser URL of each throwaway database, for the cleanup between tests (which must not
# be bound by row-level security, and turns foreign-key triggers off).
_SUPERUSER_URLS: dict[str, str] = {}
_superuser_engines: dict[str, Engine] = {}


def _postgres_database(base_url: str) -> Iterator[str]:
    """A throwaway database beside the configured one, so parallel runs never collide.

    The app connects as a throwaway role that owns the database (migrations run as it) and is
    neither superuser nor BYPASSRLS, as in production, so row-level security binds it.
    Roles are cluster-wide: the name is unique to this run and the role is always dropped.
    """
    url = make_url(base_url)
    suffix = secrets.token_hex(4)
    name = f"gatehouse_test_{suffix}"
    role = f"gatehouse_app_{suffix}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE'))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{role}"'))
    superuser_url = url.set(database=name).render_as_string(hide_password=False)
    app_url = url.set(database=name, username=role, password=None).render_as_string(
        hide_password=False
    )
    _SUPERUSER_URLS[app_url] = superuser_url
    try:
        yield app_url
    finally:
        engine = _superuser_engines.pop(app_url, None)
        if engine is not None:
            engine.dispose()
        _SUPERUSER_URLS.pop(app_url, None)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def superuser_engine(app_url: str) -> Engine:
    """An engine on the test database as the superuser (outside row-level security)."""
    if app_url not in _superuser_engines:
        _superuser_engines[app_url] = create_engine(_SUPERUSER_URLS[app_url])
    return _superuser_engines[app_url]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("GATEHOUSE_DATABASE_URL", "")
    if configured.startswith("postgresql"):
        yield from _postgres_database(configured)
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'gatehouse.db'}"


@pytest.fixture(scope="session")
def _migrated(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    app = create_app(_settings(database_url, str(tmp_path_factory.mktemp("instance"))))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return database_url


def _settings(database_url: str, instance_path: str, **extra: Any) -> dict[str, Any]:
    return {
        "ENV": "testing",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "ISSUER": ISSUER,
        "SMTP_URL": "",
        "INSTANCE_PATH": instance_path,
        **extra,
    }


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its apps."""
    return {}


@pytest.fixture
def app(_migrated: str, tmp_path: Any, settings_overrides: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(_settings(_migrated, str(tmp_path / "instance"), **settings_overrides))
    with app.app_context():
        # A test acts as the operator: workspace-wide, outside any request. Each request
        # starts with nothing declared, and its surface declares the org it serves.
        declare_workspace_wide()
        services.ensure_workspace(app.extensions["gatehouse.settings"].workspace)
        db.session.commit()
        yield app
        db.session.remove()
        declare_nothing()
        _empty_tables(_migrated)
        db.engine.dispose()
        app.extensions["gatehouse.ratelimit"].dispose()


def _empty_tables(database_url: str) -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    engine = superuser_engine(database_url) if database_url in _SUPERUSER_URLS else db.engine
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # DELETE with foreign-key triggers off (a superuser's right, as the test server
            # gives): ~15 ms against ~0.5 s for a TRUNCATE of every table.
            conn.exec_driver_sql("SET session_replication_role = replica")
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - names from metadata
            conn.exec_driver_sql("SET session_replication_role = DEFAULT")
        else:
            # Self-referencing RESTRICT keys (nested orgs, teams) would refuse a bulk delete.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - names from metadata
        conn.commit()
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def is_postgres(app: Flask) -> bool:
    return db.engine.dialect.name == "postgresql"


@pytest.fixture
def root_key(app: Flask) -> str:
    """A workspace API key: owner authority in every org."""
    return make_key()


@pytest.fixture
def listener() -> Iterator[Server]:
    """An open port on 127.0.0.1 that counts every connection it accepts."""
    with Server() as server:
        yield server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA shared by a module's tests."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""
    controller, inbox = start_smtp()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    """Debian's nginx, installed once (the tests' proxy in front of Gatehouse)."""
    try:
        return install_nginx()
    except ProxyUnavailable as exc:
        pytest.skip(str(exc))
