"""Rate limits, one module for every surface: failed credentials, login mails, the token
endpoint, SCIM writes.

The windows are the ``limits`` library's (fixed windows). Counters live in Redis when
``GATEHOUSE_REDIS_URL`` is set, else in the database (table ``rate_limits``, one atomic
UPSERT ... RETURNING per hit), so every worker, process and host shares them either way.
A failure is counted on its own connection after the request's transaction has ended: a
rolled-back request still counts, and SQLite's single writer is never waited on by the
request that holds it. Those connections come from the counters' own small pool, never the
requests' one: a request that holds its session's connection and asks for a counter's can
then never wait on other requests doing the same (a pool deadlock under a burst).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from limits import RateLimitItem, parse
from limits.storage import RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Float, Integer, String, case, create_engine, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.middleware.proxy_fix import ProxyFix

from idp.config import ConfigError, Settings
from idp.db import db
from idp.errors import GatehouseError

log = logging.getLogger(__name__)
EXTENSION = "gatehouse.ratelimit"
# How much of a presented credential names its counter: the public prefix and a few random
# characters. A guesser's random tokens spread over many counters (the per-IP one stops
# them); the holder of a leaked beginning is stopped on this one. Only a hash is stored.
PREFIX_CHARS = 12
_PENDING = "rate_limit_failures"
_RETRY = "rate_limit_retry_after"
V = TypeVar("V", bound=Callable[..., Any])


class RateLimitCounter(db.Model):
    """One fixed window's count (the embedded store; Redis keeps its own)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    # Seconds since the epoch (as limits' strategies count time), when the window ends.
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class Credential(StrEnum):
    """The kinds of presented secrets whose failures are counted."""

    SCIM_TOKEN = "scim_token"  # noqa: S105 - a kind's name, not a secret
    API_KEY = "api_key"
    OAUTH_CLIENT = "oauth_client"
    INVITATION = "invitation"
    EMAIL_LINK = "email_link"


class RateLimited(GatehouseError):
    """Over a limit: 429 with ``Retry-After`` (RFC 6585 §4), in the surface's own format."""

    status = 429

    def __init__(self, retry_after: int, message: str = "Too many attempts; try again later"):
        super().__init__("rate_limited", message, retry_after=retry_after)
        self.retry_after = retry_after


# --- the embedded store: a limits Storage on the database ---------------------------------


class DatabaseStorage(Storage):
    """Fixed-window counters in the ``rate_limits`` table, each on its own short transaction."""

    STORAGE_SCHEME = None  # built by Gatehouse only, never from a storage URI
    CLEANUP_EVERY = 500  # increments (per process) between sweeps of expired windows

    def __init__(self, engine: Callable[[], Engine]) -> None:
        super().__init__()
        self._engine = engine
        self._lock = threading.Lock()
        self._since_cleanup = 0

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """One atomic statement: a new or expired window starts at ``amount``, else adds it."""
        table = RateLimitCounter.__table__
        now = time.time()
        engine = self._engine()
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        expired = table.c.expires_at <= now
        statement = insert(table).values(key=key, count=amount, expires_at=now + expiry)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((expired, amount), else_=table.c.count + amount),
                "expires_at": case((expired, now + expiry), else_=table.c.expires_at),
            },
        ).returning(table.c.count)
        with engine.begin() as conn:
            count = conn.execute(statement).scalar_one()
        self._maybe_clean(engine, now)
        return count

    def _maybe_clean(self, engine: Engine, now: float) -> None:
        """Drop ended windows now and then: guessed credentials leave one row each."""
        with self._lock:
            self._since_cleanup += 1
            if self._since_cleanup < self.CLEANUP_EVERY:
                return
            self._since_cleanup = 0
        with engine.begin() as conn:
            conn.execute(delete(RateLimitCounter).where(RateLimitCounter.expires_at <= now))

    def _row(self, key: str) -> tuple[int, float] | None:
        with self._engine().connect() as conn:
            row = conn.execute(
                select(RateLimitCounter.count, RateLimitCounter.expires_at).where(
                    RateLimitCounter.key == key, RateLimitCounter.expires_at > time.time()
                )
            ).first()
        return (row[0], row[1]) if row else None

    def get(self, key: str) -> int:
        row = self._row(key)
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return row[1] if row else time.time()

    def check(self) -> bool:
        try:
            with self._engine().connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self._engine().begin() as conn:
            return conn.execute(delete(RateLimitCounter)).rowcount

    def clear(self, key: str) -> None:
        with self._engine().begin() as conn:
            conn.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))

    def count_rows(self) -> int:
        with self._engine().connect() as conn:
            return conn.execute(select(func.count()).select_from(RateLimitCounter)).scalar_one()


