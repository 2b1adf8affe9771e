"""Signing in through an org's connection: directory matching, JIT, group roles, and the
account-takeover rule (an org's IdP never yields a session that enters another org unless
that org verified the email's domain)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.connections.domains import claim_domain, verify_domain
from idp.connections.models import Connection, ConnectionKind
from idp.connections.services import create_connection, update_connection
from idp.credentials.services import create_scim_token
from idp.db import db
from idp.login.cookies import SESSION_COOKIE, signed_session_cookie
from idp.orgs.models import Membership, MembershipSource, MembershipStatus, Organization
from idp.orgs.role_mappings import delete_role_mapping, set_role_mapping
from idp.orgs.roles import Role
from idp.orgs.services import set_member_status
from idp.people.services import EmailProofRequired
from idp.people.signin import IdpAssertion, LoginRefused, admission, sign_in
from idp.sessions.models import Session
from tests.builders import make_member, make_org
from tests.dns_server import DnsServer
from tests.forms import form_post
from tests.scim.conftest import DEACTIVATE, scim_for

HOUR = timedelta(hours=1)


def make_connection(org: Organization, name: str = "idp", **settings: object) -> Connection:
    connection = create_connection(
        system_actor(),
        org,
        kind=ConnectionKind.OIDC,
        name=name,
        settings=dict(settings),
        secret="client-secret-value",
    )
    db.session.commit()
    return connection


def login(
    connection: Connection, *, address_proven: bool = False, **claims: object
) -> tuple[Session, str]:
    session, token = sign_in(
        connection,
        IdpAssertion(**claims),  # type: ignore[arg-type]
        lifetime=HOUR,
        address_proven=address_proven,
    )
    db.session.commit()
    return session, token


def verify(dns: DnsServer, org: Organization, domain: str) -> None:
    claim = claim_domain(system_actor(), org, domain)
    dns.set_txt(domain, f"gatehouse-verification={claim.verification_token}")
    verify_domain(system_actor(), org, claim.id)
    db.session.commit()


def sessions() -> int:
    return db.session.scalar(select(func.count()).select_from(Session))


def test_first_login_provisions_just_in_time_and_the_next_reuses_the_person(app: Flask) -> None:
    org = make_org("beta")
    connection = make_connection(org)
    first, _ = login(connection, subject="sub-1", email="Ann@Beta.example", name="Ann")
    again, _ = login(connection, subject="sub-1", email="ann@beta.example")
    assert first.user_id == again.user_id
    membership = db.session.scalar(select(Membership).where(Membership.user_id == first.user_id))
    assert membership.source is MembershipSource.JIT and membership.role == Role.MEMBER
    assert first.connection_id == connection.id and first.org_id == org.id


def test_jit_off_refuses_people_the_org_does_not_know(app: Flask) -> None:
    connection = make_connection(make_org("beta"), jit=False)
    with pytest.raises(LoginRefused) as refused:
        login(connection, subject="sub-1", email="ann@beta.example")
    assert refused.value.code == "not_provisioned"
    db.session.rollback()
    assert sessions() == 0


def test_groups_of_each_login_drive_the_mapped_role(app: Flask) -> None:
    org = make_org("beta")
    make_member(org, "owner@beta.example", Role.OWNER)
    connection = make_connection(org)
    set_role_mapping(system_actor(), org, group="Admins", role=Role.ADMIN)
    db.session.commit()
    session, _ = login(connection, subject="s", email="a@beta.example", groups=["admins"])
    assert _role(org, session.user_id) == Role.ADMIN
    session, _ = login(connection, subject="s", email="a@beta.example", groups=["staff"])
    assert _role(org, session.user_id) == Role.MEMBER


def _role(org: Organization, user_id: str) -> Role:
    return db.session.scalar(
        select(Membership.role).where(Membership.org_id == org.id, Membership.user_id == user_id)
    )


def test_a_login_matches_the_orgs_scim_user_by_external_id(app: Flask, client: FlaskClient) -> None:
    org = make_org("beta")
    _, token = create_scim_token(system_actor(), org, name="idp")
    db.session.commit()
    created = client.post(
        "/scim/v2/beta/Users",
        data=json.dumps({"userName": "ann@beta.example", "externalId": "00u1"}),
        content_type="application/scim+json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201, created.json
    connection = make_connection(org)
    session, _ = login(connection, subject="00u1", email="someone-else@beta.example")
    provisioned = db.session.scalar(
        select(Membership.user_id).where(Membership.id == created.json["id"])
    )
    assert session.user_id == provisioned


def test_takeover_org_b_idp_asserting_a_members_email_cannot_enter_org_a(app: Flask) -> None:
    org_a, org_b = make_org("alpha"), make_org("beta")
    ceo = make_member(org_a, "ceo@a.example", Role.OWNER)
    connection_a = make_connection(org_a, "a-idp")
    connection_b = make_connection(org_b, "b-idp")

    session, _ = login(connection_b, subject="evil", email="ceo@a.example")

    # B's IdP does not speak for a.example: B gets a new, unlinked person, not A's CEO.
    assert session.user_id != ceo.user_id
    assert session.user.email_normalized is None
    assert admission(session, org_a.id) == "needs_org_sso"
    assert admission(session, org_b.id) is None
    # A's own IdP names its member's address, which A did not verify: the person proves it
    # once (the email link of the same browser), then A's connection signs them in.
    with pytest.raises(EmailProofRequired):
        login(connection_a, subject="ceo", email="ceo@a.example")
    db.session.rollback()
    own, _ = login(connection_a, subject="ceo", email="ceo@a.example", address_proven=True)
    assert own.user_id == ceo.user_id and admission(own, org_a.id) is None
    again, _ = login(connection_a, subject="ceo", email="ceo@a.example")  # the subject is linked
    assert again.user_id == ceo.user_id


def test_takeover_through_scim_linking_still_cannot_enter_org_a(
    app: Flask, client: FlaskClient
) -> None:
    org_a, org_b = make_org("alpha"), make_org("beta")
    ceo = make_member(org_a, "ceo@a.example", Role.OWNER)
    _, token = create_scim_token(system_actor(), org_b, name="idp")
    db.session.commit()
    # B's SCIM feed provisions A's CEO's address: B gets a person of its own...
    created = client.post(
        "/scim/v2/beta/Users",
        data=json.dumps({"userName": "ceo@a.example"}),
        content_type="application/scim+json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201
    session, _ = login(make_connection(org_b, "b-idp"), subject="x", email="ceo@a.example")
    assert session.user_id != ceo.user_id
    assert session.user_id == db.session.get(Membership, created.json["id"]).user_id
    # ...and a session authenticated by B's IdP is not accepted by A.
    assert admission(session, org_a.id) == "needs_org_sso"


def test_a_verified_domain_makes_the_orgs_idp_the_authority_for_its_addresses(
    app: Flask, dns: DnsServer
) -> None:
    org_a, org_b = make_org("alpha"), make_org("beta")
    person = make_member(org_a, "ann@b.example")
    verify(dns, org_b, "b.example")
    session, _ = login(make_connection(org_b), subject="ann", email="ann@b.example")
    assert session.user_id == person.user_id  # the workspace identity, linked
    assert admission(session, org_a.id) is None  # and accepted by org A too


def test_suspended_members_and_disabled_connections_get_no_session(app: Flask) -> None:
    org = make_org("beta")
    connection = make_connection(org)
    session, _ = login(connection, subject="s", email="a@beta.example")
    make_member(org, "owner@beta.example", Role.OWNER)
    set_member_status(system_actor(), org, session.user_id, MembershipStatus.SUSPENDED)
    db.session.commit()
    with pytest.raises(LoginRefused) as refused:
        login(connection, subject="s", email="a@beta.example")
    assert refused.value.code == "member_suspended"
    db.session.rollback()
    update_connection(system_actor(), org, connection, enabled=False)
    db.session.commit()
    with pytest.raises(LoginRefused) as refused:
        login(connection, subject="t", email="b@beta.example")
    assert refused.value.code == "connection_disabled"


def test_me_answers_for_a_live_session_and_401_otherwise(app: Flask, client: FlaskClient) -> None:
    org = make_org("beta")
    _session, token = login(make_connection(org), subject="s", email="a@beta.example")
    assert client.get("/api/v1/me").status_code == 401
    client.set_cookie(SESSION_COOKIE, token)  # unsigned: refused
    assert client.get("/api/v1/me").status_code == 401
    with app.test_request_context():
        client.set_cookie(SESSION_COOKIE, signed_session_cookie(token))
    me = client.get("/api/v1/me")
    assert me.status_code == 200, me.json
    assert me.json["org"]["slug"] == "beta" and me.json["role"] == "member"
    assert me.json["user"]["email"] == "a@beta.example"
    assert [o["slug"] for o in me.json["orgs"]] == ["beta"] and me.json["orgs"][0]["signed_in"]
    assert form_post(client, "/logout").status_code == 303
    with app.test_request_context():
        client.set_cookie(SESSION_COOKIE, signed_session_cookie(token))
    assert client.get("/api/v1/me").status_code == 401  # revoked server-side


def test_scim_deactivation_ends_the_session_on_the_next_request(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("beta")
    make_member(org, "owner@beta.example", Role.OWNER)
    scim = scim_for(client, org)
    created = scim("POST", "/Users", {"userName": "ann@beta.example", "externalId": "00u1"})
    session, token = login(make_connection(org), subject="00u1", email="ann@beta.example")
    with app.test_request_context():
        client.set_cookie(SESSION_COOKIE, signed_session_cookie(token))
    assert client.get("/api/v1/me").status_code == 200

    assert scim("PATCH", f"/Users/{created.json['id']}", DEACTIVATE).status_code == 200

    assert client.get("/api/v1/me").status_code == 401
    db.session.expire_all()
    revoked = db.session.get(Session, session.id)
    assert revoked.revoked_at is not None and revoked.revoked_reason == "member_suspended"


def test_a_mapping_set_later_applies_to_groups_asserted_at_the_last_login(app: Flask) -> None:
    org = make_org("beta")
    make_member(org, "owner@beta.example", Role.OWNER)
    session, _ = login(make_connection(org), subject="s", email="a@beta.example", groups=["Ops"])
    assert _role(org, session.user_id) == Role.MEMBER
    mapping = set_role_mapping(system_actor(), org, group="ops", role=Role.ADMIN)
    db.session.commit()
    assert _role(org, session.user_id) == Role.ADMIN
    delete_role_mapping(system_actor(), org, mapping)
    db.session.commit()
    assert _role(org, session.user_id) == Role.MEMBER
