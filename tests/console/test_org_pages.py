"""The console's pages beside Members, over HTTP: what each role sees, credentials shown once
and only after a recent sign-in, the audit export, roles, teams, policy with its dry run, and
settings; bad input beside the field, nothing half-saved."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp import downloads
from idp.actors import system_actor
from idp.audit.services import record_org_event
from idp.credentials.models import ApiKey, ScimToken, SetupLink
from idp.db import db
from idp.orgs import teams as teams_service
from idp.orgs.models import CustomRole, Membership, Organization, Team
from idp.orgs.roles import Role
from idp.sessions.models import Session
from tests.builders import auth, make_key, make_member, make_org, signed_in_cookie

PAGES = (
    "members",
    "teams",
    "roles",
    "sso",
    "directory",
    "domains",
    "policy",
    "audit",
    "api-keys",
    "settings",
)


def base(slug: str = "acme") -> str:
    return f"/console/orgs/{slug}"


def sign_in(client: FlaskClient, membership: Membership) -> None:
    client.set_cookie("gatehouse_session", signed_in_cookie(membership))


def csrf(text: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', text).group(1)  # type: ignore[union-attr]


@pytest.fixture
def acme(client: FlaskClient) -> dict[str, Membership]:
    org = make_org("acme", name="Acme")
    people = {
        "owner": make_member(org, "owner@acme.example", Role.OWNER),
        "admin": make_member(org, "admin@acme.example", Role.ADMIN),
        "member": make_member(org, "ann@acme.example"),
    }
    return people


def test_each_role_sees_the_pages_its_role_holds(
    client: FlaskClient, acme: dict[str, Membership]
) -> None:
    sign_in(client, acme["owner"])
    for name in PAGES:
        page = client.get(f"{base()}/{name}")
        assert page.status_code == 200, name
        assert f'href="{base()}/{name}"' in page.text  # in the navigation
    sign_in(client, acme["member"])
    allowed = {name for name in PAGES if client.get(f"{base()}/{name}").status_code == 200}
    assert allowed == {"teams", "settings"}
    settings = client.get(f"{base()}/settings")
    assert "<form" not in settings.text.split("<main")[1]  # a member reads, does not change
    nav = settings.text.split('aria-label="Console"')[1].split("</nav>")[0]
    assert "Audit log" not in nav and "API keys" not in nav
    make_org("beta")
    assert client.get(f"{base('beta')}/settings").status_code == 404


def test_an_owner_hands_out_a_setup_link_once_after_a_recent_sign_in(
    client: FlaskClient, acme: dict[str, Membership]
) -> None:
    sign_in(client, acme["admin"])
    page = client.get(f"{base()}/sso")
    assert "Setup link for your IT admin" not in page.text  # owners only
    token = csrf(client.get(f"{base()}/members").text)
    refused = client.post(f"{base()}/sso", data={"csrf_token": token, "intents": "sso"})
    assert refused.status_code == 403
    sign_in(client, acme["owner"])
    token = csrf(client.get(f"{base()}/sso").text)
    empty = client.post(f"{base()}/sso", data={"csrf_token": token, "expires_hours": "72"})
    assert empty.status_code == 400 and 'id="intents-error"' in empty.text
    made = client.post(
        f"{base()}/sso",
        data={"csrf_token": token, "intents": ["sso", "scim"], "expires_hours": "24"},
    )
    assert made.status_code == 200
    url = re.search(r'<code id="setup-url"[^>]*>([^<]+)</code>', made.text).group(1)  # type: ignore[union-attr]
    assert "/setup/ghsetup_" in url
    assert url not in client.get(f"{base()}/sso").text  # shown once
    link = db.session.scalars(select(SetupLink)).one()
    assert link.intents == ["sso", "scim"] and link.created_by.startswith("user:")
    revoked = client.post(f"{base()}/setup-links/{link.id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303
    db.session.refresh(link)
    assert link.revoked_at is not None
    # A sign-in older than ten minutes is asked again before handing out a credential.
    session = db.session.scalars(select(Session).order_by(Session.created_at.desc())).first()
    session.auth_time = session.auth_time - timedelta(minutes=30)
    db.session.commit()
    stale = client.post(
        f"{base()}/sso", data={"csrf_token": token, "intents": ["sso"], "expires_hours": "24"}
    )
    assert stale.status_code == 303 and stale.headers["Location"].startswith("/login?")
    assert db.session.scalar(select(func.count()).select_from(SetupLink)) == 1


def test_scim_tokens_and_api_keys_are_shown_once(
    client: FlaskClient, acme: dict[str, Membership]
) -> None:
    sign_in(client, acme["admin"])
    token = csrf(client.get(f"{base()}/directory").text)
    made = client.post(f"{base()}/directory", data={"csrf_token": token, "name": "Okta"})
    secret = re.search(r'<code id="scim-token"[^>]*>([^<]+)</code>', made.text).group(1)  # type: ignore[union-attr]
    scim = client.post(
        "/scim/v2/acme/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bob@acme.example",
        },
        headers=auth(secret),
    )
    assert scim.status_code == 201, scim.text
    again = client.post(
        "/scim/v2/acme/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bob@acme.example",
        },
        headers=auth(secret),
    )
    assert again.status_code == 409  # the IdP's mistake is kept for the admin to read
    page = client.get(f"{base()}/directory")
    assert secret not in page.text and "member." in page.text
    assert "409 uniqueness" in page.text
    assert db.session.scalar(select(ScimToken.name)) == "Okta"
    # An API key: above the admin's own role is refused beside the field.
    above = client.post(
        f"{base()}/api-keys", data={"csrf_token": token, "name": "ci", "role": "owner"}
    )
    assert above.status_code == 400 and 'id="role-error"' in above.text
    made = client.post(
        f"{base()}/api-keys", data={"csrf_token": token, "name": "ci", "role": "member"}
    )
    key = re.search(r'<code id="api-key"[^>]*>([^<]+)</code>', made.text).group(1)  # type: ignore[union-attr]
    assert client.get("/api/v1/orgs/acme", headers=auth(key)).status_code == 200
    stored = db.session.scalars(select(ApiKey).where(ApiKey.name == "ci")).one()
    client.post(f"{base()}/api-keys/{stored.id}/revoke", data={"csrf_token": token})
    assert client.get("/api/v1/orgs/acme", headers=auth(key)).status_code == 401


def test_the_audit_log_filters_and_exports(
    client: FlaskClient, acme: dict[str, Membership]
) -> None:
    org = db.session.get(Organization, acme["owner"].org_id)
    record_org_event(
        system_actor("=HYPERLINK(evil)"), org, "org.renamed", "org", org.id, after={"name": "x"}
    )
    db.session.commit()
    key = make_key(org)
    sign_in(client, acme["admin"])
    filtered = client.get(f"{base()}/audit", query_string={"action": "org.renamed"})
    assert "org.renamed" in filtered.text and "member.added" not in filtered.text
    exported = client.get(f"{base()}/audit/export", query_string={"format": "csv"})
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    assert exported.headers["Content-Disposition"] == 'attachment; filename="acme-audit.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    renamed = next(r for r in rows if r["action"] == "org.renamed")
    assert renamed["actor_label"] == "'=HYPERLINK(evil)"  # never run as a formula
    assert json.loads(renamed["after"]) == {"name": "x"}
    api = client.get("/api/v1/orgs/acme/audit-events/export?format=jsonl", headers=auth(key))
    api_lines = api.get_data(as_text=True).splitlines()
    lines = client.get(f"{base()}/audit/export", query_string={"format": "jsonl"}).text.splitlines()
    assert len(lines) == len(rows) and all(json.loads(line)["id"] for line in lines)
    # The same export through the admin API (the contract), and a bad format.
    api = client.get(
        "/api/v1/orgs/acme/audit-events/export?format=jsonl", headers=auth(make_key(org))
    )
    assert api.status_code == 200 and api_lines == lines
    bad = client.get(
        "/api/v1/orgs/acme/audit-events/export?format=xml", headers=auth(make_key(org))
    )
    assert bad.status_code == 400 and bad.json["error"] == "validation_error"


def test_roles_teams_policy_and_settings(client: FlaskClient, acme: dict[str, Membership]) -> None:
    sign_in(client, acme["owner"])
    token = csrf(client.get(f"{base()}/roles").text)
    bad = client.post(
        f"{base()}/roles", data={"csrf_token": token, "key": "Bad Key", "name": "Finance"}
    )
    assert bad.status_code == 400 and 'id="key-error"' in bad.text and 'value="Finance"' in bad.text
    made = client.post(
        f"{base()}/roles",
        data={
            "csrf_token": token,
            "key": "finance",
            "name": "Finance",
            "permissions": ["billing:read", "org:read"],
        },
    )
    assert made.status_code == 303
    role = db.session.scalars(select(CustomRole)).one()
    assert sorted(role.permissions) == ["billing:read", "org:read"]
    # Teams: a department inside another.
    client.post(
        f"{base()}/teams", data={"csrf_token": token, "name": "Engineering", "parent_id": ""}
    )
    eng = db.session.scalars(select(Team)).one()
    client.post(
        f"{base()}/teams", data={"csrf_token": token, "name": "Platform", "parent_id": eng.id}
    )
    teams_service.add_team_member(
        system_actor(),
        db.session.get(Organization, acme["owner"].org_id),
        eng.id,
        acme["member"].user_id,
        is_lead=True,
    )
    db.session.commit()
    tree = client.get(f"{base()}/teams").text
    assert "led by ann@acme.example" in tree
    assert re.search(
        r"Engineering</strong>[^<]*<span[^>]*>led by [^<]*</span>\s*<ul>\s*<li><strong>Platform",
        tree,
    )
    # Policy: the dry run first, then the confirmed change; a loosening is refused.
    shown = client.post(
        f"{base()}/policy", data={"csrf_token": token, "key": "invite_links", "value": "false"}
    )
    assert shown.status_code == 200 and 'id="dry-run"' in shown.text
    assert db.session.get(Organization, acme["owner"].org_id).policy_overrides in (None, {})
    confirmed = client.post(
        f"{base()}/policy",
        data={"csrf_token": token, "key": "invite_links", "value": "false", "confirmed": "yes"},
    )
    assert confirmed.status_code == 303
    db.session.expire_all()
    assert db.session.get(Organization, acme["owner"].org_id).policy_overrides == {
        "invite_links": False
    }
    bad = client.post(
        f"{base()}/policy", data={"csrf_token": token, "key": "invite_links", "value": "sometimes"}
    )
    assert (
        bad.status_code == 400
        and 'id="value-error"' in bad.text
        and 'value="sometimes"' in bad.text
    )
    # Settings: the name.
    renamed = client.post(
        f"{base()}/settings", data={"csrf_token": token, "action": "rename", "name": "Acme Corp"}
    )
    assert renamed.status_code == 303
    assert db.session.get(Organization, acme["owner"].org_id).name == "Acme Corp"
    blank = client.post(
        f"{base()}/settings", data={"csrf_token": token, "action": "rename", "name": ""}
    )
    assert blank.status_code == 400 and 'id="name-error"' in blank.text


def test_an_export_larger_than_memory_is_sent_from_disk(
    client: FlaskClient, acme: dict[str, Membership], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(downloads, "SPOOL_BYTES", 64)  # every export is "large" here
    sign_in(client, acme["admin"])
    small = client.get(f"{base()}/audit/export", query_string={"format": "jsonl"})
    try:
        lines = small.get_data(as_text=True).splitlines()
    finally:
        small.close()
    assert len(lines) >= 4 and all(json.loads(line)["action"] for line in lines)
    assert small.headers["Content-Disposition"] == "attachment; filename=acme-audit.jsonl"


def test_an_owner_hands_over_the_org_and_deletes_another(
    client: FlaskClient, acme: dict[str, Membership]
) -> None:
    sign_in(client, acme["owner"])
    page = client.get(f"{base()}/settings")
    token = csrf(page.text)
    form = {
        "transfer-csrf_token": token,
        "action": "transfer",
        "transfer-to_user_id": acme["admin"].user_id,
    }
    wrong = client.post(f"{base()}/settings", data={**form, "transfer-confirm": "acm"})
    assert wrong.status_code == 400 and 'id="transfer-confirm-error"' in wrong.text
    done = client.post(f"{base()}/settings", data={**form, "transfer-confirm": "acme"})
    assert done.status_code == 303
    roles = {m.email: m.role for m in db.session.scalars(select(Membership))}
    assert roles["admin@acme.example"] == Role.OWNER and roles["owner@acme.example"] == Role.ADMIN
    # Deleting: the slug typed again; a former owner (now admin) may not.
    beta = make_org("beta")
    boss = make_member(beta, "boss@beta.example", Role.OWNER)
    sign_in(client, boss)
    token = csrf(client.get(f"{base('beta')}/settings").text)
    kept = client.post(
        f"{base('beta')}/settings",
        data={"delete-csrf_token": token, "action": "delete", "delete-confirm": "acme"},
    )
    assert kept.status_code == 400 and 'id="delete-confirm-error"' in kept.text
    gone = client.post(
        f"{base('beta')}/settings",
        data={"delete-csrf_token": token, "action": "delete", "delete-confirm": "beta"},
    )
    assert gone.status_code == 303
    db.session.expire_all()
    assert db.session.get(Organization, beta.id).deleted_at is not None
    assert client.get(f"{base('beta')}/members").status_code == 404  # it is gone