# --- the limits and the limiter -------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The configured limits (``GATEHOUSE_RATE_LIMIT_*``, in limits' notation)."""

    credential_failures: RateLimitItem  # per presented credential's prefix
    ip_failures: RateLimitItem  # per client IP, per kind of credential
    login_mails_per_address: RateLimitItem
    login_mails_per_ip: RateLimitItem
    token_requests: RateLimitItem  # per OAuth client
    scim_writes: RateLimitItem  # per org

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(**{name: parse_limit(settings, name) for name in cls.__dataclass_fields__})


def parse_limit(settings: Settings, name: str) -> RateLimitItem:
    """One ``RATE_LIMIT_<NAME>`` setting, e.g. ``10 per 10 minutes``; a clear error if not."""
    value = getattr(settings, f"rate_limit_{name}")
    try:
        item = parse(value)
    except ValueError:
        item = None
    if item is None or item.amount < 1:
        raise ConfigError(
            f"GATEHOUSE_RATE_LIMIT_{name.upper()} must be a limit like '10 per 10 minutes', "
            f"got {value!r}"
        )
    return item


class CounterEngine:
    """The database counters' own engine on the app's database, made on first use.

    Each checkout runs one statement and gives the connection back, waiting on nothing else
    meanwhile, so this pool never deadlocks; only ``POOL_SIZE`` connections stay open idle.
    """

    POOL_SIZE = 2
    MAX_OVERFLOW = 30

    def __init__(self, main: Callable[[], Engine]) -> None:
        self._main = main
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    main = self._main()
                    self._engine = create_engine(
                        main.url,
                        pool_size=self.POOL_SIZE,
                        max_overflow=self.MAX_OVERFLOW,
                        pool_pre_ping=main.dialect.name != "sqlite",
                        hide_parameters=True,
                    )
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class RateLimiter:
    """Fixed windows over Redis or the database; Redis unreachable falls back to the database
    (a limit is never lifted because a cache is down)."""

    def __init__(self, settings: Settings, engine: Callable[[], Engine]) -> None:
        self.limits = Limits.from_settings(settings)
        self._engine = engine
        self.database = FixedWindowRateLimiter(DatabaseStorage(engine))
        self.redis = (
            FixedWindowRateLimiter(
                RedisStorage(
                    settings.redis_url,
                    key_prefix=settings.redis_prefix,
                    socket_timeout=1,
                    socket_connect_timeout=1,
                )
            )
            if settings.redis_url
            else None
        )

    def dispose(self) -> None:
        """Close the database counters' connections (the app's engine is disposed apart)."""
        if isinstance(self._engine, CounterEngine):
            self._engine.dispose()

    def _run(self, action: Callable[[FixedWindowRateLimiter], Any]) -> Any:
        if self.redis is not None:
            try:
                return action(self.redis)
            except self.redis.storage.base_exceptions as exc:
                log.error("rate limits: Redis unavailable (%s); using the database", exc)
        return action(self.database)

    def retry_after(self, item: RateLimitItem, key: str) -> int | None:
        """Seconds until ``key``'s window ends if it is used up, else ``None`` (reads only)."""

        def test(limiter: FixedWindowRateLimiter) -> int | None:
            if limiter.test(item, key):
                return None
            return _seconds_until(limiter.get_window_stats(item, key).reset_time)

        return self._run(test)

    def hit(self, item: RateLimitItem, key: str) -> int | None:
        """Count one; the seconds to wait if that went over the limit, else ``None``."""

        def take(limiter: FixedWindowRateLimiter) -> int | None:
            if limiter.hit(item, key):
                return None
            return _seconds_until(limiter.get_window_stats(item, key).reset_time)

        return self._run(take)


def _seconds_until(moment: float) -> int:
    return max(1, math.ceil(moment - time.time()))


def init_app(app: Flask, settings: Settings) -> None:
    """The limiter, the client IP behind trusted proxies, and the after-request bookkeeping."""
    if settings.trusted_proxies:
        # Only X-Forwarded-For: the issuer is configured, so host and scheme are not taken
        # from headers; forward-auth reads its own X-Forwarded-* on purpose.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = RateLimiter(settings, CounterEngine(lambda: db.engine))
    app.after_request(_after_request)


