"""Typed configuration read from ``GATEHOUSE_*`` environment variables."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import idna
from cryptography.fernet import Fernet

PREFIX = "GATEHOUSE_"
ENVIRONMENTS = ("production", "development", "testing")


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True)
class Settings:
    """Every setting Gatehouse reads; field names are the variable names without the prefix."""

    env: str = "production"
    instance_path: str = ""
    database_url: str = ""
    # The app's connection pool per process (SQLAlchemy's QueuePool): size it to the
    # process's threads; the overflow opens beyond it and closes when given back.
    database_pool_size: int = 5
    database_max_overflow: int = 10
    secret_key: str = ""
    encryption_key: str = ""
    issuer: str = ""
    # Where ``make run``'s gunicorn listens (gunicorn.conf.py reads both); the development
    # issuer's default follows, so the CLI beside the server prints links to it.
    bind_host: str = "127.0.0.1"
    port: int = 8000
    smtp_url: str = ""
    mail_from: str = "Gatehouse <no-reply@localhost>"
    allow_http_loopback: bool = False
    workspace: str = "default"
    invitation_ttl_days: int = 7
    # Origins (scheme://host[:port], comma-separated) a sign-in may return to besides the issuer.
    return_origins: str = ""
    # The SaaS team's own org: its owners are the operators (workspace authority in the
    # console's operator pages). Empty: no operator pages.
    operator_org: str = ""
    # Where a browser signed in without a ``next`` goes (the app); empty: a signed-in page.
    default_return_url: str = ""
    session_hours: int = 12  # lifetime of a browser session
    access_token_seconds: int = 300  # lifetime of an OAuth access token (a JWT)
    dns_resolver: str = ""  # comma-separated ip[:port]; empty: the system's resolver
    dns_timeout: int = 3  # seconds per DNS lookup (domain verification)
    # Outbound calls (IdP metadata, discovery, JWKS, tokens) to internal addresses, which are
    # refused otherwise: host names and/or CIDRs, comma-separated (see idp/outbound.py).
    outbound_allow: str = ""
    outbound_ca_file: str = ""  # PEM: more CAs trusted for outbound https (e.g. AD FS's own)
    # Forward-auth: which org a proxied host belongs to, ``host[:port]=slug``, comma-separated.
    forward_auth_hosts: str = ""
    # The session cookie's Domain (e.g. gatehouse.test): apps on hosts under it share the
    # sign-in; empty: the issuer's host only. The issuer's host must be within it.
    cookie_domain: str = ""
    # --- rate limits (idp/ratelimit.py); limits' notation, e.g. "10 per 10 minutes" ---
    # Shared counters for every process and host; empty: the counters live in the database.
    redis_url: str = ""
    redis_prefix: str = "gatehouse"  # keys' prefix, to share one Redis between deployments
    # Proxy hops in front of Gatehouse whose X-Forwarded-For is believed (werkzeug ProxyFix).
    trusted_proxies: int = 0
    rate_limit_credential_failures: str = "10 per 10 minutes"  # per credential prefix
    rate_limit_ip_failures: str = "50 per 10 minutes"  # per client IP and kind of credential
    rate_limit_login_mails_per_address: str = "5 per 15 minutes"
    rate_limit_login_mails_per_ip: str = "30 per 15 minutes"
    rate_limit_token_requests: str = "3000 per minute"  # noqa: S105 - per OAuth client
    rate_limit_scim_writes: str = "3000 per minute"  # per org: 50/s, twice Entra's 25/s
    # How mail (and the work that decides it) leaves a request: ``background`` (a bounded
    # queue and one thread per process, after the response) or ``inline`` (after the
    # response is built, on the request's own thread: tests read the inbox right after).
    # Empty: ``inline`` under ENV=testing, else ``background``.
    mail_delivery: str = ""
    # --- observability (idp/observability.py) ---
    # ``/metrics`` is closed unless one of these opens it: a bearer token (32+ characters),
    # and/or client networks (CIDRs, comma-separated; the address behind TRUSTED_PROXIES).
    metrics_token: str = ""
    metrics_allow: str = ""
    log_format: str = ""  # json or text; empty: json in production, text elsewhere

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def _coerce(name: str, raw: Any, target: Any) -> Any:
    if target is bool or target == "bool":
        if isinstance(raw, bool):
            return raw
        value = str(raw).strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{PREFIX}{name.upper()} must be a boolean, got {raw!r}")
    if target is int or target == "int":
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{PREFIX}{name.upper()} must be an integer, got {raw!r}") from None
    return str(raw)


def _read_or_create_secret(path: Path, make: Any) -> str:
    """Development only: a secret generated once and kept in the instance folder (mode 0600).

    Safe when several processes start at once: each writes a private temp file and links it
    into place; the first link wins and everyone reads the winner, never a partial file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    return path.read_text().strip()


