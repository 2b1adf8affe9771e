"""Organizations and memberships through the service layer: invariants and audit events."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from idp.actors import Actor, ActorKind, system_actor
from idp.audit.models import AuditEvent
from idp.db import db
from idp.errors import BadRequest, Conflict, Forbidden, NotFound
from idp.orgs import services
from idp.orgs.models import MembershipSource, MembershipStatus
from idp.orgs.roles import Role
from idp.people import services as people
from idp.people.services import prove_address
from idp.users.services import find_user_by_email
from tests.builders import make_member, make_org, make_verified_domain, workspace


def person(org_id: str, user_id: str, role: Role) -> Actor:
    return Actor(ActorKind.USER, user_id, "someone", role=role, user_id=user_id, org_id=org_id)


def events(org_id: str, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.id)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(db.session.scalars(query))


# --- organizations ---------------------------------------------------------------------


def test_create_org_validates_and_audits(app: Flask) -> None:
    org = make_org("acme", "Acme Inc")
    assert (org.slug, org.name, org.member_cap) == ("acme", "Acme Inc", 500)
    [event] = events(org.id)
    assert event.action == "org.created" and event.after["slug"] == "acme"


@pytest.mark.parametrize("slug", ["", "-acme", "acme-", "Acme Inc", "a" * 64, "ac_me", "ac/me"])
def test_bad_slugs_are_refused(app: Flask, slug: str) -> None:
    with pytest.raises(BadRequest) as info:
        services.create_org(system_actor(), workspace(), slug=slug, name="x")
    assert info.value.code == "invalid_slug"


def test_slug_is_unique_even_after_soft_delete(app: Flask) -> None:
    org = make_org("acme")
    with pytest.raises(Conflict, match="taken"):
        services.create_org(system_actor(), workspace(), slug="acme", name="Other")
    services.delete_org(system_actor(), org)
    db.session.commit()
    with pytest.raises(NotFound):
        services.get_org(workspace().id, "acme")
    with pytest.raises(Conflict):
        services.create_org(system_actor(), workspace(), slug="acme", name="Again")


def test_sub_organizations(app: Flask) -> None:
    parent = make_org("parent")
    child = make_org("child", parent_slug="parent")
    assert child.parent_id == parent.id
    with pytest.raises(Conflict) as info:
        services.delete_org(system_actor(), parent)
    assert info.value.code == "org_has_children"
    with pytest.raises(NotFound):
        make_org("orphan", parent_slug="missing")


def test_only_owners_rename_or_delete(app: Flask) -> None:
    org = make_org("acme")
    admin = person(org.id, "usr_x", Role.ADMIN)
    with pytest.raises(Forbidden):
        services.update_org(admin, org, name="New")
    with pytest.raises(Forbidden):
        services.delete_org(admin, org)
    services.update_org(person(org.id, "usr_y", Role.OWNER), org, name="New")
    db.session.commit()
    assert org.name == "New"
    [event] = events(org.id, "org.updated")
    assert event.before["name"] == "Acme" and event.after["name"] == "New"


def test_only_workspace_authority_creates_orgs(app: Flask) -> None:
    with pytest.raises(Forbidden):
        services.create_org(person("x", "usr_x", Role.OWNER), workspace(), slug="a", name="A")


def test_member_cap_cannot_drop_below_members(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "a@x.example")
    make_member(org, "b@x.example")
    with pytest.raises(Conflict) as info:
        services.update_org(system_actor(), org, member_cap=1)
    assert info.value.code == "member_cap_below_count"
    with pytest.raises(BadRequest):
        services.update_org(system_actor(), org, member_cap=0)


# --- members ---------------------------------------------------------------------------


def test_add_member_matches_within_the_org_case_insensitively_never_across(app: Flask) -> None:
    a, b = make_org("a"), make_org("b")
    first = make_member(a, "Ann@Example.com", Role.ADMIN, proven=False)
    second = make_member(b, "ann@EXAMPLE.com", proven=False)
    # Each org's word gives it a person of its own: b learns nothing of a's.
    assert first.user_id != second.user_id
    assert (first.email, first.email_key) == ("Ann@Example.com", "ann@example.com")
    assert find_user_by_email(workspace().id, "ANN@example.COM") is None
    assert first.source is MembershipSource.ADMIN
    with pytest.raises(Conflict) as info:
        make_member(a, "ann@example.com")
    assert info.value.code == "already_member"


def test_add_member_in_the_org_that_verified_the_domain_links_the_workspace_identity(
    app: Flask,
) -> None:
    a, b = make_org("a"), make_org("b")
    make_verified_domain(b, "example.com")
    theirs = make_member(a, "ann@example.com", proven=False)
    ours = make_member(b, "ann@example.com", proven=False)
    assert ours.user.email_normalized == "ann@example.com" and ours.user.email_verified
    assert ours.user_id != theirs.user_id  # a's own person stays a's


def test_invalid_email_is_refused(app: Flask) -> None:
    org = make_org("acme")
    for bad in ["", "nobody", "a@b", "a b@example.com", "a@@example.com"]:
        with pytest.raises(BadRequest):
            people.add_member(system_actor(), org, email=bad)


def test_member_cap_refuses_the_next_join(app: Flask) -> None:
    org = make_org("acme", member_cap=2)
    make_member(org, "a@x.example")
    make_member(org, "b@x.example")
    with pytest.raises(Conflict) as info:
        make_member(org, "c@x.example")
    assert info.value.code == "member_cap_reached"


def test_suspended_members_free_a_seat_and_cannot_return_over_cap(app: Flask) -> None:
    org = make_org("acme", member_cap=1)
    a = make_member(org, "a@x.example")
    services.set_member_status(system_actor(), org, a.user_id, MembershipStatus.SUSPENDED)
    make_member(org, "b@x.example")
    with pytest.raises(Conflict, match="cap"):
        services.set_member_status(system_actor(), org, a.user_id, MembershipStatus.ACTIVE)


def test_last_owner_cannot_be_demoted_removed_suspended_or_leave(app: Flask) -> None:
    org = make_org("acme")
    owner = make_member(org, "owner@x.example", Role.OWNER)
    actor = system_actor()
    for attempt in (
        lambda: services.change_role(actor, org, owner.user_id, Role.ADMIN),
        lambda: services.remove_member(actor, org, owner.user_id),
        lambda: services.set_member_status(actor, org, owner.user_id, MembershipStatus.SUSPENDED),
        lambda: services.leave_org(person(org.id, owner.user_id, Role.OWNER), org),
    ):
        with pytest.raises(Conflict) as info:
            attempt()
        assert info.value.code == "last_owner"
        db.session.rollback()
    assert services.get_membership(org.id, owner.user_id).role == Role.OWNER


def test_a_suspended_owner_does_not_count_as_the_remaining_owner(app: Flask) -> None:
    org = make_org("acme")
    a = make_member(org, "a@x.example", Role.OWNER)
    b = make_member(org, "b@x.example", Role.OWNER)
    services.set_member_status(system_actor(), org, b.user_id, MembershipStatus.SUSPENDED)
    with pytest.raises(Conflict, match="owner"):
        services.change_role(system_actor(), org, a.user_id, Role.MEMBER)


def test_with_two_owners_one_can_step_down(app: Flask) -> None:
    org = make_org("acme")
    a = make_member(org, "a@x.example", Role.OWNER)
    make_member(org, "b@x.example", Role.OWNER)
    services.change_role(system_actor(), org, a.user_id, Role.MEMBER)
    db.session.commit()
    assert services.count_members_by_role(org.id) == {
        "owner": 1,
        "admin": 0,
        "member": 1,
        "guest": 0,
    }
    [event] = events(org.id, "member.role_changed")
    assert (event.before["role"], event.after["role"]) == ("owner", "member")


def test_admin_cannot_grant_owner_or_touch_owners(app: Flask) -> None:
    org = make_org("acme")
    owner = make_member(org, "owner@x.example", Role.OWNER)
    member = make_member(org, "m@x.example")
    admin = person(org.id, "usr_admin", Role.ADMIN)
    for attempt in (
        lambda: services.change_role(admin, org, member.user_id, Role.OWNER),
        lambda: services.change_role(admin, org, owner.user_id, Role.ADMIN),
        lambda: services.remove_member(admin, org, owner.user_id),
        lambda: services.set_member_status(admin, org, owner.user_id, MembershipStatus.SUSPENDED),
        lambda: people.add_member(admin, org, email="new@x.example", role=Role.OWNER),
    ):
        with pytest.raises(Forbidden) as info:
            attempt()
        assert info.value.code == "owner_protected"
    services.change_role(admin, org, member.user_id, Role.ADMIN)
    assert services.get_membership(org.id, member.user_id).role == Role.ADMIN


def test_members_cannot_manage_members(app: Flask) -> None:
    org = make_org("acme")
    other = make_member(org, "o@x.example")
    member = person(org.id, "usr_m", Role.MEMBER)
    with pytest.raises(Forbidden):
        people.add_member(member, org, email="n@x.example")
    with pytest.raises(Forbidden):
        services.remove_member(member, org, other.user_id)
    with pytest.raises(Forbidden):
        services.change_role(member, org, other.user_id, Role.ADMIN)


def test_remove_member_keeps_the_workspace_user(app: Flask) -> None:
    a, b = make_org("a"), make_org("b")
    make_member(a, "x@x.example")
    make_member(b, "x@x.example")
    person = prove_address(lambda _org: system_actor(), workspace().id, "x@x.example")
    db.session.commit()
    ma = services.get_membership(a.id, person.id)
    services.remove_member(system_actor(), a, ma.user_id)
    db.session.commit()
    with pytest.raises(NotFound):
        services.get_membership(a.id, ma.user_id)
    assert services.get_membership(b.id, ma.user_id)
    assert find_user_by_email(workspace().id, "x@x.example") is not None
    [event] = events(a.id, "member.removed")
    assert event.before["email"] == "x@x.example"


def test_leave_org(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "owner@x.example", Role.OWNER)
    m = make_member(org, "m@x.example", proven=False)
    services.leave_org(person(org.id, m.user_id, Role.MEMBER), org)
    db.session.commit()
    assert [e.action for e in events(org.id)][-1] == "member.left"
    with pytest.raises(BadRequest):
        services.leave_org(system_actor(), org)


def test_transfer_ownership(app: Flask) -> None:
    org = make_org("acme")
    owner = make_member(org, "owner@x.example", Role.OWNER)
    heir = make_member(org, "heir@x.example")
    as_owner = person(org.id, owner.user_id, Role.OWNER)
    with pytest.raises(BadRequest) as info:
        services.transfer_ownership(as_owner, org, to_user_id=heir.user_id, confirm="wrong")
    assert info.value.code == "confirmation_required"
    with pytest.raises(Forbidden):
        services.transfer_ownership(
            person(org.id, heir.user_id, Role.ADMIN), org, to_user_id=heir.user_id, confirm="acme"
        )
    services.transfer_ownership(as_owner, org, to_user_id=heir.user_id, confirm="acme")
    db.session.commit()
    assert services.get_membership(org.id, heir.user_id).role == Role.OWNER
    assert services.get_membership(org.id, owner.user_id).role == Role.ADMIN
    [event] = events(org.id, "org.ownership_transferred")
    assert event.after["to"]["role"] == "owner" and event.after["from"]["role"] == "admin"


def test_transfer_needs_an_active_member_and_an_owner_giver(app: Flask) -> None:
    org = make_org("acme")
    owner = make_member(org, "owner@x.example", Role.OWNER)
    admin = make_member(org, "admin@x.example", Role.ADMIN)
    with pytest.raises(NotFound):
        services.transfer_ownership(
            system_actor(), org, to_user_id="usr_nobody", from_user_id=owner.user_id, confirm="acme"
        )
    with pytest.raises(Conflict, match="owner"):
        services.transfer_ownership(
            system_actor(),
            org,
            to_user_id=owner.user_id,
            from_user_id=admin.user_id,
            confirm="acme",
        )


def test_every_change_writes_exactly_one_event(app: Flask) -> None:
    org = make_org("acme")
    m = make_member(org, "m@x.example", proven=False)
    services.change_role(system_actor(), org, m.user_id, Role.ADMIN)
    services.change_role(system_actor(), org, m.user_id, Role.ADMIN)  # no change, no event
    services.set_member_status(system_actor(), org, m.user_id, MembershipStatus.SUSPENDED)
    services.remove_member(system_actor(), org, m.user_id)
    db.session.commit()
    assert [e.action for e in events(org.id)] == [
        "org.created",
        "member.added",
        "member.role_changed",
        "member.suspended",
        "member.removed",
    ]


def test_a_refused_change_leaves_no_event(app: Flask) -> None:
    org = make_org("acme")
    owner = make_member(org, "o@x.example", Role.OWNER)
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(Conflict):
        services.remove_member(system_actor(), org, owner.user_id)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_list_members_filters_and_pages(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "owner@x.example", Role.OWNER)
    for i in range(7):
        make_member(org, f"user{i}@x.example", Role.ADMIN if i % 3 == 0 else Role.MEMBER)
    make_member(make_org("other"), "stranger@x.example")
    seen, cursor = [], None
    while True:
        page = services.list_members(org.id, cursor=cursor, limit=3)
        seen += [m.user.email for m in page.items]
        if not (cursor := page.next_cursor):
            break
    assert len(seen) == 8 and len(set(seen)) == 8 and "stranger@x.example" not in seen
    admins = services.list_members(org.id, roles=[Role.ADMIN]).items
    assert {m.user.email for m in admins} == {
        "user0@x.example",
        "user3@x.example",
        "user6@x.example",
    }
    assert [m.user.email for m in services.list_members(org.id, q="USER5").items] == [
        "user5@x.example"
    ]
    assert services.list_members(org.id, q="%").items == []  # LIKE wildcards are literal
    assert services.count_members_by_role(org.id) == {
        "owner": 1,
        "admin": 3,
        "member": 4,
        "guest": 0,
    }
