"""API keys: stored as digests, scoped, revocable, never above their creator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text

from idp.actors import Actor, ActorKind, system_actor
from idp.credentials.models import ApiKey
from idp.credentials.services import authenticate_api_key, create_api_key, revoke_api_key
from idp.crypto import token_digest
from idp.db import db, utcnow
from idp.errors import Conflict, Forbidden, NotFound
from idp.orgs.roles import Role
from tests.builders import make_org, workspace
from tests.orgs.test_races import ROUNDS, is_conflict, race, winners_and_losers


def test_only_the_digest_is_stored(app: Flask) -> None:
    key, token = create_api_key(system_actor(), workspace().id, name="ci")
    db.session.commit()
    assert token.startswith("ghk_") and len(token) >= 47
    row = db.session.execute(text("SELECT * FROM api_keys")).mappings().one()
    assert token not in repr(dict(row)) and row["token_digest"] == token_digest(token)
    assert row["hint"] == token[-4:]
    assert authenticate_api_key(token).id == key.id


@pytest.mark.parametrize("token", ["", "ghk_", "ghk_nope", "Bearer x", "ghi_" + "a" * 43])
def test_unknown_tokens_are_refused(app: Flask, token: str) -> None:
    create_api_key(system_actor(), workspace().id, name="ci")
    assert authenticate_api_key(token) is None


def test_revoked_and_expired_keys_stop_working(app: Flask) -> None:
    create_api_key(system_actor(), workspace().id, name="kept")  # the last one stays
    key, token = create_api_key(system_actor(), workspace().id, name="ci")
    revoke_api_key(system_actor(), workspace().id, key.id)
    assert authenticate_api_key(token) is None
    with pytest.raises(Conflict):
        revoke_api_key(system_actor(), workspace().id, key.id)
    other, other_token = create_api_key(system_actor(), workspace().id, name="old")
    other.expires_at = utcnow() - timedelta(seconds=1)
    assert authenticate_api_key(other_token) is None


def test_org_keys_never_exceed_their_creator(app: Flask) -> None:
    org = make_org("acme")
    admin = Actor(ActorKind.API_KEY, "k", "k", role=Role.ADMIN, org_id=org.id)
    with pytest.raises(Forbidden):
        create_api_key(admin, workspace().id, name="x", org=org, role=Role.OWNER)
    with pytest.raises(Forbidden):
        create_api_key(admin, workspace().id, name="x")  # a workspace key
    key, _ = create_api_key(admin, workspace().id, name="x", org=org, role=Role.MEMBER)
    assert key.role == Role.MEMBER and key.org_id == org.id


def test_revoking_needs_the_right_scope(app: Flask) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    key, _ = create_api_key(system_actor(), workspace().id, name="x", org=globex)
    with pytest.raises(NotFound):
        revoke_api_key(system_actor(), workspace().id, key.id, org=acme)
    with pytest.raises(NotFound):
        revoke_api_key(system_actor(), workspace().id, key.id)  # not a workspace key
    owner_key, _ = create_api_key(
        system_actor(), workspace().id, name="o", org=acme, role=Role.OWNER
    )
    admin = Actor(ActorKind.API_KEY, "k", "k", role=Role.ADMIN, org_id=acme.id)
    with pytest.raises(Forbidden):
        revoke_api_key(admin, workspace().id, owner_key.id, org=acme)


def test_last_used_is_kept_coarsely(app: Flask) -> None:
    key, token = create_api_key(system_actor(), workspace().id, name="ci")
    db.session.commit()
    authenticate_api_key(token)
    db.session.commit()
    first = db.session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key.id))
    assert first is not None
    authenticate_api_key(token)
    db.session.commit()
    assert db.session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key.id)) == first


def test_the_last_workspace_key_is_never_revoked(app: Flask) -> None:
    key, token = create_api_key(system_actor(), workspace().id, name="only")
    expired, _ = create_api_key(system_actor(), workspace().id, name="expired")
    expired.expires_at = utcnow() - timedelta(seconds=1)  # authenticates nobody: no spare
    create_api_key(system_actor(), workspace().id, name="org", org=make_org("acme"))  # no spare
    with pytest.raises(Conflict) as refused:
        revoke_api_key(system_actor(), workspace().id, key.id)
    assert refused.value.code == "last_workspace_key"
    assert key.revoked_at is None and authenticate_api_key(token).id == key.id
    spare, _ = create_api_key(system_actor(), workspace().id, name="spare")
    revoke_api_key(system_actor(), workspace().id, key.id)
    assert key.revoked_at is not None
    with pytest.raises(Conflict, match="last live key"):
        revoke_api_key(system_actor(), workspace().id, spare.id)


def test_two_revocations_of_the_last_two_workspace_keys_leave_one(app: Flask) -> None:
    """Each worker reads "another key is left" only after the workspace row's lock: without
    it both commit on most rounds (PostgreSQL) and the workspace is locked out."""
    for round_ in range(ROUNDS):
        keys = [create_api_key(system_actor(), workspace().id, name=f"k{i}")[0] for i in (1, 2)]
        ids = [k.id for k in keys]
        outcomes = race(
            app,
            None,
            [
                lambda _org, key_id=key_id: revoke_api_key(system_actor(), workspace().id, key_id)
                for key_id in ids
            ],
        )
        winners, losers = winners_and_losers(outcomes, is_conflict("last_workspace_key"))
        assert (len(winners), len(losers)) == (1, 1), f"round {round_}"
        db.session.expire_all()
        live = db.session.scalars(
            select(ApiKey).where(ApiKey.id.in_(ids), ApiKey.revoked_at.is_(None))
        ).all()
        assert len(live) == 1
        for key in live:  # the next round starts from no live workspace key again
            key.revoked_at = utcnow()
        db.session.commit()