_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")
KEY_HELP = (
    "32 random bytes in urlsafe base64 (generate one with: python -c 'from "
    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
)


def _decode_key(text: str) -> bytes:
    """The bytes of one key, or nothing if it is not urlsafe base64."""
    # Strict alphabet: lenient decoding would skip stray characters and hide a typo.
    if not _URLSAFE_B64.fullmatch(text):
        return b""
    try:
        return base64.urlsafe_b64decode(text)
    except (binascii.Error, ValueError):
        return b""


def parse_encryption_keys(value: str) -> tuple[bytes, ...]:
    """The key ring in ``GATEHOUSE_ENCRYPTION_KEY``: comma-separated keys, the first encrypts.

    Errors name a key by its position only, so key material never reaches a log.
    """
    parts = value.split(",")
    keys: list[bytes] = []
    for position, part in enumerate(parts, start=1):
        name = f"{PREFIX}ENCRYPTION_KEY"
        if len(parts) > 1:
            name += f": key {position} of {len(parts)}"
        if not part.strip():
            raise ConfigError(
                f"{name} is empty (give one key, or several separated by commas, newest first)"
            )
        raw = _decode_key(part.strip())
        if len(raw) != 32:
            raise ConfigError(f"{name} must be {KEY_HELP}")
        if raw in keys:
            raise ConfigError(f"{name} repeats key {keys.index(raw) + 1}")
        keys.append(raw)
    return tuple(keys)


def parse_nameservers(value: str) -> list[tuple[str, int]]:
    """``DNS_RESOLVER``: comma-separated ``ip``, ``ip:port`` or ``[ipv6]:port`` (port 53)."""
    servers = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        host, port = entry, "53"
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":") if rest else port
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        try:
            address, number = ipaddress.ip_address(host), int(port)
            if not 0 < number < 65536:
                raise ValueError(port)
        except ValueError:
            raise ConfigError(
                f"{PREFIX}DNS_RESOLVER: {entry!r} is not an IP address with an optional port "
                "(e.g. 127.0.0.1:5353)"
            ) from None
        servers.append((str(address), number))
    return servers


def parse_outbound_allow(
    value: str,
) -> tuple[frozenset[str], tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]:
    """``OUTBOUND_ALLOW``: (host names, networks); names IDNA-encoded, lowercase, no final dot."""
    hosts: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry))
            continue
        except ValueError:
            pass
        try:
            name = idna.encode(entry.rstrip("."), uts46=True).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError):
            name = ""
        if not _HOST.match(name) or re.search(r"(?:^|\.)(?:0x[0-9a-f]*|[0-9]+)$", name):
            raise ConfigError(
                f"{PREFIX}OUTBOUND_ALLOW: {entry!r} is neither a host name nor a network "
                "(e.g. adfs.corp.example or 10.20.0.0/16; no host bits set)"
            )
        hosts.add(name)
    return frozenset(hosts), tuple(networks)


