"""The linking rules route by route: no tenant learns anything of another's person, one
membership per address per org under concurrency, names that are safe to show."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.connections.models import Connection, ConnectionKind, ExternalIdentity
from idp.connections.services import create_connection
from idp.db import db
from idp.login.cookies import SESSION_COOKIE, signed_session_cookie
from idp.orgs import invitations
from idp.orgs.models import Membership, MembershipSource, Organization
from idp.orgs.roles import Role
from idp.orgs.services import get_membership, member_snapshot
from idp.people.services import EmailProofRequired
from idp.people.signin import IdpAssertion, sign_in
from idp.users.models import User
from tests.admin.test_api import Api
from tests.builders import auth, make_key, make_member, make_org, make_verified_domain
from tests.forms import form_post
from tests.orgs.test_races import ROUNDS, race, winners_and_losers
from tests.scim.conftest import scim_for, user_body

HOUR = timedelta(hours=1)
CEO = "ceo@a.example"


def connection_of(org: Organization, name: str = "idp", **settings: Any) -> Connection:
    made = create_connection(
        system_actor(), org, kind=ConnectionKind.OIDC, name=name, settings=settings, secret="s"
    )
    db.session.commit()
    return made


def sso(connection: Connection, subject: str, email: str, name: str = "Asserted") -> Any:
    session, token = sign_in(
        connection, IdpAssertion(subject=subject, email=email, name=name), lifetime=HOUR
    )
    db.session.commit()
    return session, token


@pytest.fixture
def org_a(app: Flask) -> Organization:
    """Org A: its CEO (a proven address, an owner), named by A."""
    org = make_org("alpha")
    ceo = make_member(org, CEO, Role.OWNER)
    ceo.name = "Name Alpha Set"
    db.session.commit()
    return org


def a_view(org_a: Organization) -> dict[str, Any]:
    ceo = db.session.scalar(
        select(Membership).where(Membership.org_id == org_a.id, Membership.email_key == CEO)
    )
    return {**member_snapshot(ceo), "name": ceo.name, "user": ceo.user_id}


# --- each route of org B names A's CEO ----------------------------------------------------


def by_admin_add(client: FlaskClient, org_b: Organization) -> str:
    answer = client.post(
        f"/api/v1/orgs/{org_b.slug}/members",
        json={"email": CEO, "name": "Name Beta Set"},
        headers=auth(make_key(org_b)),
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["name"] == "Name Beta Set"
    return answer.json["user_id"]


def by_scim(client: FlaskClient, org_b: Organization) -> str:
    scim = scim_for(client, org_b)
    created = scim("POST", "/Users", user_body(CEO, displayName="Name Beta Set"))
    assert created.status_code == 201, created.json
    return db.session.get(Membership, created.json["id"]).user_id


def by_invitation_token(client: FlaskClient, org_b: Organization) -> str:
    _invitation, token = invitations.invite_by_email(system_actor(), org_b, email=CEO)
    db.session.commit()
    accepted = client.post("/api/v1/invitations/accept", json={"token": token})
    assert accepted.status_code == 200, accepted.json
    return accepted.json["user_id"]


def by_invitation_page(client: FlaskClient, org_b: Organization) -> str:
    """B's admin opens the accept URL the API showed (no mail proof) in a browser."""
    _invitation, token = invitations.invite_by_email(system_actor(), org_b, email=CEO)
    db.session.commit()
    form_post(client, "/invitations/accept", data={"token": token, "answer": "accept"})
    return db.session.scalar(
        select(Membership.user_id).where(Membership.org_id == org_b.id, Membership.email_key == CEO)
    )


def by_link(client: FlaskClient, org_b: Organization) -> str:
    _invitation, token = invitations.create_invite_link(system_actor(), org_b)
    db.session.commit()
    accepted = client.post("/api/v1/invitations/accept", json={"token": token, "email": CEO})
    assert accepted.status_code == 200, accepted.json
    return accepted.json["user_id"]


def by_sso(client: FlaskClient, org_b: Organization) -> str:
    session, token = sso(connection_of(org_b), "evil", CEO)
    with client.application.test_request_context():
        client.set_cookie(SESSION_COOKIE, signed_session_cookie(token))
    return session.user_id


def by_trusted_sso(client: FlaskClient, org_b: Organization) -> str:
    session, token = sso(connection_of(org_b, trust_email=True), "evil", CEO)
    with client.application.test_request_context():
        client.set_cookie(SESSION_COOKIE, signed_session_cookie(token))
    return session.user_id


