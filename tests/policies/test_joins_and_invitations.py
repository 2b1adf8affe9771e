"""The policy at every way in: joins (admin, invitation, link, SCIM), invitations, links, caps."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.connections.domains import claim_domain
from idp.connections.models import Domain, DomainStatus
from idp.db import db, utcnow
from idp.directory.models import DirectoryUser
from idp.orgs.models import Invitation, InvitationStatus, Membership, MembershipStatus, Organization
from idp.orgs.roles import Role
from idp.policies import services as policies
from idp.users.models import User
from tests.admin.test_api import Api, ok
from tests.builders import make_key, make_member, make_org, make_verified_domain, workspace
from tests.scim.conftest import Scim, scim_for, user_body
from tests.scim.test_users import error as scim_error

DAY = timedelta(days=1)


# --- helpers ----------------------------------------------------------------------------


def set_org_policy(org: Organization, **values: Any) -> None:
    policies.set_org_policy(system_actor(), org, values)
    db.session.commit()


def set_baseline(**values: Any) -> None:
    policies.set_workspace_policy(system_actor(), workspace(), values)
    db.session.commit()


def count(model: type, **where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def refused(response: Any, key: str) -> dict[str, Any]:
    """The admin API's 403 for a policy violation, naming the key."""
    body = ok(response, 403)
    assert body["error"] == "policy_violation" and body["key"] == key, body
    return body


def token_of(invitation: dict[str, Any]) -> str:
    return parse_qs(urlsplit(invitation["url"]).query)["token"][0]


def invite(api: Api, email: str, slug: str = "acme", **extra: Any) -> Any:
    return api("POST", f"/orgs/{slug}/invitations", {"email": email, **extra})


def new_link(api: Api, slug: str = "acme", **extra: Any) -> Any:
    return api("POST", f"/orgs/{slug}/invitations", {"kind": "link", **extra})


def accept(api: Api, token: str, email: str | None = None) -> Any:
    return api("POST", "/invitations/accept", {"token": token, "email": email})


def fresh_invitation(invitation_id: str) -> Invitation:
    return db.session.scalar(
        select(Invitation)
        .where(Invitation.id == invitation_id)
        .execution_options(populate_existing=True)
    )


def member_status(org: Organization, email: str) -> MembershipStatus:
    return db.session.scalar(
        select(Membership.status).where(Membership.org_id == org.id, Membership.email_key == email)
    )


@pytest.fixture
def api(client: FlaskClient, root_key: str) -> Api:
    return Api(client, root_key)


@pytest.fixture
def acme(app: Flask) -> Organization:
    return make_org("acme")


@pytest.fixture
def admin_and_owner(client: FlaskClient, acme: Organization) -> tuple[Api, Api]:
    """Acme's admin and owner, each as an org key of that role."""
    return Api(client, make_key(acme, Role.ADMIN)), Api(client, make_key(acme, Role.OWNER))


OUTSIDE = ["ada@other.example", "ada@eu.acme.example"]  # another domain; a subdomain


# --- allowed_email_domains --------------------------------------------------------------


@pytest.mark.parametrize("email", OUTSIDE)
def test_admin_add_outside_the_allowed_domains_is_refused_and_creates_nothing(
    api: Api, acme: Organization, email: str
) -> None:
    set_org_policy(acme, allowed_email_domains=["acme.example"])
    refused(api("POST", "/orgs/acme/members", {"email": email}), "allowed_email_domains")
    assert count(Membership, org_id=acme.id) == 0
    assert count(User) == 0  # the workspace user made on the way is rolled back too
    ok(api("POST", "/orgs/acme/members", {"email": "Ada@ACME.example"}), 201)  # case-blind
    assert count(Membership, org_id=acme.id) == 1


@pytest.mark.parametrize("email", OUTSIDE)
def test_an_email_invitation_outside_the_allowed_domains_is_refused_and_not_sent(
    api: Api, acme: Organization, email: str, caplog: pytest.LogCaptureFixture
) -> None:
    set_org_policy(acme, allowed_email_domains=["acme.example"])
    with caplog.at_level(logging.INFO, logger="idp.mail"):
        refused(invite(api, email), "allowed_email_domains")
    assert count(Invitation, org_id=acme.id) == 0
    assert email not in caplog.text
    ok(invite(api, "bob@acme.example"), 201)
    assert count(Invitation, org_id=acme.id) == 1