def parse_networks(
    name: str, value: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A comma-separated list of CIDRs (a bare address is its own /32 or /128)."""
    networks = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError:
            raise ConfigError(
                f"{PREFIX}{name}: {entry!r} is not a network (e.g. 10.0.0.0/8 or 127.0.0.1; "
                "no host bits set)"
            ) from None
    return tuple(networks)


_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def parse_forward_auth_hosts(value: str) -> dict[str, str]:
    """``FORWARD_AUTH_HOSTS``: ``host[:port]=org-slug``, comma-separated; keys lowercased."""
    hosts: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        host, _, slug = (s.strip().lower() for s in entry.partition("="))
        name, _, port = host.partition(":")
        valid_port = not port or (port.isdigit() and 0 < int(port) < 65536)
        if not (_HOST.match(name) and valid_port and _SLUG.match(slug)) or host in hosts:
            raise ConfigError(
                f"{PREFIX}FORWARD_AUTH_HOSTS: {entry!r} is not host[:port]=org-slug "
                "(e.g. app.acme.example=acme), or repeats a host"
            )
        hosts[host] = slug
    return hosts


def parse_cookie_domain(value: str, issuer: str) -> str:
    """``COOKIE_DOMAIN``: a DNS name (a leading dot is dropped) the issuer's host is within."""
    domain = value.strip().lower().removeprefix(".")
    if not domain:
        return ""
    host = (urlsplit(issuer).hostname or "").lower()
    if (
        not _HOST.match(domain)
        or "." not in domain
        or re.fullmatch(r"[0-9.]+", domain)
        or ".." in domain
    ):
        raise ConfigError(
            f"{PREFIX}COOKIE_DOMAIN: {value!r} is not a DNS name with a dot "
            "(e.g. gatehouse.example; an IP address cannot be shared)"
        )
    if host != domain and not host.endswith("." + domain):
        raise ConfigError(
            f"{PREFIX}COOKIE_DOMAIN: the issuer's host {host!r} is not within {domain!r}, "
            "so the session cookie could not be set there"
        )
    return domain


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    default_instance_path: str = "",
) -> Settings:
    """Build the settings from the environment, then ``overrides`` (keys case-insensitive)."""
    environ = os.environ if environ is None else environ
    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, kind in types.items():
        key = PREFIX + name.upper()
        if key in environ:
            values[name] = _coerce(name, environ[key], kind)
    for key, value in (overrides or {}).items():
        name = key.lower().removeprefix(PREFIX.lower())
        if name not in types:
            raise ConfigError(f"unknown setting {key!r}")
        values[name] = _coerce(name, value, types[name])
    settings = Settings(**values)

    if settings.env not in ENVIRONMENTS:
        raise ConfigError(f"{PREFIX}ENV must be one of {', '.join(ENVIRONMENTS)}")
    instance = Path(settings.instance_path or default_instance_path or "instance").resolve()
    settings = replace(settings, instance_path=str(instance))
    if not settings.database_url:
        settings = replace(settings, database_url=f"sqlite:///{instance / 'gatehouse.db'}")

    missing = [n for n in ("secret_key", "encryption_key") if not getattr(settings, n)]
    if missing and settings.is_production:
        names = ", ".join(PREFIX + n.upper() for n in missing)
        raise ConfigError(
            f"missing {names}: production needs them set "
            f"(or set {PREFIX}ENV=development to generate local ones under instance/)"
        )
    if "secret_key" in missing:
        settings = replace(
            settings,
            secret_key=_read_or_create_secret(
                instance / "secret_key", lambda: secrets.token_hex(32)
            ),
        )
    if "encryption_key" in missing:
        settings = replace(
            settings,
            encryption_key=_read_or_create_secret(
                instance / "encryption_key", lambda: Fernet.generate_key().decode()
            ),
        )
    parse_encryption_keys(settings.encryption_key)
    parse_nameservers(settings.dns_resolver)
    parse_forward_auth_hosts(settings.forward_auth_hosts)
    parse_outbound_allow(settings.outbound_allow)
    if settings.outbound_ca_file and not Path(settings.outbound_ca_file).is_file():
        raise ConfigError(f"{PREFIX}OUTBOUND_CA_FILE: no such file {settings.outbound_ca_file!r}")
    if settings.trusted_proxies < 0:
        raise ConfigError(f"{PREFIX}TRUSTED_PROXIES must be 0 or more (proxy hops)")
    if settings.mail_delivery not in {"", "background", "inline"}:
        raise ConfigError(f"{PREFIX}MAIL_DELIVERY must be background or inline")
    if settings.database_pool_size < 1 or settings.database_max_overflow < 0:
        raise ConfigError(
            f"{PREFIX}DATABASE_POOL_SIZE must be at least 1 and "
            f"{PREFIX}DATABASE_MAX_OVERFLOW 0 or more"
        )
    parse_networks("METRICS_ALLOW", settings.metrics_allow)
    if settings.metrics_token and len(settings.metrics_token) < 32:
        raise ConfigError(
            f"{PREFIX}METRICS_TOKEN must be at least 32 characters (e.g. python -c "
            "'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if settings.log_format not in {"", "json", "text"}:
        raise ConfigError(f"{PREFIX}LOG_FORMAT must be json or text")
    if settings.dns_timeout < 1:
        raise ConfigError(f"{PREFIX}DNS_TIMEOUT must be at least 1 second")
    if not 0 < settings.port < 65536:
        raise ConfigError(f"{PREFIX}PORT must be a TCP port (1-65535), got {settings.port}")
    if not settings.issuer:
        if settings.is_production:
            raise ConfigError(f"missing {PREFIX}ISSUER: the public base URL of this deployment")
        settings = replace(settings, issuer=development_issuer(settings.bind_host, settings.port))
    settings = replace(settings, issuer=settings.issuer.rstrip("/"))
    if settings.is_production:
        _check_production(settings)
    return replace(
        settings, cookie_domain=parse_cookie_domain(settings.cookie_domain, settings.issuer)
    )


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ``::1`` or ``localhost``: a name that never leaves this machine."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def development_issuer(bind_host: str, port: int) -> str:
    """The issuer outside production when none is set: where ``make run`` listens."""
    try:
        address = ipaddress.ip_address(bind_host)
    except ValueError:
        address = None
    if address is None or address.is_unspecified:  # a name, 0.0.0.0, ::: loopback reaches it
        host = bind_host if bind_host and address is None else "127.0.0.1"
    else:
        host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}"


