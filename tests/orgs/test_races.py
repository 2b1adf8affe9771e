"""Concurrent membership changes keep the org's invariants: one owner at least, the cap, one use.

Every worker is one request: a thread with its own app context (so its own session and
connection), the real service function, one commit, and a rollback on error. A barrier
releases the workers together and each race is repeated, so an unguarded read-then-write
interleaves on most runs.

How these tests fail (checked by patching ``lock_org`` to a no-op: on PostgreSQL each
service-level race fails, mostly in the first round; on SQLite all but an occasional one):
two demotions, removals or suspensions each count two owners and both commit, leaving none;
link accepts each count N-1 members (or fewer than ``max_uses`` uses) and join, passing the
cap; two accepts of one email invitation both see it pending and the loser dies on the users'
unique constraint (an ``IntegrityError``, not a domain error). The HTTP race keeps passing
then, since the API answers an ``IntegrityError`` with 409: it guards against 500s.

They run on SQLite too, where ``lock_org`` takes the database's single write lock; on
PostgreSQL it is a row lock, and there the races are between truly parallel transactions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.db import db, declared_as, declared_org
from idp.errors import Conflict, GatehouseError, Gone
from idp.orgs import invitations
from idp.orgs.models import (
    Invitation,
    InvitationStatus,
    Membership,
    MembershipStatus,
    Organization,
)
from idp.orgs.roles import Role
from idp.orgs.services import (
    change_role,
    count_active_owners,
    remove_member,
    set_member_status,
)
from idp.people.services import add_member
from tests.builders import make_member, make_org

ROUNDS = 10
TIMEOUT = 60  # seconds; a worker stuck longer than this is a deadlock, reported as a failure


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None


def race(
    app: Flask,
    org_id: str | list[str] | None,
    actions: Sequence[Callable[[Organization], Any]],
) -> list[Outcome]:
    """Run each action in its own thread and transaction, released together; one commit each.

    With ``org_id`` (one for all, or one per action) each worker loads the org, and so checks
    out its connection, before the start; without, the action gets ``None`` and brings its
    own context (an HTTP request).

    Each worker works under the row-level security declaration of the test that started it
    (workspace-wide, as every test body does): a new thread starts with nothing declared and
    would see no org's rows. An HTTP request declares its own, whatever its thread had.
    """
    db.session.commit()  # the test's own session holds no transaction while the workers run
    barrier = threading.Barrier(len(actions))
    outcomes = [Outcome() for _ in actions]

    org_ids = org_id if isinstance(org_id, list) else [org_id] * len(actions)
    declared = declared_org()

    def work(outcome: Outcome, action: Callable[[Organization], Any], org_id: str | None) -> None:
        with app.app_context(), declared_as(declared):
            started = False
            try:
                org = db.session.get(Organization, org_id) if org_id else None
                barrier.wait(timeout=TIMEOUT)
                started = True
                outcome.value = action(org)
                db.session.commit()
            except BaseException as exc:  # recorded and asserted on by the test thread
                db.session.rollback()
                if not started:
                    # Release the others rather than strand them. Never after the start: a
                    # worker still waking from wait() would see a broken barrier.
                    barrier.abort()
                outcome.error = exc

    threads = [
        threading.Thread(target=work, args=args, name=f"race-{i}")
        for i, args in enumerate(zip(outcomes, actions, org_ids, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a worker is stuck: deadlock?"
    return outcomes


def winners_and_losers(
    outcomes: list[Outcome], allowed: Callable[[GatehouseError], bool]
) -> tuple[list[Any], list[GatehouseError]]:
    """Split the outcomes; any error other than an allowed domain error fails the test."""
    winners, losers = [], []
    for outcome in outcomes:
        if outcome.error is None:
            winners.append(outcome.value)
        elif isinstance(outcome.error, GatehouseError) and allowed(outcome.error):
            losers.append(outcome.error)
        else:
            raise AssertionError(f"unexpected error in a worker: {outcome.error!r}") from (
                outcome.error
            )
    return winners, losers


def is_conflict(code: str) -> Callable[[GatehouseError], bool]:
    return lambda exc: isinstance(exc, Conflict) and exc.code == code


def is_lost_invitation(exc: GatehouseError) -> bool:
    """What a late accept may answer: already used up, or (if it got that far) a conflict."""
    return (isinstance(exc, Gone) and exc.code == "invitation_not_pending") or isinstance(
        exc, Conflict
    )


def count(model: type, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def active_members(org_id: str) -> int:
    return count(
        Membership, Membership.org_id == org_id, Membership.status == MembershipStatus.ACTIVE
    )


def events(org_id: str, action: str) -> int:
    return count(AuditEvent, AuditEvent.org_id == org_id, AuditEvent.action == action)


# --- the last owner --------------------------------------------------------------------


def demote(user_id: str) -> Callable[[Organization], str]:
    return lambda org: change_role(system_actor(), org, user_id, Role.ADMIN).role


def remove(user_id: str) -> Callable[[Organization], None]:
    return lambda org: remove_member(system_actor(), org, user_id)


def suspend(user_id: str) -> Callable[[Organization], str]:
    return lambda org: (
        set_member_status(system_actor(), org, user_id, MembershipStatus.SUSPENDED).status.value
    )


@pytest.mark.parametrize(
    ("first", "second", "audit_actions"),
    [
        (demote, demote, {"member.role_changed"}),
        (remove, remove, {"member.removed"}),
        (suspend, suspend, {"member.suspended"}),
        (demote, remove, {"member.role_changed", "member.removed"}),
    ],
    ids=["demote+demote", "remove+remove", "suspend+suspend", "demote+remove"],
)
def test_concurrent_changes_to_the_last_two_owners_leave_one(
    app: Flask, first: Callable, second: Callable, audit_actions: set[str]
) -> None:
    for round_ in range(ROUNDS):
        org = make_org(f"owners-{round_}")
        owner_a = make_member(org, f"a{round_}@example.com", Role.OWNER).user_id
        owner_b = make_member(org, f"b{round_}@example.com", Role.OWNER).user_id
        org_id = org.id

        outcomes = race(app, org_id, [first(owner_a), second(owner_b)])

        winners, losers = winners_and_losers(outcomes, is_conflict("last_owner"))
        assert (len(winners), len(losers)) == (1, 1), f"round {round_}: {outcomes}"
        assert count_active_owners(org_id) == 1, f"round {round_}"
        survivor = owner_b if outcomes[0].error is None else owner_a
        assert (
            db.session.scalar(
                select(Membership.role).where(
                    Membership.org_id == org_id, Membership.user_id == survivor
                )
            )
            == Role.OWNER
        )
        # The loser's audit event went with its rollback: one event, for the one change.
        assert sum(events(org_id, action) for action in audit_actions) == 1


# --- one email invitation, many accepts -------------------------------------------------


def email_invitation(slug: str, email: str) -> tuple[str, str, str]:
    """An org and a pending email invitation to it, committed: (org id, invitation id, token)."""
    org = make_org(slug)
    invitation, token = invitations.invite_by_email(system_actor(), org, email=email)
    db.session.commit()
    return org.id, invitation.id, token


def accept(token: str, email: str | None = None) -> Callable[[Organization], str]:
    return lambda _org: invitations.accept_invitation(token, email=email).id


@pytest.mark.parametrize("accepts", [2, 8])
def test_concurrent_accepts_of_one_email_invitation_make_one_membership(
    app: Flask, accepts: int
) -> None:
    for round_ in range(ROUNDS):
        email = f"invitee{round_}@example.com"
        org_id, invitation_id, token = email_invitation(f"invite-{round_}", email)

        outcomes = race(app, org_id, [accept(token)] * accepts)

        winners, losers = winners_and_losers(outcomes, is_lost_invitation)
        assert (len(winners), len(losers)) == (1, accepts - 1), f"round {round_}: {outcomes}"
        assert count(Membership, Membership.org_id == org_id) == 1
        invitation = db.session.get(Invitation, invitation_id, populate_existing=True)
        assert (invitation.status, invitation.use_count) == (InvitationStatus.ACCEPTED, 1)
        assert events(org_id, "invitation.accepted") == 1


def post_accept(client: FlaskClient, token: str) -> Callable[[Organization | None], int]:
    return lambda _org: client.post("/api/v1/invitations/accept", json={"token": token}).status_code


def test_concurrent_accept_requests_answer_one_200_and_no_500(app: Flask) -> None:
    """The same race through the admin API: one client per thread, one request each."""
    accepts = 8
    for round_ in range(ROUNDS):
        org_id, _, token = email_invitation(f"http-{round_}", f"http{round_}@example.com")
        # One client per thread; each request pushes its own app context, session, connection.
        outcomes = race(app, None, [post_accept(app.test_client(), token) for _ in range(accepts)])

        statuses = sorted(o.value for o in outcomes if o.error is None)
        assert not [o.error for o in outcomes if o.error is not None]
        assert statuses.count(200) == 1, f"round {round_}: {statuses}"
        assert set(statuses) <= {200, 409, 410}, f"round {round_}: {statuses}"
        assert count(Membership, Membership.org_id == org_id) == 1


# --- one person, two orgs ---------------------------------------------------------------


def add(email: str) -> Callable[[Organization], str]:
    return lambda org: add_member(system_actor(), org, email=email).id


def test_one_new_person_joining_two_orgs_at_once_gets_both_memberships(
    app: Flask,
) -> None:
    """The org lock serializes one org; a person's first two joins are in different orgs."""
    for round_ in range(ROUNDS):
        orgs = [make_org(f"left-{round_}").id, make_org(f"right-{round_}").id]
        email = f"newcomer{round_}@example.com"

        outcomes = race(app, orgs, [add(email)] * 2)

        errors = [o.error for o in outcomes if o.error is not None]
        assert not errors, f"round {round_}: {errors}"
        assert count(Membership, Membership.org_id.in_(orgs)) == 2