def test_an_invitation_sent_before_the_domains_were_tightened_cannot_be_accepted(
    api: Api, acme: Organization
) -> None:
    outside = ok(invite(api, "ada@other.example"), 201)
    inside = ok(invite(api, "bob@acme.example"), 201)
    set_org_policy(acme, allowed_email_domains=["acme.example"])
    refused(accept(api, token_of(outside)), "allowed_email_domains")
    assert count(Membership, org_id=acme.id) == 0
    stored = fresh_invitation(outside["id"])
    assert stored.status is InvitationStatus.PENDING and stored.use_count == 0
    assert ok(accept(api, token_of(inside)))["email"] == "bob@acme.example"
    assert count(Membership, org_id=acme.id) == 1


@pytest.mark.parametrize("email", OUTSIDE)
def test_a_link_accepted_with_an_address_outside_the_allowed_domains_is_refused(
    api: Api, acme: Organization, email: str
) -> None:
    set_org_policy(acme, allowed_email_domains=["acme.example"])
    link = ok(new_link(api), 201)  # a link names no address: it is the joiner that is checked
    refused(accept(api, token_of(link), email), "allowed_email_domains")
    assert count(Membership, org_id=acme.id) == 0 and count(User) == 0
    assert fresh_invitation(link["id"]).use_count == 0
    assert ok(accept(api, token_of(link), "ada@acme.example"))["email"] == "ada@acme.example"
    assert count(Membership, org_id=acme.id) == 1


@pytest.mark.parametrize("email", OUTSIDE)
def test_scim_provisioning_outside_the_allowed_domains_is_a_scim_403(
    client: FlaskClient, acme: Organization, email: str
) -> None:
    scim = scim_for(client, acme)
    set_org_policy(acme, allowed_email_domains=["acme.example"])
    response = scim("POST", "/Users", user_body(email))
    body = scim_error(response, 403)  # SCIM's error schema, status "403", application/scim+json
    assert "allowed domains" in body["detail"]
    assert "(policy: allowed_email_domains)" in body["detail"]
    assert count(DirectoryUser, org_id=acme.id) == 0
    assert count(Membership, org_id=acme.id) == 0 and count(User) == 0
    created = scim("POST", "/Users", user_body("ada@acme.example"))
    assert created.status_code == 201, created.get_data(as_text=True)
    assert count(DirectoryUser, org_id=acme.id) == 1 == count(Membership, org_id=acme.id)


def test_a_baseline_list_binds_every_org_of_the_workspace(api: Api, acme: Organization) -> None:
    set_baseline(allowed_email_domains=["acme.example"])
    make_org("globex")
    refused(
        api("POST", "/orgs/globex/members", {"email": "a@globex.example"}), "allowed_email_domains"
    )
    refused(invite(api, "a@other.example"), "allowed_email_domains")
    ok(api("POST", "/orgs/globex/members", {"email": "a@acme.example"}), 201)


# --- reactivation -----------------------------------------------------------------------


def test_reactivating_a_member_outside_the_allowed_domains_is_refused(
    api: Api, acme: Organization
) -> None:
    outside = make_member(acme, "ada@other.example")
    inside = make_member(acme, "bob@acme.example")
    for member in (outside, inside):
        ok(api("PATCH", f"/orgs/acme/members/{member.user_id}", {"status": "suspended"}))
    set_org_policy(acme, allowed_email_domains=["acme.example"])
    response = api("PATCH", f"/orgs/acme/members/{outside.user_id}", {"status": "active"})
    refused(response, "allowed_email_domains")
    assert member_status(acme, "ada@other.example") is MembershipStatus.SUSPENDED
    back = ok(api("PATCH", f"/orgs/acme/members/{inside.user_id}", {"status": "active"}))
    assert back["status"] == "active"
    assert member_status(acme, "bob@acme.example") is MembershipStatus.ACTIVE


