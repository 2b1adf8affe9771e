"""Setup links through the admin API and the CLI: shown once, stored as a digest, expiring,
revocable, owners' (and the operator's) to hand out, and acting only within their intents."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from idp.audit.models import AuditEvent
from idp.credentials import setup_links
from idp.credentials.models import SetupLink
from idp.crypto import token_digest
from idp.db import db, utcnow
from idp.errors import Forbidden
from idp.orgs.roles import Permission, Role
from tests.builders import auth, make_key, make_org
from tests.test_cli import ok

BASE = "/api/v1/orgs/acme/setup-links"


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_link_is_shown_once_stored_as_a_digest_and_revocable(
    client: FlaskClient, root_key: str
) -> None:
    make_org("acme")
    made = client.post(BASE, json={"intents": ["sso", "scim"]}, headers=auth(root_key))
    assert made.status_code == 201, made.json
    url, link_id = made.json["url"], made.json["id"]
    assert url.startswith("http") and "/setup/ghsetup_" in url
    assert made.json["intents"] == ["sso", "scim"]
    lifetime = made.json["expires_at"]
    stored = db.session.get(SetupLink, link_id)
    assert stored.token_digest == token_digest(token_of(url))
    assert token_of(url) not in repr(db.session.execute(select(SetupLink.__table__)).all())
    listed = client.get(BASE, headers=auth(root_key)).json["data"]
    assert [item["id"] for item in listed] == [link_id] and "url" not in listed[0]
    assert lifetime == listed[0]["expires_at"]
    link, org = setup_links.open_setup_link(token_of(url))
    assert (link.id, org.slug) == (link_id, "acme")
    revoked = client.delete(f"{BASE}/{link_id}", headers=auth(root_key))
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    with pytest.raises(Forbidden) as refused:
        setup_links.open_setup_link(token_of(url))
    assert refused.value.code == "setup_link_invalid"
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_id == link_id).order_by(AuditEvent.id)
    ).all()
    assert actions == ["setup_link.created", "setup_link.revoked"]


def test_an_expired_or_made_up_link_opens_nothing(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    made = client.post(BASE, json={"intents": ["sso"], "expires_in": 300}, headers=auth(root_key))
    link = db.session.get(SetupLink, made.json["id"])
    link.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    for token in (token_of(made.json["url"]), "ghsetup_made-up", "", "x" * 500):
        with pytest.raises(Forbidden):
            setup_links.open_setup_link(token)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"intents": []}, "validation_error"),
        ({"intents": ["everything"]}, "validation_error"),
        ({"intents": ["sso"], "expires_in": 10}, "invalid_expires_in"),
        ({"intents": ["sso"], "expires_in": 90 * 86400}, "invalid_expires_in"),
    ],
)
def test_bad_links_are_refused_and_nothing_is_stored(
    client: FlaskClient, root_key: str, body: dict, code: str
) -> None:
    make_org("acme")
    refused = client.post(BASE, json=body, headers=auth(root_key))
    assert refused.status_code == 400 and refused.json["error"] == code
    assert db.session.scalar(select(SetupLink.id)) is None


def test_only_owners_hand_out_links_and_another_org_sees_none(client: FlaskClient) -> None:
    acme = make_org("acme")
    beta = make_org("beta")
    admin = client.post(BASE, json={"intents": ["sso"]}, headers=auth(make_key(acme, Role.ADMIN)))
    assert admin.status_code == 403
    owner_key = make_key(acme, Role.OWNER)
    made = client.post(BASE, json={"intents": ["sso"]}, headers=auth(owner_key))
    assert made.status_code == 201
    beta_key = make_key(beta, Role.OWNER)
    assert client.get(BASE, headers=auth(beta_key)).status_code == 404
    assert client.get("/api/v1/orgs/beta/setup-links", headers=auth(beta_key)).json["data"] == []
    crossed = client.delete(
        f"/api/v1/orgs/beta/setup-links/{made.json['id']}", headers=auth(beta_key)
    )
    assert crossed.status_code == 404 and crossed.json["error"] == "setup_link_not_found"


def test_a_link_acts_within_its_intents_in_its_org_only(client: FlaskClient, root_key: str) -> None:
    acme = make_org("acme")
    made = client.post(BASE, json={"intents": ["scim"]}, headers=auth(root_key)).json
    link, org = setup_links.open_setup_link(token_of(made["url"]))
    actor = setup_links.actor_for_setup_link(link, org.workspace_id, None)
    assert actor.can(Permission.SCIM_TOKENS_WRITE).allowed
    assert not actor.can(Permission.CONNECTIONS_WRITE).allowed
    assert not actor.can(Permission.MEMBERS_READ).allowed
    assert actor.authority_in(acme.id) is not None
    assert actor.authority_in(make_org("beta").id) is None


def test_the_cli_prints_only_the_url(runner: FlaskCliRunner) -> None:
    make_org("acme")
    result = ok(runner, "setup-link", "create", "acme", "--intent", "sso", "--intent", "domains")
    url = result.stdout.strip()
    assert "\n" not in url and "/setup/ghsetup_" in url
    link, _ = setup_links.open_setup_link(token_of(url))
    assert link.intents == ["sso", "domains"]