def bind_address(environ: Mapping[str, str] | None = None) -> str:
    """gunicorn's ``bind`` (gunicorn.conf.py): ``GATEHOUSE_BIND_HOST``, ``GATEHOUSE_PORT``."""
    environ = os.environ if environ is None else environ
    host = environ.get(f"{PREFIX}BIND_HOST", Settings.bind_host).strip() or Settings.bind_host
    port = _coerce("port", environ.get(f"{PREFIX}PORT", str(Settings.port)), int)
    if not 0 < port < 65536:
        raise ConfigError(f"{PREFIX}PORT must be a TCP port (1-65535), got {port}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host.lower()):
            raise ConfigError(
                f"{PREFIX}BIND_HOST must be an IP address or a host name "
                f"(127.0.0.1, 0.0.0.0, ::), got {host!r}"
            ) from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_production(settings: Settings) -> None:
    """What production refuses to start without: an https issuer and a way to send mail."""
    parts = urlsplit(settings.issuer)
    try:
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        host = ""
    if parts.scheme not in {"https", "http"} or not host or parts.query or parts.fragment:
        raise ConfigError(
            f"{PREFIX}ISSUER must be the public base URL, https://host[:port][/path], "
            f"got {settings.issuer!r}"
        )
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigError(
            f"{PREFIX}ISSUER must be https:// in production (got {settings.issuer!r}): "
            "cookies, tokens and links would travel in the clear. Terminate TLS at the proxy "
            "and give the https URL browsers see; plain http is allowed on loopback only "
            "(127.0.0.1, ::1, localhost)"
        )
    if not settings.smtp_url:
        raise ConfigError(
            f"missing {PREFIX}SMTP_URL: production sends invitations, sign-in links and "
            "address confirmations by mail (smtp://user:pass@host:587?starttls=1)"
        )


def current_settings() -> Settings:
    """The settings of the running app (the one ``create_app`` built)."""
    from flask import current_app

    return current_app.extensions["gatehouse.settings"]
