"""Deployment settings: production's start-up guards (an https issuer, a mail transport) and
the one port that ``make run``'s gunicorn and the development issuer share."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config

from idp.config import ConfigError, bind_address, load_settings

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "idp" / "gunicorn_conf.py"
PRODUCTION = {
    "ENV": "production",
    "SECRET_KEY": "s" * 40,
    "ENCRYPTION_KEY": "a" * 43 + "=",
    "ISSUER": "https://id.example",
    "SMTP_URL": "smtp://mail.example:587?starttls=1",
}


def production(**changes: Any) -> Any:
    return load_settings({**PRODUCTION, **changes}, environ={})


def test_production_starts_with_https_issuer_and_mail() -> None:
    settings = production(ISSUER="https://id.example/auth/")
    assert settings.issuer == "https://id.example/auth"


@pytest.mark.parametrize(
    "issuer", ["http://id.example", "http://10.0.0.5:8000", "http://127.0.0.1.nip.io"]
)
def test_production_refuses_a_plain_http_issuer(issuer: str) -> None:
    with pytest.raises(ConfigError, match=r"GATEHOUSE_ISSUER must be https:// in production"):
        production(ISSUER=issuer)


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1:8000", "http://127.8.9.10", "http://localhost:9000", "http://[::1]:8000"],
)
def test_production_allows_plain_http_on_loopback(issuer: str) -> None:
    assert production(ISSUER=issuer).issuer == issuer


@pytest.mark.parametrize(
    "issuer",
    [
        "id.example",
        "https://",
        "ftp://id.example",
        "https://id.example/?a=1",
        "https://id.example:99999",
    ],
)
def test_production_refuses_an_issuer_that_is_no_base_url(issuer: str) -> None:
    with pytest.raises(ConfigError, match="GATEHOUSE_ISSUER must be the public base URL"):
        production(ISSUER=issuer)


def test_production_refuses_to_start_without_a_mail_transport() -> None:
    with pytest.raises(ConfigError, match="missing GATEHOUSE_SMTP_URL"):
        production(SMTP_URL="")


def test_outside_production_the_guards_do_not_apply(tmp_path: Path) -> None:
    settings = load_settings(
        {"ENV": "development", "INSTANCE_PATH": str(tmp_path), "ISSUER": "http://gatehouse.test"},
        environ={},
    )
    assert (settings.issuer, settings.smtp_url) == ("http://gatehouse.test", "")


def test_the_development_issuer_follows_the_port(tmp_path: Path) -> None:
    environ = {"GATEHOUSE_ENV": "development", "GATEHOUSE_INSTANCE_PATH": str(tmp_path)}
    assert load_settings(None, environ=environ).issuer == "http://127.0.0.1:8000"
    moved = load_settings(None, environ={**environ, "GATEHOUSE_PORT": "9000"})
    assert (moved.port, moved.issuer) == (9000, "http://127.0.0.1:9000")
    wildcard = {**environ, "GATEHOUSE_PORT": "9000", "GATEHOUSE_BIND_HOST": "0.0.0.0"}  # noqa: S104
    assert load_settings(None, environ=wildcard).issuer == "http://127.0.0.1:9000"
    ipv6 = {**environ, "GATEHOUSE_PORT": "9000", "GATEHOUSE_BIND_HOST": "::1"}
    assert load_settings(None, environ=ipv6).issuer == "http://[::1]:9000"
    given = {**environ, "GATEHOUSE_PORT": "9000", "GATEHOUSE_ISSUER": "http://id.test"}
    assert load_settings(None, environ=given).issuer == "http://id.test"  # a set issuer wins


@pytest.mark.parametrize("port", ["0", "65536", "eighty"])
def test_a_bad_port_is_named(port: str, tmp_path: Path) -> None:
    environ = {"GATEHOUSE_ENV": "development", "GATEHOUSE_INSTANCE_PATH": str(tmp_path)}
    with pytest.raises(ConfigError, match="GATEHOUSE_PORT"):
        load_settings(None, environ={**environ, "GATEHOUSE_PORT": port})
    with pytest.raises(ConfigError, match="GATEHOUSE_PORT"):
        bind_address({"GATEHOUSE_PORT": port})


def test_a_bad_bind_host_is_named() -> None:
    with pytest.raises(ConfigError, match="GATEHOUSE_BIND_HOST must be an IP address"):
        bind_address({"GATEHOUSE_BIND_HOST": "127.0.0.1:80"})
    assert bind_address({"GATEHOUSE_BIND_HOST": "localhost"}) == "localhost:8000"


def gunicorn_settings(monkeypatch: pytest.MonkeyPatch, **environ: str) -> Config:
    """gunicorn.conf.py under ``environ``, applied as gunicorn applies a config file."""
    for name in ("GATEHOUSE_PORT", "GATEHOUSE_BIND_HOST", "RUNTIME_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    # Through monkeypatch, so the metrics directory the file names leaves this process's
    # environment after the test (prometheus_client would read later scrapes from there).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    values = runpy.run_path(str(GUNICORN_CONF))
    config = Config()
    for name, value in values.items():
        if name in config.settings:  # gunicorn skips the rest (imports, dunders)
            config.set(name, value)
    return config


def test_gunicorn_binds_the_configured_port(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gunicorn_settings(monkeypatch).bind == ["127.0.0.1:8000"]
    moved = gunicorn_settings(monkeypatch, GATEHOUSE_PORT="9000")
    assert moved.bind == ["127.0.0.1:9000"]
    everywhere = gunicorn_settings(monkeypatch, GATEHOUSE_PORT="9000", GATEHOUSE_BIND_HOST="::")
    assert everywhere.bind == ["[::]:9000"]


def test_gunicorn_runs_without_the_shared_control_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    config = gunicorn_settings(monkeypatch)
    assert "control_socket_disable" in config.settings  # a setting this gunicorn knows
    assert config.control_socket_disable is True
    assert config.accesslog is None  # URLs carry one-time tokens


def test_gunicorn_under_systemd_puts_its_control_socket_in_the_units_runtime_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """RuntimeDirectory= (docs/deploy/gatehouse.service): a socket of this instance's own,
    where the unit's ExecReload finds it."""
    config = gunicorn_settings(monkeypatch, RUNTIME_DIRECTORY=str(tmp_path))
    assert config.control_socket_disable is False
    assert config.control_socket == str(tmp_path / "gunicorn.ctl")


def test_gunicorn_names_a_bad_port_without_a_traceback() -> None:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GATEHOUSE_", "GUNICORN"))}
    done = subprocess.run(  # noqa: S603 - our own gunicorn, fixed arguments
        [str(gunicorn), "--config", str(GUNICORN_CONF), "wsgi:app"],
        cwd=GUNICORN_CONF.parent.parent,
        env={**environ, "GATEHOUSE_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "GATEHOUSE_PORT must be an integer, got 'eighty'" in done.stderr
    assert "Traceback" not in done.stderr
