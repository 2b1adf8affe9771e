"""The operator pages: owners of the team's own org (GATEHOUSE_OPERATOR_ORG) run the
workspace; nobody else sees them, and each change is audited under the operator's name."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.apps.models import OAuthClient
from idp.audit.models import AuditEvent
from idp.credentials.models import ApiKey, SetupLink
from idp.db import db
from idp.orgs.models import Organization, Workspace
from idp.orgs.roles import Role
from tests.builders import auth, make_member, make_org, signed_in_cookie

OPERATOR = "/console/operator"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"OPERATOR_ORG": "house"}


def csrf(text: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', text).group(1)  # type: ignore[union-attr]


@pytest.fixture
def operator(client: FlaskClient) -> str:
    house = make_org("house", name="The SaaS team")
    boss = make_member(house, "ops@saas.example", Role.OWNER)
    client.set_cookie("gatehouse_session", signed_in_cookie(boss))
    return csrf(client.get(OPERATOR).text)


def test_only_owners_of_the_operator_org_see_the_pages(client: FlaskClient) -> None:
    assert client.get(OPERATOR).status_code == 303  # nobody signed in: the sign-in page
    house = make_org("house")
    admin = make_member(house, "admin@saas.example", Role.ADMIN)
    client.set_cookie("gatehouse_session", signed_in_cookie(admin))
    assert client.get(OPERATOR).status_code == 404
    customer = make_org("acme")
    owner = make_member(customer, "owner@acme.example", Role.OWNER)
    client.set_cookie("gatehouse_session", signed_in_cookie(owner))
    assert client.get(OPERATOR).status_code == 303  # signed in elsewhere: sign in to house


def test_an_operator_creates_an_org_and_a_setup_link_for_it(
    client: FlaskClient, operator: str
) -> None:
    bad = client.post(OPERATOR, data={"csrf_token": operator, "slug": "Not A Slug", "name": "X"})
    assert (
        bad.status_code == 400
        and 'id="slug-error"' in bad.text
        and 'value="Not A Slug"' in bad.text
    )
    made = client.post(
        OPERATOR, data={"csrf_token": operator, "slug": "acme", "name": "Acme", "parent": ""}
    )
    assert made.status_code == 303 and made.headers["Location"] == f"{OPERATOR}/orgs/acme"
    found = client.get(OPERATOR, query_string={"q": "ACM"})
    assert "acme</code>" in found.text and "house</code>" not in found.text
    link = client.post(
        f"{OPERATOR}/orgs/acme",
        data={"csrf_token": operator, "intents": ["sso"], "expires_hours": "2"},
    )
    assert "/setup/ghsetup_" in link.text
    stored = db.session.scalars(select(SetupLink)).one()
    assert stored.created_by == "operator:ops@saas.example"
    org = db.session.scalars(select(Organization).where(Organization.slug == "acme")).one()
    actors = set(
        db.session.scalars(select(AuditEvent.actor_label).where(AuditEvent.org_id == org.id))
    )
    assert actors == {"operator:ops@saas.example"}


def test_an_operator_changes_the_baseline_after_its_dry_run(
    client: FlaskClient, operator: str
) -> None:
    shown = client.post(
        f"{OPERATOR}/policy", data={"csrf_token": operator, "key": "invite_links", "value": "false"}
    )
    assert shown.status_code == 200 and 'id="dry-run"' in shown.text
    assert not db.session.scalars(select(Workspace.baseline_policy)).one()
    done = client.post(
        f"{OPERATOR}/policy",
        data={"csrf_token": operator, "key": "invite_links", "value": "false", "confirmed": "yes"},
    )
    assert done.status_code == 303
    db.session.expire_all()
    assert db.session.scalars(select(Workspace.baseline_policy)).one() == {"invite_links": False}


def test_an_operator_registers_an_app_and_makes_a_workspace_key(
    client: FlaskClient, operator: str
) -> None:
    made = client.post(
        f"{OPERATOR}/clients",
        data={"csrf_token": operator, "name": "Portal", "redirect_uri": "https://app.example/cb"},
    )
    secret = re.search(r'<code id="client-secret"[^>]*>([^<]+)</code>', made.text).group(1)  # type: ignore[union-attr]
    stored = db.session.scalars(select(OAuthClient)).one()
    assert stored.name == "Portal" and stored.check_client_secret(secret)
    assert secret not in (stored.secret_digest or "")
    bad = client.post(
        f"{OPERATOR}/clients",
        data={"csrf_token": operator, "name": "Bad", "redirect_uri": "not a uri"},
    )
    assert bad.status_code == 400 and 'id="redirect_uri-error"' in bad.text
    key_page = client.post(f"{OPERATOR}/keys", data={"csrf_token": operator, "name": "deploy"})
    key = re.search(r'<code id="workspace-key"[^>]*>([^<]+)</code>', key_page.text).group(1)  # type: ignore[union-attr]
    assert client.get("/api/v1/orgs", headers=auth(key)).status_code == 200
    row = db.session.scalars(select(ApiKey).where(ApiKey.name == "deploy")).one()
    # The workspace's only key is refused: nobody could use the API again.
    refused = client.post(
        f"{OPERATOR}/keys/{row.id}/revoke", data={"csrf_token": operator}, follow_redirects=True
    )
    assert "last live key" in refused.text
    assert client.get("/api/v1/orgs", headers=auth(key)).status_code == 200
    client.post(f"{OPERATOR}/keys", data={"csrf_token": operator, "name": "next"})
    client.post(f"{OPERATOR}/keys/{row.id}/revoke", data={"csrf_token": operator})
    assert client.get("/api/v1/orgs", headers=auth(key)).status_code == 401
