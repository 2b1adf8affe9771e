"""Seed data: one org with many members, inserted in bulk, plus the API keys the clients use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from idp.actors import system_actor
from idp.config import current_settings
from idp.credentials.services import create_api_key
from idp.db import db, new_id, utcnow
from idp.orgs import services
from idp.orgs.models import DEFAULT_MEMBER_CAP, Membership, MembershipSource, MembershipStatus
from idp.orgs.roles import Role
from idp.users.models import User, UserStatus

BATCH = 2_000
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
    # Planner statistics, as a long-running database would have them after bulk growth.
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return SeededOrg(slug, members, workspace_key, org_key)
