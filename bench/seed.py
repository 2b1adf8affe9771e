"""Seed data: one org with many members, inserted in bulk, plus the API keys the clients use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from bench.payloads import okta_user, okta_user_name, person
from idp.actors import system_actor
from idp.config import current_settings
from idp.credentials.services import create_api_key, create_scim_token
from idp.db import db, new_id, utcnow
from idp.directory.models import DirectoryUser
from idp.orgs import services
from idp.orgs.models import DEFAULT_MEMBER_CAP, Membership, MembershipSource, MembershipStatus
from idp.orgs.roles import Role
from idp.users.models import User, UserStatus
from scim import quirks
from scim.schemas import user_type
from scim.users import user_input

BATCH = 2_000
PROVISIONED_CHUNK = 50_000  # rows per table per round trip when seeding provisioned users
ADMIN_EVERY = 100  # 1% admins, so the per-role counts are not trivial
EMAIL_DOMAIN = "bench.example"


@dataclass(frozen=True)
class SeededOrg:
    """What the clients need to know about the seeded org."""

    slug: str
    members: int
    workspace_key: str
    org_key: str

    def email(self, n: int) -> str:
        """The email of the org's ``n``-th seeded user (0-based)."""
        return member_email(self.slug, n)


def member_email(slug: str, n: int) -> str:
    """Emails are unique per workspace, so each seeded org gets its own."""
    return f"{slug}.user{n:06d}@{EMAIL_DOMAIN}"