def test_scim_reactivation_outside_the_allowed_domains_is_refused(
    client: FlaskClient, acme: Organization
) -> None:
    scim: Scim = scim_for(client, acme)
    users = {}
    for email in ("ada@other.example", "bob@acme.example"):
        user = scim("POST", "/Users", user_body(email, active=False))
        assert user.status_code == 201, user.get_data(as_text=True)
        users[email] = user.json["id"]
    set_org_policy(acme, allowed_email_domains=["acme.example"])
    reactivate = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": True}}],
    }
    scim_error(scim("PATCH", f"/Users/{users['ada@other.example']}", reactivate), 403)
    assert member_status(acme, "ada@other.example") is MembershipStatus.SUSPENDED
    back = scim("PATCH", f"/Users/{users['bob@acme.example']}", reactivate)
    assert back.status_code == 200 and back.json["active"] is True
    assert member_status(acme, "bob@acme.example") is MembershipStatus.ACTIVE


# --- external_invites -------------------------------------------------------------------


def test_without_external_invites_only_the_orgs_verified_domains_are_invited(
    api: Api, acme: Organization
) -> None:
    make_verified_domain(acme, "acme.example")
    pending = claim_domain(system_actor(), acme, "pending.example")  # claimed, not verified
    db.session.commit()
    make_verified_domain(make_org("globex"), "globex.example")  # verified, by another org
    ok(invite(api, "a@pending.example"), 201)  # control: external invites are allowed by default
    set_org_policy(acme, external_invites=False)

    ok(invite(api, "b@ACME.example"), 201)
    for email in ("c@pending.example", "c@globex.example", "c@other.example", "c@eu.acme.example"):
        refused(invite(api, email), "external_invites")
    assert count(Invitation, org_id=acme.id) == 2

    db.session.get(Domain, pending.id).status = DomainStatus.VERIFIED
    db.session.commit()
    ok(invite(api, "c@pending.example"), 201)  # the same address, once its domain is verified


def test_without_external_invites_an_admin_cannot_add_an_outsider_directly(
    client: FlaskClient, api: Api, acme: Organization
) -> None:
    make_verified_domain(acme, "acme.example")
    set_org_policy(acme, external_invites=False)
    admin = Api(client, make_key(acme, Role.ADMIN))
    for key in (admin, api):  # an org admin; workspace authority too, as for invitations
        refused(
            key("POST", "/orgs/acme/members", {"email": "x@outside.example"}), "external_invites"
        )
    assert count(Membership, org_id=acme.id) == 0 and count(User) == 0
    ok(admin("POST", "/orgs/acme/members", {"email": "ann@acme.example"}), 201)


def test_without_external_invites_scim_still_provisions_outsiders(
    client: FlaskClient, acme: Organization
) -> None:
    scim = scim_for(client, acme)  # the org's own directory: not an invitation
    make_verified_domain(acme, "acme.example")
    set_org_policy(acme, external_invites=False, min_role_to_invite="owner")
    created = scim("POST", "/Users", user_body("x@outside.example"))
    assert created.status_code == 201, created.get_data(as_text=True)


def test_without_external_invites_a_link_admits_the_orgs_domains_only(
    api: Api, acme: Organization
) -> None:
    make_verified_domain(acme, "acme.example")
    link = ok(new_link(api), 201)
    set_org_policy(acme, external_invites=False)
    refused(accept(api, token_of(link), "x@outside.example"), "external_invites")
    assert count(Membership, org_id=acme.id) == 0 and count(User) == 0
    assert fresh_invitation(link["id"]).use_count == 0
    assert ok(accept(api, token_of(link), "ann@acme.example"))["email"] == "ann@acme.example"


def test_an_invitation_to_an_outsider_sent_before_external_invites_were_refused_stays_pending(
    api: Api, acme: Organization
) -> None:
    make_verified_domain(acme, "acme.example")
    outside = ok(invite(api, "x@outside.example"), 201)
    inside = ok(invite(api, "ann@acme.example"), 201)
    set_org_policy(acme, external_invites=False)
    refused(accept(api, token_of(outside)), "external_invites")
    stored = fresh_invitation(outside["id"])
    assert stored.status is InvitationStatus.PENDING and stored.use_count == 0
    assert count(Membership, org_id=acme.id) == 0 and count(User) == 0
    ok(accept(api, token_of(inside)))


