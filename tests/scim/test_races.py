"""Concurrent SCIM requests: an IdP sends many at once, and none may be lost or answer 500.

Every worker is one HTTP request from its own test client in its own thread (so its own app
context, session and connection), released together by a barrier; see
``tests/orgs/test_races.py`` for the harness. Each race is repeated over fresh rows.

They run on SQLite too, where the writers queue on the database's single write lock (WAL,
``busy_timeout``); on PostgreSQL the transactions are truly parallel and meet on row locks and
unique keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.db import db
from idp.directory.models import DirectoryGroup, DirectoryUser
from idp.orgs import services
from idp.orgs.models import Membership, MembershipStatus, Organization, TeamMember
from idp.orgs.roles import Role
from idp.orgs.services import count_active_owners
from tests.builders import workspace
from tests.orgs.test_races import Outcome, race
from tests.scim.conftest import Scim, group_body, make_scim, user_body

ROUNDS = 5
WORKERS = 8
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def request(
    app: Flask, scim: Scim, method: str, path: str, body: Any = None
) -> Callable[[Organization | None], tuple[int, Any]]:
    """One worker: a request from a test client of its own; (status, body or None)."""
    own = Scim(app.test_client(), scim.slug, scim.token)

    def send(_org: Organization | None) -> tuple[int, Any]:
        response = own(method, path, body)
        return response.status_code, response.json if response.get_data() else None

    return send


def answers(outcomes: list[Outcome]) -> list[tuple[int, Any]]:
    """The (status, body) of every worker; a worker that raised fails the test."""
    errors = [o.error for o in outcomes if o.error is not None]
    assert not errors, errors
    for status, body in (o.value for o in outcomes):
        assert status < 500, body
        if status >= 400:
            assert body["schemas"] == [ERROR] and body["status"] == str(status), body
    return [o.value for o in outcomes]


def add_members(ids: list[str]) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}],
    }


def provision(scim: Scim, count: int, prefix: str = "u") -> list[str]:
    ids = []
    for i in range(count):
        response = scim("POST", "/Users", user_body(f"{prefix}{i}@example.com"))
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    return ids


def members_of(team_id: str) -> list[str]:
    return list(
        db.session.scalars(select(TeamMember.membership_id).where(TeamMember.team_id == team_id))
    )


def version_of(team_id: str) -> int:
    return db.session.scalar(
        select(DirectoryGroup.version).where(DirectoryGroup.team_id == team_id)
    )


def count_events(action: str, target_id: str) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == action, AuditEvent.target_id == target_id)
    )


def test_concurrent_adds_of_different_members_lose_none(app: Flask, scim: Scim) -> None:
    each = 3
    ids = provision(scim, WORKERS * each)
    for round_ in range(ROUNDS):
        created = scim("POST", "/Groups", group_body(f"Race {round_}"))
        group_id = created.json["id"]
        shares = [ids[n * each : (n + 1) * each] for n in range(WORKERS)]

        outcomes = race(
            app,
            None,
            [request(app, scim, "PATCH", f"/Groups/{group_id}", add_members(s)) for s in shares],
        )

        statuses = [status for status, _ in answers(outcomes)]
        assert statuses == [204] * WORKERS, f"round {round_}: {statuses}"
        db.session.expire_all()
        members = members_of(group_id)
        assert sorted(members) == sorted(ids), f"round {round_}: {len(members)} of {len(ids)}"
        listed = scim("GET", f"/Groups/{group_id}").json["members"]
        assert sorted(m["value"] for m in listed) == sorted(ids)
        # Every change counted once: the version went up by one per request, never lost.
        assert version_of(group_id) == 1 + WORKERS
        assert count_events("team.members_changed", group_id) == WORKERS


def test_concurrent_adds_of_the_same_members_keep_each_once(app: Flask, scim: Scim) -> None:
    """Found answering 500 on PostgreSQL: inserts of the same rows in opposite orders, before
    any lock, deadlocked (now change_group_members takes the org lock first)."""
    ids = provision(scim, 24)
    # A deadlock needs two inserts to overlap: without the lock, one did within these rounds
    # on nearly every run.
    for round_ in range(ROUNDS * 6):
        created = scim("POST", "/Groups", group_body(f"Same {round_}", ids[:1]))
        group_id = created.json["id"]
        # The same people, each request listing them in its own order (two IdP jobs would):
        # half of them one way round, half the other.
        orders = [ids[:: 1 if n % 2 else -1] for n in range(WORKERS)]

        outcomes = race(
            app,
            None,
            [request(app, scim, "PATCH", f"/Groups/{group_id}", add_members(o)) for o in orders],
        )

        statuses = [status for status, _ in answers(outcomes)]
        assert set(statuses) <= {204, 409}, f"round {round_}: {statuses}"
        assert 204 in statuses, f"round {round_}: {statuses}"
        db.session.expire_all()
        members = members_of(group_id)
        assert sorted(members) == sorted(ids), f"round {round_}: {members}"
        listed = scim("GET", f"/Groups/{group_id}").json["members"]
        assert sorted(m["value"] for m in listed) == sorted(ids)


def test_concurrent_adds_of_the_same_members_are_recorded_once(app: Flask, scim: Scim) -> None:
    """Found on both databases: each request read the members as absent before any lock, so
    each audited them as added and raised the version (ETag) with nothing changed."""
    ids = provision(scim, 6)
    for round_ in range(ROUNDS * 2):
        group_id = scim("POST", "/Groups", group_body(f"Once {round_}")).json["id"]

        outcomes = race(
            app,
            None,
            [
                request(app, scim, "PATCH", f"/Groups/{group_id}", add_members(ids))
                for _ in range(WORKERS)
            ],
        )

        assert {status for status, _ in answers(outcomes)} == {204}, f"round {round_}"
        db.session.expire_all()
        recorded = db.session.scalars(
            select(AuditEvent.after).where(
                AuditEvent.action == "team.members_changed", AuditEvent.target_id == group_id
            )
        ).all()
        # One request added them; the others found them there and changed nothing.
        assert [sorted(after["added"]) for after in recorded] == [sorted(ids)], f"round {round_}"
        assert version_of(group_id) == 2, f"round {round_}"


def test_concurrent_creates_of_one_user_name_make_one_user(app: Flask, scim: Scim) -> None:
    for round_ in range(ROUNDS * 2):
        name = f"twin{round_}@example.com"
        # The same userName, once in another case: unique case-insensitively (RFC 7643 §4.1.1).
        bodies = [user_body(name), user_body(name.upper())]

        outcomes = race(app, None, [request(app, scim, "POST", "/Users", b) for b in bodies])

        results = sorted(answers(outcomes), key=lambda answer: answer[0])
        assert [status for status, _ in results] == [201, 409], f"round {round_}: {results}"
        (_, winner), (_, loser) = results
        assert loser["scimType"] == "uniqueness"
        db.session.expire_all()
        rows = db.session.scalars(
            select(DirectoryUser.membership_id).where(DirectoryUser.user_name_key == name)
        ).all()
        assert rows == [winner["id"]]
        found = scim("GET", "/Users", filter=f'userName eq "{name}"').json
        assert [u["id"] for u in found["Resources"]] == [winner["id"]]


def test_concurrent_deactivation_of_the_last_two_owners_leaves_one(app: Flask, scim: Scim) -> None:
    deactivate = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }
    for round_ in range(ROUNDS * 2):
        idp = make_scim(scim.client, f"owners-{round_}")
        org = services.get_org(workspace().id, idp.slug)
        owners = provision(idp, 2, prefix=f"owner{round_}-")
        for scim_id in owners:
            services.change_role(
                system_actor(), org, db.session.get(Membership, scim_id).user_id, Role.OWNER
            )
        db.session.commit()
        org_id = org.id
        assert count_active_owners(org_id) == 2

        outcomes = race(
            app,
            None,
            [request(app, idp, "PATCH", f"/Users/{owner}", deactivate) for owner in owners],
        )

        results = answers(outcomes)
        assert sorted(status for status, _ in results) == [200, 409], f"round {round_}: {results}"
        db.session.expire_all()
        assert count_active_owners(org_id) == 1, f"round {round_}"
        for owner, (status, body) in zip(owners, results, strict=True):
            membership = db.session.get(Membership, owner)
            if status == 200:
                assert body["active"] is False
                assert membership.status is MembershipStatus.SUSPENDED
            else:
                assert "owner" in body["detail"]
                assert membership.status is MembershipStatus.ACTIVE
                assert idp("GET", f"/Users/{owner}").json["active"] is True
