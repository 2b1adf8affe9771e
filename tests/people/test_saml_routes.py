"""The linking rules over SAML, against the real SimpleSAMLphp on loopback: two SAML
connections of one org and an emailed invitation end in one membership, suspension stops the
next SAML login, and another org's SAML IdP asserting a person of org A learns nothing of A."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.actors import system_actor
from idp.connections import services as connections
from idp.connections.models import Connection, ConnectionKind, ExternalIdentity
from idp.db import db, new_id
from idp.orgs.models import Invitation, InvitationStatus, Membership, MembershipStatus, Organization
from idp.orgs.roles import Role
from idp.orgs.services import member_snapshot, set_member_status
from idp.sso import saml
from tests.builders import auth, make_key, make_member, make_org
from tests.conftest import ISSUER
from tests.forms import form_post
from tests.peers import SamlIdp, SamlSp, self_signed_cert
from tests.sso import saml_fixtures as sf
from tests.test_mail import Inbox

ACME_ONE, ACME_TWO, BETA, BETA_TRUSTED = (new_id("con") for _ in range(4))
SP_KEYS = {connection_id: self_signed_cert("Gatehouse SP") for connection_id in
           (ACME_ONE, ACME_TWO, BETA, BETA_TRUSTED)}  # fmt: skip
CEO = "ceo@a.example"
USERS = {
    "ann": {
        "password": "ann-password",
        "attributes": {"email": "ann@acme.example", "displayName": "Ann Example"},
    },
    # At B's IdP, someone registered with the address of A's CEO.
    "ceo": {"password": "ceo-password", "attributes": {"email": CEO, "displayName": "B's Name"}},
}
CONFIRM = re.compile(r"http://gatehouse\.test(/sso/confirm\?token=\S+)")
INVITATION = re.compile(r"http://gatehouse\.test(/invitations/accept\?\S+)")


@pytest.fixture(scope="module")
def idp() -> Iterator[SamlIdp]:
    """One SimpleSAMLphp for the module, trusting the four connections' SP entries (persistent
    NameIDs: the IdP's subject for a login is the same at every connection)."""
    sps = [
        SamlSp(
            f"{ISSUER}/sso/saml/{connection_id}/metadata",
            f"{ISSUER}/sso/saml/{connection_id}/acs",
            cert_pem=cert,
        )
        for connection_id, (cert, _key) in SP_KEYS.items()
    ]
    with SamlIdp(sps=sps, users=USERS, name_id_format="persistent") as server:
        yield server


@pytest.fixture
def settings_overrides(inbox: Inbox) -> dict[str, Any]:
    return {"ALLOW_HTTP_LOOPBACK": True, "SMTP_URL": f"smtp://127.0.0.1:{inbox.port}"}


def connect(
    org: Organization, idp: SamlIdp, connection_id: str, monkeypatch: Any, **extra: Any
) -> Connection:
    """A SAML connection of the org to the IdP, with the id the IdP was told about."""
    monkeypatch.setattr(connections, "new_id", lambda _prefix: connection_id)
    cert, key = SP_KEYS[connection_id]
    settings, secret = saml.build_settings(
        metadata_url=idp.metadata_url, sp_cert_pem=cert, sp_key_pem=key
    )
    made = connections.create_connection(
        system_actor(),
        org,
        kind=ConnectionKind.SAML,
        name=f"SAML {connection_id[-4:]}",
        settings={**settings, **extra},
        secret=secret,
    )
    db.session.commit()
    return made


def sso(client: FlaskClient, idp: SamlIdp, connection: Connection, login: str = "ann") -> Any:
    """A login at the IdP through the connection, posted to its ACS: Gatehouse's answer."""
    fields = sf.idp_login(client, connection, idp, username=login, password=f"{login}-password")
    return client.post(sf.acs_path(connection), data=fields)


def confirm(client: FlaskClient, inbox: Inbox) -> Any:
    path = CONFIRM.search(inbox.messages[-1].body).group(1)  # type: ignore[union-attr]
    assert client.get(path).status_code == 200
    return form_post(client, path)


def rows_for(org: Organization, email: str) -> list[Membership]:
    db.session.rollback()  # what the requests committed
    return list(
        db.session.scalars(
            select(Membership).where(Membership.org_id == org.id, Membership.email_key == email)
        )
    )