def _rows(
    workspace_id: str, org_id: str, slug: str, numbers: range, first_joined: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    users, memberships = [], []
    for n in numbers:
        user_id = new_id("usr")
        at = first_joined + timedelta(seconds=n)
        email = member_email(slug, n)
        users.append(
            {
                "id": user_id,
                "workspace_id": workspace_id,
                "email": email,
                "email_normalized": email,
                "name": f"Bench User {n}",
                "email_verified": True,
                "status": UserStatus.ACTIVE.value,
                "created_at": at,
                "updated_at": at,
            }
        )
        role = Role.OWNER if n == 0 else Role.ADMIN if n % ADMIN_EVERY == 0 else Role.MEMBER
        memberships.append(
            {
                "id": new_id("mem"),
                "org_id": org_id,
                "user_id": user_id,
                "role": role.value,
                "source": MembershipSource.ADMIN.value,
                "status": MembershipStatus.ACTIVE.value,
                "created_at": at,
                "updated_at": at,
            }
        )
    return users, memberships


def seed_org(*, slug: str = "bench", members: int = 10_000) -> SeededOrg:
    """In an app context: workspace, org of ``members`` (one owner), workspace and org keys."""
    # The org goes through create_org (audit event included); users and memberships are Core
    # bulk inserts, since 10,000 add_member calls would take minutes and measure nothing the
    # benchmarks are about.
    workspace = services.ensure_workspace(current_settings().workspace)
    org = services.create_org(
        system_actor("bench"),
        workspace,
        slug=slug,
        name=slug.title(),
        member_cap=max(members, DEFAULT_MEMBER_CAP),
    )
    # Join times one second apart, oldest first, so "joined_at" looks like a real history.
    first_joined = utcnow() - timedelta(seconds=members)
    for start in range(0, members, BATCH):
        numbers = range(start, min(start + BATCH, members))
        users, memberships = _rows(workspace.id, org.id, slug, numbers, first_joined)
        db.session.execute(insert(User.__table__), users)
        db.session.execute(insert(Membership.__table__), memberships)
    _, workspace_key = create_api_key(system_actor("bench"), workspace.id, name="bench")
    _, org_key = create_api_key(
        system_actor("bench"), workspace.id, name="bench-org", org=org, role=Role.ADMIN
    )
    db.session.commit()
    analyze()
    return SeededOrg(slug, members, workspace_key, org_key)


def analyze() -> None:
    """Planner statistics, as a long-running database would have them after bulk growth."""
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


# --- SCIM: orgs whose users an IdP provisioned -----------------------------------------


@dataclass(frozen=True)
class ScimOrg:
    """An org with a SCIM token and ``users`` provisioned users (``okta_user(slug, n)``)."""

    slug: str
    token: str
    users: int
    member_ids: tuple[str, ...] = ()  # the users' SCIM ids, in order, if asked for

    @property
    def base(self) -> str:
        return f"/scim/v2/{self.slug}"

    def user_name(self, n: int) -> str:
        """The userName of the org's ``n``-th provisioned user (0-based)."""
        return okta_user_name(self.slug, n)


def seed_scim_org(
    slug: str, *, users: int = 0, member_cap: int | None = None, keep_ids: bool = False
) -> ScimOrg:
    """In an app context: an org (through ``create_org``), its SCIM token, its users in bulk."""
    workspace = services.ensure_workspace(current_settings().workspace)
    org = services.create_org(
        system_actor("bench"),
        workspace,
        slug=slug,
        name=slug.title(),
        member_cap=member_cap or max(users, DEFAULT_MEMBER_CAP),
    )
    _, token = create_scim_token(system_actor("bench"), org, name="bench")
    db.session.commit()
    ids = insert_provisioned_users(workspace.id, org.id, slug, users, keep_ids=keep_ids)
    return ScimOrg(slug, token, users, tuple(ids))


USER_COLUMNS = (
    "id",
    "workspace_id",
    "email",
    "email_normalized",
    "name",
    "email_verified",
    "status",
    "created_at",
    "updated_at",
)
MEMBERSHIP_COLUMNS = (
    "id",
    "org_id",
    "user_id",
    "role",
    "assigned_role",
    "source",
    "status",
    "created_at",
    "updated_at",
)
DIRECTORY_USER_COLUMNS = (
    "membership_id",
    "org_id",
    "user_name",
    "user_name_key",
    "external_id",
    "attributes",
    "version",
    "created_at",
    "updated_at",
)


def stored_attributes(tag: str, n: int) -> dict[str, Any]:
    """What ``POST /Users`` with ``okta_user(tag, n)`` keeps as the user's document."""
    given, family = person(n)
    user_name = okta_user_name(tag, n)
    return {
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "active": True,
    }


def _check_stored_shape(tag: str) -> None:
    """The bulk rows must hold what the SCIM endpoint would have stored for the same body."""
    body = okta_user(tag, 0)
    expected = user_input(quirks.normalize_request(body, user_type(), "POST"))
    if expected["attributes"] != stored_attributes(tag, 0):
        raise AssertionError(f"seeded documents differ from POST /Users: {expected}")
    if expected["external_id"] != body["externalId"]:
        raise AssertionError("seeded externalIds differ from POST /Users")


def _provisioned_rows(
    workspace_id: str, org_id: str, tag: str, numbers: range, first: datetime
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows of users, memberships and directory_users, in the ``*_COLUMNS`` order."""
    users, memberships, directory = [], [], []
    active, member, scim = (
        MembershipStatus.ACTIVE.value,
        Role.MEMBER.value,
        MembershipSource.SCIM.value,
    )
    for n in numbers:
        user_id, membership_id = new_id("usr"), new_id("mem")
        at = first + timedelta(seconds=n)
        attributes = stored_attributes(tag, n)
        email = attributes["emails"][0]["value"]
        users.append(
            (
                user_id,
                workspace_id,
                email,
                email,
                attributes["displayName"],
                False,
                UserStatus.ACTIVE.value,
                at,
                at,
            )
        )
        memberships.append((membership_id, org_id, user_id, member, member, scim, active, at, at))
        directory.append(
            (membership_id, org_id, email, email, f"00u{tag}{n:07d}", attributes, 1, at, at)
        )
    return users, memberships, directory


def _provisioned_chunks(
    workspace_id: str, org_id: str, tag: str, count: int
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    first = utcnow() - timedelta(seconds=count)  # one second apart, oldest first
    for start in range(0, count, PROVISIONED_CHUNK):
        numbers = range(start, min(start + PROVISIONED_CHUNK, count))
        yield _provisioned_rows(workspace_id, org_id, tag, numbers, first)


def insert_provisioned_users(
    workspace_id: str, org_id: str, tag: str, count: int, *, keep_ids: bool = False
) -> list[str]:
    """``count`` users as ``POST /Users`` would create them, in bulk; their SCIM ids if kept.

    One workspace user, one membership (source scim) and one directory_users row each, without
    audit events. Core ``executemany`` on SQLite; ``COPY`` on PostgreSQL, which spares the
    statement building of batched INSERTs (a million users take about 90 s either way).
    """
    if count == 0:
        return []
    _check_stored_shape(tag)
    copy = db.engine.dialect.name == "postgresql"
    ids: list[str] = []
    tables = (
        (User.__table__, USER_COLUMNS),
        (Membership.__table__, MEMBERSHIP_COLUMNS),
        (DirectoryUser.__table__, DIRECTORY_USER_COLUMNS),
    )
    for chunk in _provisioned_chunks(workspace_id, org_id, tag, count):
        if keep_ids:
            ids.extend(row[0] for row in chunk[1])
        for (table, columns), rows in zip(tables, chunk, strict=True):
            if copy:
                _copy_rows(table.name, columns, rows)
            else:
                db.session.execute(
                    insert(table), [dict(zip(columns, r, strict=True)) for r in rows]
                )
        db.session.commit()
    return ids


def _copy_rows(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """``COPY table (columns) FROM STDIN`` through psycopg, in the session's transaction."""
    raw = db.session.connection().connection.driver_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                tuple(json.dumps(value) if isinstance(value, dict) else value for value in row)
            )
