"""Invitations by email and by link: tokens, states, accept, reject, resend, revoke, expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from idp.actors import Actor, ActorKind, system_actor
from idp.audit.models import AuditEvent
from idp.crypto import token_digest
from idp.db import db, utcnow
from idp.errors import BadRequest, Conflict, Forbidden, Gone, NotFound
from idp.orgs import invitations, services, teams
from idp.orgs.models import Invitation, InvitationStatus, MembershipSource
from idp.orgs.roles import Role
from tests.builders import invite_mailed, make_member, make_org


def admin_of(org_id: str) -> Actor:
    return Actor(ActorKind.API_KEY, "key_admin", "api_key:admin", role=Role.ADMIN, org_id=org_id)


def test_email_invitation_round_trip(app: Flask) -> None:
    org = make_org("acme")
    team = teams.create_team(system_actor(), org, name="Eng")
    invitation, token = invitations.invite_by_email(
        system_actor(), org, email="New@Example.com", role=Role.ADMIN, team_ids=[team.id]
    )
    db.session.commit()
    assert token.startswith("ghi_") and len(token) > 40
    stored = db.session.get(Invitation, invitation.id)
    assert stored.token_digest == token_digest(token) and token not in str(stored.__dict__)
    assert stored.email == "new@example.com" and stored.status is InvitationStatus.PENDING
    assert timedelta(days=6, hours=23) < stored.expires_at - utcnow() <= timedelta(days=7)

    membership = invitations.accept_invitation(token)
    db.session.commit()
    assert membership.role == Role.ADMIN and membership.source is MembershipSource.INVITE
    assert membership.user.email == "new@example.com"
    assert [m.membership_id for m in teams.list_team_members(org.id, team.id).items] == [
        membership.id
    ]
    assert db.session.get(Invitation, invitation.id).status is InvitationStatus.ACCEPTED
    with pytest.raises(Gone):
        invitations.accept_invitation(token)  # one time only


def test_accept_with_a_different_email_is_refused(app: Flask) -> None:
    org = make_org("acme")
    _, token = invitations.invite_by_email(system_actor(), org, email="a@x.example")
    with pytest.raises(Forbidden) as info:
        invitations.accept_invitation(token, email="mallory@x.example")
    assert info.value.code == "email_mismatch"
    assert invitations.accept_invitation(token, email="A@X.example").user.email == "a@x.example"


def test_an_invitation_accepted_by_its_token_alone_gives_the_org_a_person_of_its_own(
    app: Flask,
) -> None:
    first = make_member(make_org("a"), "p@x.example")
    org = make_org("b")
    _, token = invitations.invite_by_email(system_actor(), org, email="p@x.example")
    joined = invitations.accept_invitation(token)  # the inviter saw this token: b's word
    assert joined.user_id != first.user_id
    assert joined.user.email_normalized is None and not joined.user.email_verified


def test_an_invitation_opened_from_its_mail_joins_the_workspace_identity(app: Flask) -> None:
    a, b = make_org("a"), make_org("b")
    first = make_member(a, "p@x.example")  # a's own person, whom no IdP of a signs in
    token, proof = invite_mailed(b, "p@x.example", Role.ADMIN)
    joined = invitations.accept_invitation(token, proof=proof)
    db.session.commit()
    person = joined.user
    assert person.email_normalized == "p@x.example" and person.email_verified
    assert joined.role == Role.ADMIN
    # a's person of its own became this identity (the address is proven), audited in a.
    assert services.get_membership(a.id, person.id).id == first.id
    [linked] = db.session.scalars(
        select(AuditEvent).where(AuditEvent.org_id == a.id, AuditEvent.action == "member.linked")
    ).all()
    assert linked.after["user_id"] == person.id


def test_a_forged_proof_proves_nothing(app: Flask) -> None:
    org = make_org("b")
    token, proof = invite_mailed(org, "p@x.example")
    joined = invitations.accept_invitation(token, proof=proof[:-2] + "xx")
    assert joined.user.email_normalized is None


def test_unknown_token_is_not_found(app: Flask) -> None:
    with pytest.raises(NotFound):
        invitations.accept_invitation("ghi_" + "x" * 43)
    with pytest.raises(NotFound):
        invitations.reject_invitation("")


def test_invite_refuses_members_and_duplicates(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "m@x.example")
    with pytest.raises(Conflict) as info:
        invitations.invite_by_email(system_actor(), org, email="M@x.example")
    assert info.value.code == "already_member"
    invitation, _ = invitations.invite_by_email(system_actor(), org, email="n@x.example")
    with pytest.raises(Conflict) as info:
        invitations.invite_by_email(system_actor(), org, email="N@x.example")
    assert info.value.code == "invitation_pending" and info.value.details["invitation_id"] == (
        invitation.id
    )


def test_invite_checks_teams_and_role_authority(app: Flask) -> None:
    org, other = make_org("acme"), make_org("other")
    foreign = teams.create_team(system_actor(), other, name="Theirs")
    with pytest.raises(NotFound):
        invitations.invite_by_email(system_actor(), org, email="a@x.example", team_ids=[foreign.id])
    with pytest.raises(Forbidden) as info:
        invitations.invite_by_email(admin_of(org.id), org, email="a@x.example", role=Role.OWNER)
    assert info.value.code == "owner_protected"
    member = Actor(ActorKind.API_KEY, "k", "k", role=Role.MEMBER, org_id=org.id)
    with pytest.raises(Forbidden):
        invitations.invite_by_email(member, org, email="a@x.example")


def test_resend_kills_the_old_token(app: Flask) -> None:
    org = make_org("acme")
    invitation, old = invitations.invite_by_email(system_actor(), org, email="a@x.example")
    _, new = invitations.resend_invitation(system_actor(), org, invitation.id)
    db.session.commit()
    assert new != old
    with pytest.raises(NotFound):
        invitations.accept_invitation(old)
    assert invitations.accept_invitation(new).user.email == "a@x.example"


def test_revoke_and_reject(app: Flask) -> None:
    org = make_org("acme")
    revoked, revoked_token = invitations.invite_by_email(system_actor(), org, email="a@x.example")
    invitations.revoke_invitation(system_actor(), org, revoked.id)
    with pytest.raises(Gone):
        invitations.accept_invitation(revoked_token)
    with pytest.raises(Conflict):
        invitations.revoke_invitation(system_actor(), org, revoked.id)
    with pytest.raises(Conflict):
        invitations.resend_invitation(system_actor(), org, revoked.id)

    rejected, token = invitations.invite_by_email(system_actor(), org, email="b@x.example")
    invitations.reject_invitation(token)
    assert db.session.get(Invitation, rejected.id).status is InvitationStatus.REJECTED
    with pytest.raises(Gone):
        invitations.accept_invitation(token)


def test_expired_invitations(app: Flask) -> None:
    org = make_org("acme")
    invitation, token = invitations.invite_by_email(system_actor(), org, email="a@x.example")
    invitation.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert invitations.current_status(invitation) is InvitationStatus.EXPIRED
    with pytest.raises(Gone) as info:
        invitations.accept_invitation(token)
    assert info.value.code == "invitation_expired"
    assert invitations.list_invitations(org.id, status=InvitationStatus.PENDING).items == []
    assert invitations.expire_invitations(system_actor()) == 1
    db.session.commit()
    assert db.session.get(Invitation, invitation.id).status is InvitationStatus.EXPIRED
    assert invitations.expire_invitations(system_actor()) == 0
    # an expired email invitation can be sent again
    _, fresh = invitations.resend_invitation(system_actor(), org, invitation.id)
    assert invitations.accept_invitation(fresh).user.email == "a@x.example"


def test_ttl_bounds(app: Flask) -> None:
    org = make_org("acme")
    for ttl in (timedelta(seconds=10), timedelta(days=91)):
        with pytest.raises(BadRequest):
            invitations.invite_by_email(system_actor(), org, email="a@x.example", ttl=ttl)


def test_link_invitation(app: Flask) -> None:
    org = make_org("acme")
    link, token = invitations.create_invite_link(system_actor(), org, max_uses=2)
    with pytest.raises(BadRequest) as info:
        invitations.accept_invitation(token)
    assert info.value.code == "email_required"
    first = invitations.accept_invitation(token, email="a@x.example", name="A")
    assert first.role == Role.MEMBER and first.user.name == "A"
    invitations.accept_invitation(token, email="b@x.example")
    db.session.commit()
    assert db.session.get(Invitation, link.id).status is InvitationStatus.ACCEPTED
    with pytest.raises(Gone):
        invitations.accept_invitation(token, email="c@x.example")
    with pytest.raises(Conflict):
        invitations.reject_invitation(token)


def test_link_invitation_respects_the_member_cap(app: Flask) -> None:
    org = make_org("acme", member_cap=1)
    make_member(org, "a@x.example")
    _, token = invitations.create_invite_link(system_actor(), org)
    with pytest.raises(Conflict) as info:
        invitations.accept_invitation(token, email="b@x.example")
    assert info.value.code == "member_cap_reached"


def test_invitation_to_a_deleted_org_is_dead(app: Flask) -> None:
    org = make_org("acme")
    _, token = invitations.invite_by_email(system_actor(), org, email="a@x.example")
    services.delete_org(system_actor(), org)
    with pytest.raises(NotFound):
        invitations.accept_invitation(token)


def test_every_invitation_action_is_audited_without_the_token(app: Flask) -> None:
    org = make_org("acme")
    invitation, token = invitations.invite_by_email(system_actor(), org, email="a@x.example")
    _, token2 = invitations.resend_invitation(system_actor(), org, invitation.id)
    invitations.accept_invitation(token2)
    _, link_token = invitations.create_invite_link(system_actor(), org)
    db.session.commit()
    audit = list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.target_type == "invitation").order_by(AuditEvent.id)
        )
    )
    assert [e.action for e in audit] == [
        "invitation.created",
        "invitation.resent",
        "invitation.accepted",
        "invitation.created",
    ]
    assert audit[2].actor_label == "a@x.example" and audit[2].actor_type == "anonymous"
    dumped = repr([(e.before, e.after) for e in audit])
    for secret in (token, token2, link_token, token_digest(token2)):
        assert secret not in dumped