def test_two_saml_connections_and_an_invitation_make_one_membership_until_suspended(
    app: Flask, client: FlaskClient, idp: SamlIdp, inbox: Inbox, monkeypatch: Any
) -> None:
    org = make_org("acme")  # acme.example is not verified: the IdP alone proves nothing
    make_member(org, "boss@elsewhere.example", Role.OWNER)
    invited = client.post(
        "/api/v1/orgs/acme/invitations",
        json={"email": "ann@acme.example", "role": "owner"},
        headers=auth(make_key()),
    )
    assert invited.status_code == 201, invited.json
    invitation_mail = inbox.messages[-1]
    one = connect(org, idp, ACME_ONE, monkeypatch)
    two = connect(org, idp, ACME_TWO, monkeypatch)

    # The first SAML login waits for the address's proof, then takes up the invitation.
    pending = sso(client, idp, one)
    assert pending.status_code == 200, pending.text
    assert pending.headers["X-Gatehouse-Pending"] == "email_proof_required"
    assert client.get_cookie("gatehouse_session") is None
    assert confirm(client, inbox).status_code == 303
    (ann,) = rows_for(org, "ann@acme.example")
    assert ann.role == Role.OWNER and ann.name == "Ann Example"
    invitation = db.session.scalars(select(Invitation)).one()
    assert invitation.status is InvitationStatus.ACCEPTED

    # The org's second SAML connection: the same person, linked to the same membership.
    pending = sso(client, idp, two)
    assert pending.headers["X-Gatehouse-Pending"] == "email_proof_required"
    assert confirm(client, inbox).status_code == 303
    assert [m.id for m in rows_for(org, "ann@acme.example")] == [ann.id]
    subjects = db.session.execute(
        select(ExternalIdentity.connection_id, ExternalIdentity.user_id)
    ).all()
    assert sorted(subjects) == sorted([(ACME_ONE, ann.user_id), (ACME_TWO, ann.user_id)])
    assert sso(client, idp, one).status_code == 303  # now at once, through either
    assert sso(client, idp, two).status_code == 303
    path = INVITATION.search(invitation_mail.body).group(1)  # type: ignore[union-attr]
    assert client.get(path).status_code == 410  # used by that first join
    assert client.get("/auth/check", headers={"X-Gatehouse-Org": "acme"}).status_code == 200

    set_member_status(system_actor(), org, ann.user_id, MembershipStatus.SUSPENDED)
    db.session.commit()
    assert client.get("/auth/check", headers={"X-Gatehouse-Org": "acme"}).status_code == 401
    for connection in (one, two):
        refused = sso(client, idp, connection)
        assert refused.status_code == 403, refused.text
        assert refused.headers["X-Gatehouse-Error"] == "member_suspended"
    assert [m.status for m in rows_for(org, "ann@acme.example")] == [MembershipStatus.SUSPENDED]


@pytest.mark.parametrize("trust_email", [False, True], ids=["asserted", "trust_email"])
def test_org_b_saml_idp_asserting_a_person_of_org_a_learns_nothing_of_a(
    app: Flask,
    client: FlaskClient,
    idp: SamlIdp,
    inbox: Inbox,
    monkeypatch: Any,
    trust_email: bool,
) -> None:
    org_a = make_org("alpha")
    ceo = make_member(org_a, CEO, Role.OWNER)  # proven: a workspace-wide person
    ceo.name = "Name Alpha Set"
    db.session.commit()
    before = {**member_snapshot(ceo), "name": ceo.name, "user": ceo.user_id}
    org_b = make_org("beta")
    make_member(org_b, "owner@b.example", Role.OWNER)
    connection_id = BETA_TRUSTED if trust_email else BETA
    connection = connect(org_b, idp, connection_id, monkeypatch, trust_email=trust_email)
    mails = len(inbox.messages)

    signed_in = sso(client, idp, connection, "ceo")

    # B knows no such person, so nothing waits and nothing is mailed: B gets its own person.
    assert signed_in.status_code == 303, signed_in.text
    assert len(inbox.messages) == mails
    (theirs,) = rows_for(org_b, CEO)
    assert theirs.user_id != before["user"] and theirs.name == "B's Name"
    assert theirs.user.email_normalized is None and not theirs.user.email_verified
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and [o["slug"] for o in me.json["orgs"]] == ["beta"]
    assert "alpha" not in me.text and "Name Alpha Set" not in me.text
    assert before["user"] not in me.text
    listed = client.get("/api/v1/orgs/beta/members", headers=auth(make_key(org_b)))
    assert "Name Alpha Set" not in listed.text and before["user"] not in listed.text
    # The session does not reach A, and A's person is as it was.
    other = client.get("/auth/check", headers={"X-Gatehouse-Org": "alpha"})
    assert other.status_code == 401 and "X-Gatehouse-User" not in other.headers
    (still,) = rows_for(org_a, CEO)
    assert {**member_snapshot(still), "name": still.name, "user": still.user_id} == before
