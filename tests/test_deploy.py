"""The deployment examples (docs/deploy/) name real settings and start as documented."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from idp.config import PREFIX, ConfigError, Settings, load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


def read_environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, quoted values)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def unit_settings(name: str) -> list[str]:
    """The values of every ``name=`` line of the unit, in order."""
    lines = (DEPLOY / "gatehouse.service").read_text().splitlines()
    return [line.split("=", 1)[1] for line in lines if line.startswith(f"{name}=")]


def test_environment_file_names_only_gatehouse_settings_and_gunicorn_arguments() -> None:
    names = {PREFIX + f.name.upper() for f in fields(Settings)} | {"GUNICORN_CMD_ARGS"}
    unknown = set(read_environment_file(DEPLOY / "gatehouse.env")) - names
    assert not unknown


def test_environment_file_left_unedited_stops_with_the_missing_secrets_named() -> None:
    environ = read_environment_file(DEPLOY / "gatehouse.env")
    with pytest.raises(ConfigError, match="GATEHOUSE_SECRET_KEY, GATEHOUSE_ENCRYPTION_KEY"):
        load_settings(environ=environ)
    environ |= {
        "GATEHOUSE_SECRET_KEY": "s" * 64,
        "GATEHOUSE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    with pytest.raises(ConfigError, match="GATEHOUSE_ISSUER"):
        load_settings(environ=environ)


def test_environment_file_filled_in_loads(tmp_path: Path) -> None:
    environ = read_environment_file(DEPLOY / "gatehouse.env") | {
        "GATEHOUSE_ISSUER": "https://id.example.com",
        "GATEHOUSE_SECRET_KEY": "s" * 64,
        "GATEHOUSE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        # The unit's own setting (its state directory), here a scratch folder.
        "GATEHOUSE_INSTANCE_PATH": str(tmp_path),
        "GATEHOUSE_SMTP_URL": "smtp://mail.example.com:587?starttls=1",
    }
    settings = load_settings(environ=environ)
    assert settings.is_production
    assert settings.database_url == f"sqlite:///{tmp_path / 'gatehouse.db'}"
    assert settings.trusted_proxies == 1
    assert settings.mail_from == "Gatehouse <no-reply@example.com>"


def test_unit_keeps_the_instance_folder_in_its_state_directory() -> None:
    (state,) = unit_settings("StateDirectory")
    assert unit_settings("Environment") == [f"GATEHOUSE_INSTANCE_PATH=/var/lib/{state}"]
    assert unit_settings("WorkingDirectory") == [f"/var/lib/{state}"]
    (runtime,) = unit_settings("RuntimeDirectory")
    (start,) = unit_settings("ExecStart")
    # The package's gunicorn settings, which put the control socket in the runtime directory.
    assert "--config python:idp.gunicorn_conf" in start
    (reload,) = unit_settings("ExecReload")
    assert f"-s /run/{runtime}/gunicorn.ctl" in reload
    assert start.endswith(" idp.wsgi:app")
    assert unit_settings("ExecStartPre") == ["/opt/gatehouse/bin/gatehouse db upgrade"]