# --- the member cap and a link's uses ---------------------------------------------------


def test_concurrent_joins_never_pass_the_member_cap(app: Flask) -> None:
    cap, joiners = 5, 8
    elsewhere = make_org("elsewhere")
    for round_ in range(ROUNDS):
        org = make_org(f"cap-{round_}", member_cap=cap)
        for i in range(cap - 1):
            make_member(org, f"m{i}-{round_}@example.com")
        _, token = invitations.create_invite_link(system_actor(), org)  # no max_uses
        org_id = org.id
        emails = [f"joiner{i}-{round_}@example.com" for i in range(joiners)]
        # Half the joiners are already users of the workspace. Their accept writes nothing
        # before join_org counts; a new user's insert comes first, and on SQLite that insert
        # alone would serialize the joins and hide a missing lock.
        for email in emails[::2]:
            make_member(elsewhere, email)

        outcomes = race(app, org_id, [accept(token, email) for email in emails])

        winners, losers = winners_and_losers(outcomes, is_conflict("member_cap_reached"))
        assert (len(winners), len(losers)) == (1, joiners - 1), f"round {round_}: {outcomes}"
        assert active_members(org_id) == cap


def test_concurrent_accepts_of_a_link_stop_at_max_uses(app: Flask) -> None:
    max_uses, joiners = 3, 8
    for round_ in range(ROUNDS):
        org = make_org(f"link-{round_}")
        invitation, token = invitations.create_invite_link(system_actor(), org, max_uses=max_uses)
        org_id, invitation_id = org.id, invitation.id

        outcomes = race(
            app,
            org_id,
            [accept(token, f"link{i}-{round_}@example.com") for i in range(joiners)],
        )

        winners, losers = winners_and_losers(outcomes, is_lost_invitation)
        assert len(winners) == max_uses, f"round {round_}: {outcomes}"
        assert all(isinstance(e, Gone) for e in losers), f"round {round_}: {losers}"
        assert count(Membership, Membership.org_id == org_id) == max_uses
        invitation = db.session.get(Invitation, invitation_id, populate_existing=True)
        assert (invitation.status, invitation.use_count) == (InvitationStatus.ACCEPTED, max_uses)
