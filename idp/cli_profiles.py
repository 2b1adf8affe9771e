"""Profiles of the ``gatehouse`` command's remote mode: which Gatehouse, which key, which org.

``$XDG_CONFIG_HOME/gatehouse/profiles.toml`` (default ``~/.config/gatehouse/profiles.toml``)
holds one table per profile::

    [acme]
    url = "https://id.example.com"          # Gatehouse's public base URL (GATEHOUSE_ISSUER)
    org = "acme"                            # the org of commands given no SLUG
    api_key_env = "GATEHOUSE_ACME_KEY"      # the API key: from this environment variable,
    # or from the OS keyring (service "gatehouse", user = the profile's name) when
    # api_key_env is absent and the keyring package is installed.
    # ca_file = "/etc/ssl/internal-ca.pem"  # a private CA for the server's certificate

A key written into the file itself (``api_key``) is refused unless the file is readable by
its owner alone (``chmod 600``), as ssh treats a private key.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click

KEYRING_SERVICE = "gatehouse"
_KNOWN = {"url", "org", "api_key_env", "api_key", "ca_file"}


class ProfileError(click.ClickException):
    """A profile that cannot be used; exits 1 with its message, never a traceback."""


@dataclass(frozen=True)
class Profile:
    name: str
    url: str
    api_key: str
    org: str | None = None
    ca_file: str | None = None


def profiles_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gatehouse" / "profiles.toml"


def load_profile(name: str) -> Profile:
    """The profile ``name``, its key resolved; a clear :class:`ProfileError` otherwise."""
    path = profiles_path()
    try:
        with path.open("rb") as file:
            tables = tomllib.load(file)
    except FileNotFoundError:
        raise ProfileError(f"profile {name!r}: no profiles file at {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: {exc}") from None
    table = tables.get(name)
    if not isinstance(table, dict):
        known = ", ".join(sorted(k for k, v in tables.items() if isinstance(v, dict))) or "none"
        raise ProfileError(f"no profile {name!r} in {path} (profiles: {known})")
    unknown = set(table) - _KNOWN
    if unknown:
        raise ProfileError(f"profile {name!r}: unknown keys {', '.join(sorted(unknown))}")
    for key in _KNOWN & set(table):
        if not isinstance(table[key], str) or not table[key]:
            raise ProfileError(f"profile {name!r}: {key} must be a non-empty string")
    url = _check_url(name, table.get("url"))
    return Profile(
        name=name,
        url=url,
        api_key=_api_key(name, table, path),
        org=table.get("org"),
        ca_file=table.get("ca_file"),
    )


def _check_url(name: str, url: str | None) -> str:
    """https, or plain http to a loopback address only (the key must not cross a network
    in clear)."""
    if not url:
        raise ProfileError(f"profile {name!r}: url is required")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http" and _is_loopback(host):
        return url.rstrip("/")
    if parts.scheme != "https" or not host:
        raise ProfileError(
            f"profile {name!r}: url must be https://... (plain http only to a loopback address)"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_key(name: str, table: dict[str, str], path: Path) -> str:
    if "api_key" in table and "api_key_env" in table:
        raise ProfileError(f"profile {name!r}: give api_key_env or api_key, not both")
    if "api_key" in table:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ProfileError(
                f"profile {name!r}: {path} holds an api_key but others can read it; "
                f"run chmod 600 {path}, or use api_key_env or the keyring instead"
            )
        return table["api_key"]
    if "api_key_env" in table:
        variable = table["api_key_env"]
        value = os.environ.get(variable, "").strip()
        if not value:
            raise ProfileError(f"profile {name!r}: the environment variable {variable} is not set")
        return value
    return _keyring_key(name)


def _keyring_key(name: str) -> str:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        raise ProfileError(
            f"profile {name!r} names no api_key_env and the keyring package is not installed "
            "(pip install 'gatehouse[keyring]')"
        ) from None
    try:
        value = keyring.get_password(KEYRING_SERVICE, name)
    except KeyringError as exc:  # e.g. no backend on a headless machine
        raise ProfileError(f"profile {name!r}: the OS keyring is unavailable ({exc})") from None
    if not value:
        raise ProfileError(
            f"profile {name!r}: no key in the OS keyring; store one with: "
            f"keyring set {KEYRING_SERVICE} {name}"
        )
    return value
