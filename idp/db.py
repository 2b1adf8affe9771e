"""The database handle, the declarative base and the column types every model shares."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, Enum, MetaData, String, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from flask import Flask, Response
    from sqlalchemy.engine import Connection

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_last_ulid = [0]
_ulid_lock = threading.Lock()


def new_id(prefix: str) -> str:
    """A prefixed ULID: 48-bit millisecond time + 80 random bits, sortable by creation time.

    Monotonic within a process (the ULID spec's rule): an id made in the same millisecond as
    the previous one is that one plus one, so ids of one process sort in creation order.
    """
    with _ulid_lock:
        value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
        if value >> 80 <= _last_ulid[0] >> 80:
            value = _last_ulid[0] + 1
        _last_ulid[0] = value
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def id_column(prefix: str) -> Mapped[str]:
    return mapped_column(String(40), primary_key=True, default=lambda: new_id(prefix))


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column(enum: type[StrEnum], name: str) -> Enum:
    """A portable enum: VARCHAR plus a named CHECK constraint holding the values."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum),
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def created_column() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow)


def updated_column() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def lock_row(model: type[Base], row_id: str) -> None:
    """Serialize writers on one row until the transaction ends.

    PostgreSQL takes a row lock (``SELECT ... FOR NO KEY UPDATE``: writers of the row wait,
    inserts of rows referencing it do not, so two transactions that each insert a child row
    and then lock the parent cannot deadlock on the foreign key's share lock). SQLite has no
    row locks and pysqlite only opens a transaction at the first write, so a no-op UPDATE is
    issued: it takes SQLite's write lock, and the reads that follow in this transaction see the
    latest committed data while no other writer can interleave.
    """
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(model.id).where(model.id == row_id).with_for_update(key_share=True))
    else:
        # Plain SQL (the table's name is the model's): an ORM update would bump updated_at.
        no_op = text(f"UPDATE {model.__table__.name} SET id = id WHERE id = :id")  # noqa: S608
        session.execute(no_op, {"id": row_id})


def dialect_insert(model: Any) -> Any:
    """The session's database's own INSERT (SQLite or PostgreSQL), which has
    ``on_conflict_do_nothing``; with ``.returning(...)`` it tells whether the row went in."""
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def finish_request(response: Response, conflict: Callable[[], Response]) -> Response:
    """Commit once if the request succeeded, else roll back; a commit that hits a uniqueness
    conflict (a concurrent request won) rolls back and answers ``conflict()`` instead."""
    if response.status_code >= 400:
        db.session.rollback()
        return response
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return conflict()
    return response


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Row-level security (PostgreSQL): the org a transaction works for. The policies of the
# org-scoped tables (migration 0014) admit a row when its org is the one declared in the
# transaction-local setting ``gatehouse.org_id``, or when ``*`` (workspace-wide) is declared;
# a transaction that declared nothing sees no org-scoped row. The declaration lives in a
# context variable (one per request, thread or task, never shared) and is re-applied at the
# start of every transaction the session begins. SQLite has no row-level security: there the
# service layer's ``org_id`` filters are the only wall.
RLS_SETTING = "gatehouse.org_id"
WORKSPACE_WIDE = "*"
_SET_ORG = text(f"SELECT set_config('{RLS_SETTING}', :org_id, true)")
_declared: ContextVar[str | None] = ContextVar("gatehouse_declared_org", default=None)


def declare_org(org_id: str) -> None:
    """Bind this unit of work (request, command) to one org: other orgs' rows are invisible."""
    if not org_id or org_id == WORKSPACE_WIDE:
        raise ValueError("declare_org needs an org id")
    _apply(org_id)


def declare_workspace_wide() -> None:
    """Work that spans orgs on purpose (operator commands, a person's list of orgs)."""
    _apply(WORKSPACE_WIDE)


def declare_nothing() -> None:
    """Forget the declaration: org-scoped rows become invisible again (the secure default)."""
    _apply(None)


def declared_org() -> str | None:
    """The declared org id, ``*`` for workspace-wide, or ``None``."""
    return _declared.get()


@contextmanager
def workspace_wide() -> Iterator[None]:
    """A workspace-wide look-up inside org-bound work (a credential found by its digest, a
    person's memberships in every org); the previous declaration is back afterwards."""
    with declared_as(WORKSPACE_WIDE):
        yield


@contextmanager
def declared_as(value: str | None) -> Iterator[None]:
    """Work under ``value`` (an org id, ``*`` or ``None``, as ``declared_org`` gave it), such
    as work deferred by a request on another thread; the previous declaration is back after."""
    previous = _declared.get()
    _apply(value)
    try:
        yield
    finally:
        _apply(previous)


def _apply(value: str | None) -> None:
    from flask import has_app_context

    if not has_app_context():
        _declared.set(value)
        return
    session = db.session()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and (session.new or session.dirty or session.deleted):
        # What was changed under the previous declaration is written under it.
        session.flush()
    _declared.set(value)
    # A transaction already under way takes the new value now; later ones at their start.
    if postgres and session.in_transaction():
        session.execute(_SET_ORG, {"org_id": value or ""})


def declare_on_connection(connection: Connection, value: str) -> None:
    """Declare on a Core connection's transaction (one used apart from the ORM session)."""
    connection.execute(_SET_ORG, {"org_id": value})


@event.listens_for(Session, "after_begin")
def _declare_in_transaction(
    _session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    value = _declared.get()
    # Nothing declared needs no round trip: a transaction-local setting ends with the
    # transaction, so a pooled connection starts each one with no org declared.
    if value is not None and connection.dialect.name == "postgresql":
        connection.execute(_SET_ORG, {"org_id": value})


def install_row_security(app: Flask) -> None:
    """Each request starts with nothing declared; its surface declares the org it serves."""

    @app.before_request
    def forget_declaration() -> None:
        from flask import g

        g.declared_before_request = _declared.get()
        declare_nothing()

    @app.teardown_request
    def restore_declaration(_exc: BaseException | None) -> None:
        from flask import g

        if "declared_before_request" not in g:
            # No request ran here (a test_request_context pushed and popped around a helper):
            # the caller's declaration was never set aside, so it stays as it is.
            return
        # What the caller of the request had declared (a test, a CLI command calling the app)
        # applies again; a transaction the request left open ends here, as the app context's
        # end would end it, so the request's org does not outlive the request.
        _declared.set(g.pop("declared_before_request", None))
        session = db.session()
        if session.in_transaction() and session.get_bind().dialect.name == "postgresql":
            session.rollback()