# --- min_role_to_invite -----------------------------------------------------------------


def test_by_default_admins_invite_and_create_links(client: FlaskClient, acme: Organization) -> None:
    admin = Api(client, make_key(acme, Role.ADMIN))
    ok(invite(admin, "a@x.example"), 201)
    ok(new_link(admin), 201)


def test_min_role_owner_refuses_admins_and_lets_owners_invite(
    acme: Organization, admin_and_owner: tuple[Api, Api]
) -> None:
    admin, owner = admin_and_owner
    sent = ok(invite(admin, "early@x.example"), 201)
    set_org_policy(acme, min_role_to_invite="owner")

    refused(invite(admin, "a@x.example"), "min_role_to_invite")
    refused(new_link(admin), "min_role_to_invite")
    response = admin("POST", f"/orgs/acme/invitations/{sent['id']}/resend")
    refused(response, "min_role_to_invite")
    assert count(Invitation, org_id=acme.id) == 1

    ok(invite(owner, "a@x.example"), 201)
    ok(new_link(owner), 201)
    assert count(Invitation, org_id=acme.id) == 3


def test_min_role_owner_refuses_an_admins_direct_add(
    acme: Organization, admin_and_owner: tuple[Api, Api]
) -> None:
    admin, owner = admin_and_owner
    ok(admin("POST", "/orgs/acme/members", {"email": "early@x.example"}), 201)
    set_org_policy(acme, min_role_to_invite="owner")
    refused(admin("POST", "/orgs/acme/members", {"email": "a@x.example"}), "min_role_to_invite")
    ok(owner("POST", "/orgs/acme/members", {"email": "a@x.example"}), 201)
    assert count(Membership, org_id=acme.id) == 2


def test_min_role_owner_refuses_what_admins_sent_before_until_an_owner_sends_it_again(
    acme: Organization, admin_and_owner: tuple[Api, Api]
) -> None:
    admin, owner = admin_and_owner
    by_admin = ok(invite(admin, "a@x.example"), 201)
    by_owner = ok(invite(owner, "b@x.example"), 201)
    admin_link = ok(new_link(admin), 201)
    set_org_policy(acme, min_role_to_invite="owner")

    refused(accept(admin, token_of(by_admin)), "min_role_to_invite")
    refused(accept(admin, token_of(admin_link), "c@x.example"), "min_role_to_invite")
    stored = fresh_invitation(by_admin["id"])
    assert stored.status is InvitationStatus.PENDING and stored.use_count == 0
    assert count(Membership, org_id=acme.id) == 0
    ok(accept(owner, token_of(by_owner)))

    resent = ok(owner("POST", f"/orgs/acme/invitations/{by_admin['id']}/resend"))
    assert ok(accept(owner, token_of(resent)))["email"] == "a@x.example"  # an owner vouches now


# --- invite_links -----------------------------------------------------------------------


def test_without_invite_links_none_is_made_and_an_existing_one_stops_working(
    api: Api, acme: Organization
) -> None:
    link = ok(new_link(api), 201)
    set_org_policy(acme, invite_links=False)
    refused(new_link(api), "invite_links")
    assert count(Invitation, org_id=acme.id) == 1
    refused(accept(api, token_of(link), "ada@x.example"), "invite_links")
    assert count(Membership, org_id=acme.id) == 0
    ok(invite(api, "bob@x.example"), 201)  # email invitations are not links

    set_org_policy(acme)  # the same link works once the org allows links again
    assert ok(accept(api, token_of(link), "ada@x.example"))["email"] == "ada@x.example"


# --- invite_link_max_age ----------------------------------------------------------------