def limiter() -> RateLimiter:
    from flask import current_app

    return current_app.extensions[EXTENSION]


# --- what the surfaces call ---------------------------------------------------------------


def client_ip() -> str:
    """The client's address: the peer, or behind ``GATEHOUSE_TRUSTED_PROXIES`` hops the
    address they forwarded (werkzeug's ProxyFix)."""
    return request.remote_addr or "unknown"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def throughput_key(name: str, subject: str) -> str:
    """The counter of ``subject`` (an org id, a client_id) under the ``name`` limit."""
    return f"{name}/{_digest(subject)}"


def _failure_counters(kind: Credential, presented: str) -> list[tuple[RateLimitItem, str]]:
    """The limits a refused credential counts against: its client IP's, and its prefix's."""
    limits = limiter().limits
    counters = [(limits.ip_failures, f"fail/{kind}/ip/{client_ip()}")]
    if presented:
        prefix = _digest(presented[:PREFIX_CHARS])
        counters.append((limits.credential_failures, f"fail/{kind}/cred/{prefix}"))
    return counters


def check_credential(kind: Credential, presented: str) -> None:
    """Refuse (429) while this credential's prefix or this client IP is locked out by
    failures, even if the credential is right: otherwise the limit only slows guessing."""
    rate = limiter()
    for item, key in _failure_counters(kind, presented):
        wait = rate.retry_after(item, key)
        if wait is not None:
            _refuse(wait)


def fail_credential(kind: Credential, presented: str) -> None:
    """Count a refused credential once the request's transaction has ended (see module doc)."""
    g.setdefault(_PENDING, []).extend(_failure_counters(kind, presented))


@contextmanager
def guard_credential(kind: Credential, presented: str, *failures: str) -> Iterator[None]:
    """Refuse while locked out; count the credential as failed when the block raises one
    of the ``failures`` codes (a guessed token's, not e.g. an expired invitation's)."""
    presented = presented if isinstance(presented, str) else ""
    check_credential(kind, presented)
    try:
        yield
    except GatehouseError as exc:
        if exc.code in failures:
            fail_credential(kind, presented)
        raise


def guarded_view(kind: Credential, field: str, *failures: str) -> Callable[[V], V]:
    """:func:`guard_credential` around a view whose credential is the ``field`` parameter
    (query string or form)."""

    def wrap(view: V) -> V:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with guard_credential(kind, request.values.get(field, ""), *failures):
                return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap


def check_throughput(name: str, subject: str) -> None:
    """Refuse (429) while ``subject``'s window of the ``name`` limit is used up (reads only)."""
    rate = limiter()
    wait = rate.retry_after(getattr(rate.limits, name), throughput_key(name, subject))
    if wait is not None:
        _refuse(wait)


def count_throughput(name: str, subject: str) -> None:
    """Count one request of ``subject`` after the request's transaction (like a failure)."""
    rate = limiter()
    g.setdefault(_PENDING, []).append((getattr(rate.limits, name), throughput_key(name, subject)))


def take_throughput(name: str, subject: str) -> None:
    """Count one request of ``subject`` now, refusing (429) over the limit; called before
    the request writes anything (SQLite: its write lock is not held yet)."""
    rate = limiter()
    wait = rate.hit(getattr(rate.limits, name), throughput_key(name, subject))
    if wait is not None:
        _refuse(wait)


def allow_login_mail(email: str) -> bool:
    """Count a sign-in mail for ``email`` from this IP; whether one may be sent. Counted for
    every address, known or not, so the answer and the counters tell nothing."""
    rate = limiter()
    by_address = rate.hit(rate.limits.login_mails_per_address, f"mail/addr/{_digest(email)}")
    by_ip = rate.hit(rate.limits.login_mails_per_ip, f"mail/ip/{client_ip()}")
    return by_address is None and by_ip is None


def _refuse(wait: int) -> None:
    g.setdefault(_RETRY, wait)
    raise RateLimited(wait)


def _after_request(response: Response) -> Response:
    """After each blueprint's commit or rollback: count what the request queued, and give a
    429 its ``Retry-After``."""
    pending = g.pop(_PENDING, None)
    if pending:
        rate = limiter()
        for item, key in pending:
            try:
                rate.hit(item, key)
            except SQLAlchemyError as exc:  # the answer stands; the count is lost, and said so
                log.error("rate limits: a count was not kept (%s)", type(exc).__name__)
    wait = g.get(_RETRY)
    if wait is not None and response.status_code == 429:
        response.headers["Retry-After"] = str(wait)
    return response
