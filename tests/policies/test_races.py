"""Concurrent policy changes: a baseline tightening and an org's own change, released together,
never leave the org's stored effective policy looser than its chain says.

How it fails without ``lock_policies`` (checked by patching it to a plain flush on
PostgreSQL): the org's change computes its effective policy from the old baseline and commits
last (in the first round, when tried), leaving ``mfa_required`` false while the baseline says true.
"""

from __future__ import annotations

from flask import Flask

from idp.actors import system_actor
from idp.db import db
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