ROUTES: dict[str, Callable[[FlaskClient, Organization], str]] = {
    "admin_add": by_admin_add,
    "scim_create": by_scim,
    "invitation_api": by_invitation_token,
    "invitation_page": by_invitation_page,
    "invite_link": by_link,
    "sso_jit": by_sso,
    "sso_trust_email": by_trusted_sso,
}


@pytest.mark.parametrize("route", ROUTES)
def test_org_b_naming_a_person_of_org_a_learns_nothing_of_a(
    client: FlaskClient, org_a: Organization, route: str
) -> None:
    before = a_view(org_a)
    org_b = make_org("beta")
    make_member(org_b, "owner@b.example", Role.OWNER)
    user_id = ROUTES[route](client, org_b)
    db.session.rollback()

    # Not A's person: another id, no workspace identity, nothing A set.
    assert user_id is not None and user_id != before["user"]
    theirs = get_membership(org_b.id, user_id)
    assert theirs.user.email_normalized is None and not theirs.user.email_verified
    assert theirs.name != "Name Alpha Set"
    listed = client.get(f"/api/v1/orgs/{org_b.slug}/members", headers=auth(make_key(org_b)))
    assert "Name Alpha Set" not in listed.text and before["user"] not in listed.text
    # A session from B (where the route made one) sees B only.
    me = client.get("/api/v1/me")
    if me.status_code == 200:
        assert [o["slug"] for o in me.json["orgs"]] == ["beta"]
        assert "alpha" not in me.text and "Name Alpha Set" not in me.text
    # A's data is as it was.
    assert a_view(org_a) == before


def test_a_b_session_through_a_verified_domain_still_lists_only_what_it_speaks_for(
    client: FlaskClient, org_a: Organization
) -> None:
    """An IdP signs in a person only for its org, unless that org verified the domain."""
    org_b = make_org("beta")
    make_member(org_b, "owner@b.example", Role.OWNER)
    make_verified_domain(org_a, "a.example")
    _session, token = sso(connection_of(org_b, trust_email=True), "evil", CEO)
    with client.application.test_request_context():
        client.set_cookie(SESSION_COOKIE, signed_session_cookie(token))
    me = client.get("/api/v1/me").json
    assert [o["slug"] for o in me["orgs"]] == ["beta"]


def test_the_pending_invitation_role_is_applied_at_the_first_sso_login(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "owner@elsewhere.example", Role.OWNER)
    make_verified_domain(org, "acme.example")  # the org's IdP speaks for its addresses
    invitations.invite_by_email(system_actor(), org, email="ann@acme.example", role=Role.ADMIN)
    db.session.commit()
    session, _ = sso(connection_of(org), "ann-1", "ann@acme.example", "Ann")
    membership = get_membership(org.id, session.user_id)
    assert membership.role == Role.ADMIN and membership.name == "Ann"
    assert session.user.email_normalized == "ann@acme.example"


def test_an_unproven_login_naming_a_pending_invitation_must_prove_the_address(
    app: Flask,
) -> None:
    org = make_org("acme")
    invitations.invite_by_email(system_actor(), org, email="ann@acme.example", role=Role.OWNER)
    db.session.commit()
    with pytest.raises(EmailProofRequired):
        sso(connection_of(org), "ann-1", "ann@acme.example")
    db.session.rollback()
    assert not db.session.scalar(select(func.count()).select_from(Membership))


def test_two_first_logins_through_two_connections_at_once_make_one_membership(
    app: Flask,
) -> None:
    org = make_org("acme")
    make_verified_domain(org, "acme.example")
    first, second = connection_of(org, "first").id, connection_of(org, "second").id
    for round_ in range(ROUNDS):
        email = f"p{round_}@acme.example"

        def login(connection_id: str, email: str = email) -> Callable[[Any], str]:
            def run(_org: Any) -> str:
                connection = db.session.get(Connection, connection_id)  # the worker's session
                assertion = IdpAssertion(subject=f"{connection_id}-{email}", email=email)
                return sign_in(connection, assertion, lifetime=HOUR)[0].user_id

            return run

        outcomes = race(app, None, [login(first), login(second)])
        winners, _losers = winners_and_losers(outcomes, lambda exc: exc.status == 409)
        db.session.rollback()
        rows = db.session.scalars(
            select(Membership).where(Membership.org_id == org.id, Membership.email_key == email)
        ).all()
        assert len(rows) == 1, (round_, rows)
        assert set(winners) <= {rows[0].user_id}
        linked = db.session.scalars(
            select(ExternalIdentity.user_id).where(ExternalIdentity.user_id == rows[0].user_id)
        ).all()
        assert len(linked) == len(winners)