def test_a_link_may_not_be_asked_to_outlive_the_max_age(api: Api, acme: Organization) -> None:
    set_org_policy(acme, invite_link_max_age="1d")
    refused(new_link(api, expires_in=2 * 86400), "invite_link_max_age")
    assert count(Invitation, org_id=acme.id) == 0
    exact = ok(new_link(api, expires_in=86400), 201)
    assert fresh_invitation(exact["id"]).expires_at - utcnow() <= DAY


def test_the_default_lifetime_of_a_link_is_shortened_to_the_max_age(
    api: Api, acme: Organization
) -> None:
    unlimited = ok(new_link(api), 201)
    assert fresh_invitation(unlimited["id"]).expires_at - utcnow() > 6 * DAY  # control: 7 days
    set_org_policy(acme, invite_link_max_age="1d")
    link = ok(new_link(api), 201)
    left = fresh_invitation(link["id"]).expires_at - utcnow()
    assert DAY - timedelta(minutes=1) < left <= DAY
    # Email invitations keep their own lifetime: the key is about links.
    email = ok(invite(api, "a@x.example"), 201)
    assert fresh_invitation(email["id"]).expires_at - utcnow() > 6 * DAY


def test_a_link_older_than_the_max_age_is_refused_at_accept(api: Api, acme: Organization) -> None:
    old, young = ok(new_link(api), 201), ok(new_link(api), 201)  # 7 days each, before the policy
    set_org_policy(acme, invite_link_max_age="1d")
    for link, age in ((old, DAY + timedelta(hours=1)), (young, DAY - timedelta(hours=1))):
        fresh_invitation(link["id"]).created_at = utcnow() - age
    db.session.commit()

    refused(accept(api, token_of(old), "ada@x.example"), "invite_link_max_age")
    assert count(Membership, org_id=acme.id) == 0
    assert fresh_invitation(old["id"]).use_count == 0
    ok(accept(api, token_of(young), "ada@x.example"))


# --- member_cap -------------------------------------------------------------------------


def full(response: Any, cap: int) -> None:
    body = ok(response, 409)
    assert body["error"] == "member_cap_reached" and f"cap of {cap}" in body["message"], body


def test_a_baseline_member_cap_caps_an_org_with_a_larger_own_cap(
    api: Api, acme: Organization
) -> None:
    assert acme.member_cap == 500
    set_baseline(member_cap=2)
    sent = ok(invite(api, "late@x.example"), 201)
    for email in ("a@x.example", "b@x.example"):
        ok(api("POST", "/orgs/acme/members", {"email": email}), 201)
    full(api("POST", "/orgs/acme/members", {"email": "c@x.example"}), 2)
    full(accept(api, token_of(sent)), 2)
    assert count(Membership, org_id=acme.id) == 2

    # A seat freed by suspension can be taken, but then the suspended one cannot come back.
    first = db.session.scalar(
        select(Membership.user_id).where(Membership.email_key == "a@x.example")
    )
    ok(api("PATCH", f"/orgs/acme/members/{first}", {"status": "suspended"}))
    ok(api("POST", "/orgs/acme/members", {"email": "c@x.example"}), 201)
    full(api("PATCH", f"/orgs/acme/members/{first}", {"status": "active"}), 2)
    assert member_status(acme, "a@x.example") is MembershipStatus.SUSPENDED


def test_an_orgs_own_lower_cap_holds_under_a_higher_policy_cap(api: Api, app: Flask) -> None:
    set_baseline(member_cap=2)
    small = make_org("small", member_cap=1)
    ok(api("POST", "/orgs/small/members", {"email": "a@x.example"}), 201)
    full(api("POST", "/orgs/small/members", {"email": "b@x.example"}), 1)
    assert count(Membership, org_id=small.id) == 1


def test_scim_provisioning_respects_the_policy_cap(client: FlaskClient, acme: Organization) -> None:
    scim = scim_for(client, acme)
    set_baseline(member_cap=1)
    assert scim("POST", "/Users", user_body("a@x.example")).status_code == 201
    refused = scim_error(scim("POST", "/Users", user_body("b@x.example")), 403)
    assert "scimType" not in refused and "cap of 1" in refused["detail"]  # not a duplicate
    assert count(DirectoryUser, org_id=acme.id) == 1
