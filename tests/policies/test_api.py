"""Policies over the admin API and the CLI: stricter-only overrides, inheritance across three
levels, the tightening cascade, explain, dry runs and the audit trail."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.db import db
from idp.orgs.models import Organization
from idp.orgs.roles import Role
from idp.policies.registry import KEYS
from idp.policies.services import set_org_policy
from idp.sessions.models import SessionMethod
from idp.sessions.services import start_session
from tests.builders import auth, make_key, make_member, make_org, workspace

# A value stricter than the default for every key, and one looser than that.
STRICT: dict[str, Any] = {
    "sso_required": True,
    "mfa_required": True,
    "session_max_age": 3600,
    "session_idle_timeout": 600,
    "allowed_email_domains": ["acme.example"],
    "idp_initiated_login": False,
    "jit_provisioning": False,
    "external_invites": False,
    "invite_links": False,
    "invite_link_max_age": 86400,
    "member_cap": 50,
    "min_role_to_invite": "owner",
}
LOOSER: dict[str, Any] = {
    "sso_required": False,
    "mfa_required": False,
    "session_max_age": 7200,
    "session_idle_timeout": None,
    "allowed_email_domains": ["acme.example", "other.example"],
    "idp_initiated_login": True,
    "jit_provisioning": True,
    "external_invites": True,
    "invite_links": True,
    "invite_link_max_age": 2 * 86400,
    "member_cap": 51,
    "min_role_to_invite": "admin",
}


def test_every_key_has_a_strict_and_a_looser_value_here() -> None:
    assert set(STRICT) == set(KEYS) == set(LOOSER)


@pytest.fixture
def tree(app: Flask) -> tuple[Organization, Organization, Organization]:
    """parent → child → grandchild."""
    parent = make_org("parent")
    child = make_org("child", parent_slug="parent")
    grandchild = make_org("grandchild", parent_slug="child")
    return parent, child, grandchild


def put(client: FlaskClient, key: str, path: str, body: Any, **query: str) -> Any:
    return client.put(f"/api/v1{path}", json=body, headers=auth(key), query_string=query)


def effective(client: FlaskClient, key: str, slug: str) -> dict[str, Any]:
    response = client.get(
        f"/api/v1/orgs/{slug}/policy/effective", headers=auth(key), query_string={"explain": 1}
    )
    assert response.status_code == 200, response.text
    return response.json["keys"]


@pytest.mark.parametrize("name", sorted(KEYS))
def test_an_override_may_tighten_never_loosen(
    client: FlaskClient, root_key: str, tree: Any, name: str
) -> None:
    assert put(client, root_key, "/orgs/parent/policy", {name: STRICT[name]}).status_code == 200
    # The child: the same value is accepted (not looser), a looser one refused with 422.
    assert put(client, root_key, "/orgs/child/policy", {name: STRICT[name]}).status_code == 200
    refused = put(client, root_key, "/orgs/child/policy", {name: LOOSER[name]})
    assert refused.status_code == 422, refused.text
    assert refused.json == {
        "error": "policy_looser_than_inherited",
        "message": refused.json["message"],
        "key": name,
        "inherited": STRICT[name],
        "requested": LOOSER[name],
    }
    # Refused means nothing changed: the child still holds its override.
    assert client.get("/api/v1/orgs/child/policy", headers=auth(root_key)).json["overrides"] == {
        name: STRICT[name]
    }


@pytest.mark.parametrize("name", sorted(KEYS))
def test_three_levels_inherit_the_strictest(
    client: FlaskClient, root_key: str, tree: Any, name: str
) -> None:
    assert put(client, root_key, "/workspace/policy", {name: LOOSER[name]}).status_code == 200
    assert put(client, root_key, "/orgs/parent/policy", {name: STRICT[name]}).status_code == 200
    for slug in ("parent", "child", "grandchild"):
        item = effective(client, root_key, slug)[name]
        assert item["value"] == STRICT[name]
        assert item["source"] == "org:parent"
    assert effective(client, root_key, "grandchild")[name]["inherited"] == STRICT[name]


def test_a_tightened_baseline_tightens_descendants_at_once_and_keeps_their_overrides(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    assert put(client, root_key, "/orgs/child/policy", {"session_max_age": "4h"}).status_code == 200
    assert effective(client, root_key, "grandchild")["session_max_age"]["value"] == 4 * 3600
    assert put(client, root_key, "/workspace/policy", {"session_max_age": "1h"}).status_code == 200
    child = effective(client, root_key, "child")["session_max_age"]
    assert child == {
        "value": 3600,
        "source": "workspace",
        "superseded": ["org:child"],
        "inherited": 3600,
        "override": 4 * 3600,
    }
    assert effective(client, root_key, "grandchild")["session_max_age"]["value"] == 3600
    document = client.get("/api/v1/orgs/child/policy", headers=auth(root_key)).json
    assert document == {
        "org": "child",
        "overrides": {"session_max_age": 4 * 3600},
        "superseded": ["session_max_age"],
    }
    # Loosening the baseline again lets the kept override apply once more.
    assert put(client, root_key, "/workspace/policy", {}).status_code == 200
    assert effective(client, root_key, "grandchild")["session_max_age"]["value"] == 4 * 3600
    # The materialized policy (what the hot paths read) agrees with the explanation.
    db.session.rollback()
    grandchild = db.session.scalar(select(Organization).where(Organization.slug == "grandchild"))
    assert grandchild.effective_policy["session_max_age"] == 4 * 3600


def test_the_baseline_replaces_the_defaults_and_an_org_only_tightens_them(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    # Without a baseline saying so, an org may not loosen a default.
    refused = put(client, root_key, "/orgs/child/policy", {"min_role_to_invite": "member"})
    assert refused.status_code == 422 and refused.json["inherited"] == "admin"
    looser = {"min_role_to_invite": "member", "invite_link_max_age": "200d"}
    assert put(client, root_key, "/workspace/policy", looser).status_code == 200
    keys = effective(client, root_key, "grandchild")
    assert keys["min_role_to_invite"]["value"] == "member"
    assert keys["min_role_to_invite"]["source"] == "workspace"
    assert keys["invite_link_max_age"]["value"] == 200 * 86400
    tightened = put(client, root_key, "/orgs/child/policy", {"min_role_to_invite": "owner"})
    assert tightened.status_code == 200


def test_a_domain_list_only_partly_in_force_is_reported_superseded(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    domains = {"allowed_email_domains": ["a.example", "b.example"]}
    assert put(client, root_key, "/orgs/child/policy", domains).status_code == 200
    narrowed = {"allowed_email_domains": ["b.example", "c.example"]}
    assert put(client, root_key, "/workspace/policy", narrowed).status_code == 200
    item = effective(client, root_key, "child")["allowed_email_domains"]
    assert item["value"] == ["b.example"] and item["superseded"] == ["org:child"]
    document = client.get("/api/v1/orgs/child/policy", headers=auth(root_key)).json
    assert document["superseded"] == ["allowed_email_domains"]
    # Nothing in common: no domain at all ([]), not "any" (null).
    put(client, root_key, "/workspace/policy", {"allowed_email_domains": ["c.example"]})
    assert effective(client, root_key, "child")["allowed_email_domains"]["value"] == []


def test_an_empty_key_list_or_a_missing_body_changes_nothing(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    put(client, root_key, "/workspace/policy", {"mfa_required": True})
    put(client, root_key, "/orgs/child/policy", {"member_cap": 9})
    for keys in ("", ",", " "):
        response = client.delete(
            "/api/v1/orgs/child/policy", headers=auth(root_key), query_string={"keys": keys}
        )
        assert response.status_code == 400 and response.json["error"] == "invalid_request"
    for path in ("/workspace/policy", "/orgs/child/policy"):
        response = client.put(f"/api/v1{path}", headers=auth(root_key))
        assert response.status_code == 400 and response.json["error"] == "invalid_request"
    assert client.get("/api/v1/orgs/child/policy", headers=auth(root_key)).json["overrides"] == {
        "member_cap": 9
    }
    workspace = client.get("/api/v1/workspace/policy", headers=auth(root_key)).json
    assert workspace["baseline"] == {"mfa_required": True}


def test_a_change_that_changes_nothing_is_not_audited(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    put(client, root_key, "/workspace/policy", {"mfa_required": True})
    put(client, root_key, "/orgs/child/policy", {"member_cap": 9})
    before = _count_events()
    assert put(client, root_key, "/workspace/policy", {"mfa_required": True}).status_code == 200
    assert put(client, root_key, "/orgs/child/policy", {"member_cap": 9}).status_code == 200
    assert client.delete("/api/v1/orgs/parent/policy", headers=auth(root_key)).status_code == 200
    assert _count_events() == before


def test_a_stored_override_sent_again_unchanged_is_kept_even_when_superseded(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    put(client, root_key, "/orgs/child/policy", {"member_cap": 40, "mfa_required": True})
    put(client, root_key, "/orgs/parent/policy", {"member_cap": 10})
    again = put(client, root_key, "/orgs/child/policy", {"member_cap": 40, "mfa_required": True})
    assert again.status_code == 200, again.text
    changed = put(client, root_key, "/orgs/child/policy", {"member_cap": 30})
    assert changed.status_code == 422 and changed.json["inherited"] == 10


def test_an_org_cannot_be_looser_than_its_own_member_cap_says_but_explain_names_it(
    client: FlaskClient, root_key: str, app: Flask
) -> None:
    make_org("solo", member_cap=20)
    item = effective(client, root_key, "solo")["member_cap"]
    assert item["value"] == 20 and item["source"] == "org:solo/member_cap"


def test_explain_names_defaults_and_the_chain(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    body = client.get(
        "/api/v1/orgs/grandchild/policy/effective",
        headers=auth(root_key),
        query_string={"explain": "1"},
    ).json
    assert body["chain"] == [
        "workspace",
        "org:parent",
        "org:child",
        "org:grandchild",
        "org:grandchild/member_cap",
    ]
    assert body["keys"]["sso_required"] == {
        "value": False,
        "source": "default",
        "superseded": [],
        "inherited": False,
        "override": None,
    }
    plain = client.get("/api/v1/orgs/grandchild/policy/effective", headers=auth(root_key)).json
    assert plain == {"org": "grandchild", "policy": body["policy"]}


def test_delete_drops_overrides_and_the_org_inherits_again(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    put(client, root_key, "/orgs/child/policy", {"mfa_required": True, "member_cap": 9})
    response = client.delete(
        "/api/v1/orgs/child/policy", headers=auth(root_key), query_string={"keys": "member_cap"}
    )
    assert response.status_code == 200
    assert response.json["overrides"] == {"mfa_required": True}
    assert effective(client, root_key, "grandchild")["member_cap"]["value"] == 500
    assert client.delete("/api/v1/orgs/child/policy", headers=auth(root_key)).status_code == 200
    assert effective(client, root_key, "grandchild")["mfa_required"]["value"] is False
    unknown = client.delete(
        "/api/v1/orgs/child/policy", headers=auth(root_key), query_string={"keys": "nope"}
    )
    assert unknown.status_code == 400 and unknown.json["error"] == "unknown_policy_key"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"session_max_age": "forever"}, "invalid_policy_value"),
        ({"member_cap": True}, "invalid_policy_value"),
        ({"allowed_email_domains": ["*.example"]}, "invalid_policy_value"),
        ({"root_for_everyone": True}, "validation_error"),
    ],
)
def test_bad_documents_are_400_and_change_nothing(
    client: FlaskClient, root_key: str, tree: Any, body: dict[str, Any], code: str
) -> None:
    for path in ("/workspace/policy", "/orgs/child/policy"):
        response = put(client, root_key, path, body)
        assert response.status_code == 400 and response.json["error"] == code, response.text
    assert put(client, root_key, "/workspace/policy", [1, 2]).status_code == 400
    assert client.get("/api/v1/workspace/policy", headers=auth(root_key)).json["baseline"] == {}


def test_who_may_read_and_change_policies(client: FlaskClient, tree: Any) -> None:
    _parent, child, _ = tree
    admin = make_key(child, Role.ADMIN)
    member = make_key(child, Role.MEMBER)
    assert put(client, admin, "/orgs/child/policy", {"mfa_required": True}).status_code == 200
    refused = put(client, member, "/orgs/child/policy", {"mfa_required": True})
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    assert client.get("/api/v1/orgs/child/policy", headers=auth(member)).status_code == 200
    # An org key sees neither another org's policy nor the workspace's.
    assert put(client, admin, "/orgs/parent/policy", {}).status_code == 404
    assert put(client, admin, "/workspace/policy", {}).status_code == 404
    assert client.get("/api/v1/workspace/policy", headers=auth(admin)).status_code == 404


def test_every_change_is_audited_with_before_and_after(
    client: FlaskClient, root_key: str, tree: Any
) -> None:
    put(client, root_key, "/orgs/parent/policy", {"mfa_required": True})
    put(client, root_key, "/workspace/policy", {"session_max_age": "2h"})
    events = client.get("/api/v1/orgs/parent/audit-events", headers=auth(root_key)).json["data"]
    actions = [e["action"] for e in events]
    assert actions[:2] == ["policy.inherited_changed", "org.policy_updated"]
    updated = events[1]
    assert updated["before"] == {"overrides": {}}
    assert updated["after"]["overrides"] == {"mfa_required": True}
    assert updated["after"]["effective"] == {"mfa_required": {"before": False, "after": True}}
    inherited = events[0]
    assert inherited["before"] == {"session_max_age": None}
    assert inherited["after"] == {"session_max_age": 7200, "cause": "workspace"}
    # The descendants learn of the parent's change in their own logs.
    child_events = client.get("/api/v1/orgs/child/audit-events", headers=auth(root_key)).json
    assert [e["after"].get("cause") for e in child_events["data"][:2]] == [
        "workspace",
        "org:parent",
    ]
    workspace = client.get("/api/v1/workspace/audit-events", headers=auth(root_key)).json["data"]
    assert workspace[0]["action"] == "workspace.policy_updated"
    assert workspace[0]["before"] == {"baseline": {}}
    assert workspace[0]["after"] == {"baseline": {"session_max_age": 7200}, "orgs_changed": 3}


def test_dry_run_reports_whom_a_change_affects_and_changes_nothing(
    client: FlaskClient, root_key: str, app: Flask
) -> None:
    org = make_org("acme")
    inside = make_member(org, "ann@acme.example")
    outside = make_member(org, "bob@elsewhere.example")
    for membership in (inside, outside):
        start_session(
            membership.user, org, method=SessionMethod.EMAIL_LINK, lifetime=timedelta(hours=12)
        )
    db.session.commit()
    before_events = _count_events()

    response = put(
        client,
        root_key,
        "/orgs/acme/policy",
        {"allowed_email_domains": ["acme.example"], "sso_required": True, "member_cap": 1},
        dry_run="1",
    )
    assert response.status_code == 200, response.text
    body = response.json
    assert body["dry_run"] is True
    (impact,) = body["orgs"]
    assert impact["slug"] == "acme"
    assert impact["members"] == {
        "count": 1,
        "sample": [{"user_id": outside.user_id, "email": "bob@elsewhere.example"}],
    }
    assert impact["sessions"]["count"] == 2  # email-link sessions: not the org's own IdP
    assert {s["keys"][0] for s in impact["sessions"]["sample"]} == {"sso_required"}
    assert impact["member_cap"] == {"active": 2, "cap": 1}
    assert impact["changes"]["sso_required"] == {"before": False, "after": True}
    # Nothing was stored or audited.
    assert client.get("/api/v1/orgs/acme/policy", headers=auth(root_key)).json["overrides"] == {}
    assert _count_events() == before_events

    baseline = put(client, root_key, "/workspace/policy", {"session_max_age": "1h"}, dry_run="1")
    assert baseline.json["orgs"][0]["sessions"]["count"] == 0  # sessions are new
    assert client.get("/api/v1/workspace/policy", headers=auth(root_key)).json["baseline"] == {}


def _count_events() -> int:
    db.session.rollback()
    return len(db.session.scalars(select(AuditEvent.id)).all())


def test_an_org_created_under_a_strict_parent_inherits_at_once(
    client: FlaskClient, root_key: str, app: Flask
) -> None:
    make_org("parent")
    put(client, root_key, "/orgs/parent/policy", {"sso_required": True})
    created = client.post(
        "/api/v1/orgs",
        json={"slug": "late", "name": "Late", "parent": "parent"},
        headers=auth(root_key),
    )
    assert created.status_code == 201
    db.session.rollback()
    late = db.session.scalar(select(Organization).where(Organization.slug == "late"))
    assert late.effective_policy["sso_required"] is True


# --- the CLI --------------------------------------------------------------------------


def test_cli_sets_shows_explains_and_unsets(runner: Any, tree: Any) -> None:
    assert runner.invoke(args=["policy", "set", "session_max_age", "8h"]).exit_code == 0
    assert runner.invoke(args=["policy", "set", "child", "session_max_age", "2h"]).exit_code == 0
    result = runner.invoke(args=["policy", "set", "child", "allowed_email_domains", "a.ex,b.ex"])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(args=["policy", "show", "grandchild", "--explain"])
    assert shown.exit_code == 0
    lines = dict(line.split("\t", 1) for line in shown.output.splitlines())
    assert lines["session_max_age"] == "7200\torg:child"
    assert lines["allowed_email_domains"] == '["a.ex", "b.ex"]\torg:child'
    assert lines["sso_required"] == "false\tdefault"

    looser = runner.invoke(args=["policy", "set", "grandchild", "session_max_age", "3h"])
    assert looser.exit_code == 1
    assert "policy_looser_than_inherited" in looser.output

    tighter = runner.invoke(args=["policy", "set", "session_max_age", "1h"])
    assert tighter.exit_code == 0
    shown = runner.invoke(args=["policy", "show", "child", "--explain"]).output
    assert "session_max_age\t3600\tworkspace\tsupersedes org:child" in shown.splitlines()

    assert runner.invoke(args=["policy", "unset", "child", "allowed_email_domains"]).exit_code == 0
    plain = runner.invoke(args=["policy", "show", "child"]).output
    assert "allowed_email_domains\tnull" in plain.splitlines()
    assert runner.invoke(args=["policy", "show"]).output.startswith("sso_required\tfalse")


def test_cli_baseline_changes_keep_the_other_keys_and_errors_say_why(
    runner: Any, app: Flask
) -> None:
    make_org("acme")
    ws = workspace()
    ws.baseline_policy = {"retired_key": True}  # a key a later release no longer has
    db.session.commit()
    assert runner.invoke(args=["policy", "set", "mfa_required", "true"]).exit_code == 0
    assert runner.invoke(args=["policy", "set", "session_max_age", "8h"]).exit_code == 0
    assert runner.invoke(args=["policy", "unset", "mfa_required"]).exit_code == 0
    db.session.rollback()
    assert workspace().baseline_policy == {"session_max_age": 8 * 3600}

    typo = runner.invoke(args=["policy", "set", "sesion_max_age", "1h"])
    assert typo.exit_code == 1 and "unknown_policy_key" in typo.output
    looser = runner.invoke(args=["policy", "set", "acme", "session_max_age", "9h"])
    assert looser.exit_code == 1
    assert '"inherited": 28800' in looser.output and '"requested": 32400' in looser.output
    negative = runner.invoke(args=["policy", "set", "acme", "session_max_age", "-5"])
    assert negative.exit_code == 1 and "invalid_policy_value" in negative.output
    usage = runner.invoke(args=["policy", "set", "acme", "a", "b", "c"])
    assert usage.exit_code == 2


def test_cli_dry_run_prints_the_report_and_stores_nothing(runner: Any, app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "bob@elsewhere.example")
    result = runner.invoke(
        args=["policy", "set", "acme", "allowed_email_domains", "acme.example", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["orgs"][0]["members"]["count"] == 1
    db.session.rollback()
    assert db.session.get(Organization, org.id).policy_overrides == {}


def test_a_merged_change_keeps_the_other_overrides(app: Flask) -> None:
    org = make_org("acme")
    set_org_policy(system_actor(), org, {"mfa_required": True})
    set_org_policy(system_actor(), org, {"member_cap": 10}, merge=True)
    db.session.commit()
    assert org.policy_overrides == {"mfa_required": True, "member_cap": 10}