BAD_NAMES = {
    "bidi-override": "Ann \u202eevil",
    "bidi-isolate": "Ann \u2066x",
    "zero-width-space": "An\u200bn",
    "zero-width-joiner": "An\u200dn",
    "bom": "\ufeffAnn",
    "control": "Ann\x07",
    "line-separator": "Ann\u2028B",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_names_with_invisible_characters_are_refused_and_nothing_is_stored(
    client: FlaskClient, root_key: str, name: str
) -> None:
    api = Api(client, root_key)
    org = api("POST", "/orgs", {"slug": "acme", "name": name})
    assert org.status_code == 400 and org.json["error"] == "invalid_name", org.json
    assert not db.session.scalar(select(func.count()).select_from(Organization))
    ok_org = api("POST", "/orgs", {"slug": "acme", "name": "Acme"})
    assert ok_org.status_code == 201
    member = api("POST", "/orgs/acme/members", {"email": "a@x.example", "name": name})
    assert member.status_code == 400 and member.json["error"] == "invalid_name"
    team = api("POST", "/orgs/acme/teams", {"name": name})
    assert team.status_code == 400 and team.json["error"] == "invalid_name"
    db.session.rollback()
    assert not db.session.scalar(select(func.count()).select_from(Membership))
    assert not db.session.scalar(select(func.count()).select_from(User))
    scim = scim_for(client, db.session.scalars(select(Organization)).one())
    provisioned = scim("POST", "/Users", user_body("b@x.example", displayName=name))
    assert provisioned.status_code == 400, json.dumps(provisioned.json)
    assert provisioned.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def _earlier_release_duplicate(org: Organization, email: str, role: Role) -> Membership:
    """What an earlier release could write: another person and membership for one address."""
    user = User(workspace_id=org.workspace_id, email=email, name="Dup")
    db.session.add(user)
    db.session.flush()
    membership = Membership(
        org_id=org.id,
        user_id=user.id,
        role=role,
        assigned_role=role,
        source=MembershipSource.JIT,
        email=email,
        email_key=None,  # as the migration leaves all but the oldest
    )
    db.session.add(membership)
    db.session.commit()
    return membership


def test_people_duplicates_lists_and_merge_joins_them_never_above_the_highest_role(
    app: Flask, runner: Any
) -> None:
    org = make_org("acme")
    make_member(org, "boss@acme.example", Role.OWNER)
    first = make_member(org, "ann@acme.example", Role.MEMBER, proven=False)
    second = _earlier_release_duplicate(org, "Ann@acme.example", Role.ADMIN)
    listed = runner.invoke(args=["people", "duplicates", "acme"])
    assert listed.exit_code == 1, listed.output
    [row] = [json.loads(line) for line in listed.output.splitlines()]
    assert row["email"] == "ann@acme.example"
    assert [m["user_id"] for m in row["members"]] == [first.user_id, second.user_id]

    merged = runner.invoke(args=["people", "merge", "acme", first.user_id, second.user_id])
    assert merged.exit_code == 0, merged.output
    db.session.rollback()
    [kept] = db.session.scalars(
        select(Membership).where(
            Membership.org_id == org.id, Membership.email == "ann@acme.example"
        )
    ).all()
    assert kept.user_id == first.user_id and kept.role == Role.ADMIN
    assert kept.email_key == "ann@acme.example"
    assert runner.invoke(args=["people", "duplicates"]).exit_code == 0
    events = db.session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == org.id)).all()
    assert "member.merged" in events
    refused = runner.invoke(args=["people", "merge", "acme", first.user_id, first.user_id])
    assert refused.exit_code == 1 and "nothing_to_merge" in refused.output


def test_only_an_owner_marks_a_connection_trust_email(client: FlaskClient) -> None:
    org = make_org("acme")
    connection = connection_of(org)
    path = f"/api/v1/orgs/acme/connections/{connection.id}"
    as_admin = client.patch(path, json={"trust_email": True}, headers=auth(make_key(org)))
    assert as_admin.status_code == 403 and as_admin.json["error"] == "owner_protected"
    owner_key = make_key(org, Role.OWNER)
    as_owner = client.patch(path, json={"trust_email": True}, headers=auth(owner_key))
    assert as_owner.status_code == 200, as_owner.json
    assert as_owner.json["settings"]["trust_email"] is True
    db.session.rollback()
    [event] = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "connection.updated")
    ).all()
    assert (event.before["trust_email"], event.after["trust_email"]) == (False, True)
