"""Concurrent policy changes: a baseline tightening and an org's own change, released together,
never leave the org's stored effective policy looser than its chain says.

How it fails without ``lock_policies`` (checked by patching it to a plain flush on
PostgreSQL): the org's change computes its effective policy from the old baseline and commits
last (in the first round, when tried), leaving ``mfa_required`` false while the baseline says true.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from idp.actors import system_actor
from idp.db import db
from idp.errors import GatehouseError
from idp.orgs import services
from idp.orgs.models import Organization, Workspace
from idp.policies.chain import org_levels, policy_of
from idp.policies.services import set_org_policy, set_workspace_policy
from tests.builders import make_org, workspace
from tests.orgs.test_races import ROUNDS, race


def test_a_baseline_change_and_an_org_change_at_once_leave_the_strictest(app: Flask) -> None:
    org = make_org("acme")
    ws_id = workspace().id
    for n in range(ROUNDS):
        set_workspace_policy(system_actor(), workspace(), {})
        set_org_policy(system_actor(), org, {})
        db.session.commit()

        def tighten_baseline(_org: Organization | None) -> None:
            set_workspace_policy(
                system_actor(), db.session.get(Workspace, ws_id), {"mfa_required": True}
            )

        def change_org(target: Organization | None, cap: int = 100 + n) -> None:
            set_org_policy(system_actor(), target, {"member_cap": cap})

        outcomes = race(app, org.id, [tighten_baseline, change_org])
        assert [o.error for o in outcomes] == [None, None]
        db.session.expire_all()
        fresh = db.session.get(Organization, org.id)
        assert fresh.effective_policy == policy_of(org_levels(fresh)).to_json(), f"round {n}"
        assert fresh.effective_policy["mfa_required"] is True


def test_two_orgs_created_at_once_both_land(app: Flask) -> None:
    # On PostgreSQL each insert share-locks the workspace row through its foreign key; a
    # workspace lock that conflicted with that (FOR UPDATE) deadlocked most rounds.
    for n in range(ROUNDS):
        outcomes = race(
            app,
            None,
            [
                lambda _o, n=n: services.create_org(
                    system_actor(), workspace(), slug=f"a{n}", name="A"
                ),
                lambda _o, n=n: services.create_org(
                    system_actor(), workspace(), slug=f"b{n}", name="B"
                ),
            ],
        )
        assert [o.error for o in outcomes] == [None, None], f"round {n}"


def test_an_org_update_and_a_policy_change_at_once_both_land(app: Flask) -> None:
    # Both take the workspace's lock before the org's: the other order deadlocked each round.
    parent = make_org("parent")
    child = make_org("child", parent_slug="parent")
    for n in range(ROUNDS):
        outcomes = race(
            app,
            [parent.id, child.id],
            [
                lambda org, n=n: set_org_policy(system_actor(), org, {"member_cap": 400 - n}),
                lambda org, n=n: services.update_org(system_actor(), org, member_cap=300 - n),
            ],
        )
        assert [o.error for o in outcomes] == [None, None], f"round {n}"
        db.session.expire_all()
        fresh = db.session.get(Organization, child.id)
        assert fresh.effective_policy == policy_of(org_levels(fresh)).to_json(), f"round {n}"


def test_a_child_is_never_created_under_a_parent_being_deleted(app: Flask) -> None:
    for n in range(ROUNDS):
        parent = make_org(f"parent{n}")
        outcomes = race(
            app,
            parent.id,
            [
                lambda _o, n=n: services.create_org(
                    system_actor(), workspace(), slug=f"kid{n}", name="K", parent_slug=f"parent{n}"
                ),
                lambda org: services.delete_org(system_actor(), org),
            ],
        )
        errors = [o.error for o in outcomes]
        # One of them wins: the child under a live parent, or the parent gone and no child.
        assert errors.count(None) == 1, f"round {n}: {errors}"
        loser = next(e for e in errors if e is not None)
        assert isinstance(loser, GatehouseError), f"round {n}: {loser!r}"
        db.session.expire_all()
        kid = db.session.scalar(select(Organization).where(Organization.slug == f"kid{n}"))
        gone = db.session.get(Organization, parent.id).deleted_at is not None
        assert (kid is None) == gone, f"round {n}"
