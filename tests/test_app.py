"""The app factory, configuration and health probes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask

from idp import app as app_module
from idp import create_app
from idp.config import ConfigError, load_settings


def test_factory_takes_test_config(app: Flask) -> None:
    assert app.testing
    assert app.extensions["gatehouse.settings"].issuer == "http://gatehouse.test"


def test_production_refuses_missing_secrets(tmp_path) -> None:
    with pytest.raises(ConfigError, match="GATEHOUSE_SECRET_KEY"):
        load_settings({"ENV": "production", "ISSUER": "https://id.example"}, environ={})


def test_production_refuses_missing_issuer(tmp_path) -> None:
    with pytest.raises(ConfigError, match="GATEHOUSE_ISSUER"):
        load_settings(
            {"ENV": "production", "SECRET_KEY": "s" * 40, "ENCRYPTION_KEY": "a" * 43 + "="},
            environ={},
        )


def test_bad_encryption_key_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="ENCRYPTION_KEY"):
        load_settings(
            {"ENV": "development", "ENCRYPTION_KEY": "short", "INSTANCE_PATH": str(tmp_path)},
            environ={},
        )


def test_development_generates_keys_once(tmp_path) -> None:
    first = load_settings({"ENV": "development", "INSTANCE_PATH": str(tmp_path)}, environ={})
    second = load_settings({"ENV": "development", "INSTANCE_PATH": str(tmp_path)}, environ={})
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert first.encryption_key == second.encryption_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert first.database_url == f"sqlite:///{tmp_path / 'gatehouse.db'}"


def test_environment_variables_are_read(tmp_path) -> None:
    settings = load_settings(
        None,
        environ={
            "GATEHOUSE_ENV": "development",
            "GATEHOUSE_INSTANCE_PATH": str(tmp_path),
            "GATEHOUSE_ISSUER": "https://id.example/",
            "GATEHOUSE_ALLOW_HTTP_LOOPBACK": "1",
        },
    )
    assert settings.issuer == "https://id.example"
    assert settings.allow_http_loopback is True


def test_create_app_without_config_reads_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GATEHOUSE_ENV", "development")
    monkeypatch.setenv("GATEHOUSE_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("GATEHOUSE_DATABASE_URL", raising=False)
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")


def test_unwritable_instance_folder_is_named(tmp_path) -> None:
    """A folder that cannot be made (here: below a file) stops start-up with the setting's name."""
    (tmp_path / "file").write_text("")
    config = {
        "ENV": "production",
        "SECRET_KEY": "s" * 40,
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ISSUER": "https://id.example",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gatehouse.db'}",
        "SMTP_URL": "smtp://mail.example.com:587",
        "INSTANCE_PATH": str(tmp_path / "file" / "instance"),
    }
    with pytest.raises(ConfigError, match=r"INSTANCE_PATH: cannot create .*file/instance"):
        create_app(config)


def test_source_tree_runs_its_own_migrations_and_instance_folder() -> None:
    """A checkout (and its editable install) uses migrations/ and instance/ at its top."""
    root = Path(__file__).resolve().parent.parent
    assert not app_module.IS_INSTALLED
    assert root / "migrations" == app_module.MIGRATIONS_DIR
    assert (app_module.MIGRATIONS_DIR / "env.py").is_file()
    assert root / "instance" == app_module.DEFAULT_INSTANCE_PATH


def test_healthz(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_checks_database(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json["database"] == "ok"


def test_readyz_reports_unreachable_database(tmp_path) -> None:
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["database"] == "unreachable"


def test_unknown_url_is_json_404(client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_request_id_is_echoed(client) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    bad = client.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert bad.headers["X-Request-Id"] != "<script>"


def test_ids_sort_in_creation_order() -> None:
    from idp.db import new_id

    ids = [new_id("evt") for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 30 and i.startswith("evt_") for i in ids)


def test_development_keys_survive_a_start_race(tmp_path) -> None:
    """Processes starting at once on a fresh instance folder all read one complete secret."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(6) as pool:
        keys = list(pool.map(_dev_secret, [str(tmp_path)] * 12))
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encryption_key", "secret_key"]


def _dev_secret(instance: str) -> str:
    return load_settings({"ENV": "development", "INSTANCE_PATH": instance}, environ={}).secret_key


def test_database_pool_settings_are_read_and_checked(tmp_path) -> None:
    base = {"ENV": "development", "INSTANCE_PATH": str(tmp_path)}
    settings = load_settings(base, environ={"GATEHOUSE_DATABASE_POOL_SIZE": "12"})
    assert (settings.database_pool_size, settings.database_max_overflow) == (12, 10)
    for name, value in (("DATABASE_POOL_SIZE", "0"), ("DATABASE_MAX_OVERFLOW", "-1")):
        with pytest.raises(ConfigError, match="DATABASE_POOL_SIZE"):
            load_settings({**base, name: value}, environ={})
