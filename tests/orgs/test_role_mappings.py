"""Role mappings: a member's role is the highest of the hand-set one and their mapped groups."""

from __future__ import annotations

import pytest
from flask import Flask

from idp.actors import Actor, ActorKind, system_actor
from idp.db import db
from idp.directory import services as directory
from idp.errors import Conflict, Forbidden
from idp.orgs import role_mappings, services, teams
from idp.orgs.models import Membership, Organization
from idp.orgs.roles import Role
from tests.builders import make_member, make_org

SYSTEM = system_actor()


def idp_actor(org: Organization) -> Actor:
    return Actor(ActorKind.SCIM_TOKEN, "scim_x", "scim_token:idp", role=Role.OWNER, org_id=org.id)


def group(org: Organization, name: str, members: list[Membership], external_id: str | None = None):
    created = directory.create_group(
        idp_actor(org),
        org,
        display_name=name,
        external_id=external_id,
        attributes={},
        member_ids=[m.id for m in members],
    )
    db.session.commit()
    return created


def role_of(org: Organization, membership: Membership) -> Role:
    return services.get_membership(org.id, membership.user_id, fresh=True).role


def test_mapping_raises_and_removal_lowers_roles(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "owner@x.example", Role.OWNER)
    ada = make_member(org, "ada@x.example")
    bob = make_member(org, "bob@x.example", Role.ADMIN)
    admins = group(org, "IT Admins", [ada, bob], external_id="00gADM")
    role_mappings.set_role_mapping(SYSTEM, org, group="it admins", role=Role.ADMIN)
    db.session.commit()
    assert role_of(org, ada) == Role.ADMIN and role_of(org, bob) == Role.ADMIN
    directory.change_group_members(idp_actor(org), org, admins, remove=[ada.id, bob.id])
    db.session.commit()
    assert role_of(org, ada) == Role.MEMBER  # back to the hand-set role
    assert role_of(org, bob) == Role.ADMIN  # set by hand, kept


def test_mapping_by_external_id_and_highest_wins(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "owner@x.example", Role.OWNER)
    ada = make_member(org, "ada@x.example")
    group(org, "Staff", [ada], external_id="00gSTAFF")
    group(org, "Leads", [ada], external_id="00gLEADS")
    role_mappings.set_role_mapping(SYSTEM, org, group="00gSTAFF", role=Role.MEMBER)
    role_mappings.set_role_mapping(SYSTEM, org, group="00gLEADS", role=Role.OWNER)
    db.session.commit()
    assert role_of(org, ada) == Role.OWNER
    mapping = role_mappings.get_role_mapping(org.id, group="00gleads")
    role_mappings.delete_role_mapping(SYSTEM, org, mapping)
    db.session.commit()
    assert role_of(org, ada) == Role.MEMBER


def test_renaming_or_deleting_a_group_reapplies_mappings(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "owner@x.example", Role.OWNER)
    ada = make_member(org, "ada@x.example")
    role_mappings.set_role_mapping(SYSTEM, org, group="Admins", role=Role.ADMIN)
    eng = group(org, "Engineering", [ada])
    assert role_of(org, ada) == Role.MEMBER
    directory.update_group(
        idp_actor(org), org, eng, display_name="Admins", external_id=None, attributes={}
    )
    db.session.commit()
    assert role_of(org, ada) == Role.ADMIN
    directory.delete_group(idp_actor(org), org, eng)
    db.session.commit()
    assert role_of(org, ada) == Role.MEMBER


def test_the_last_owner_cannot_lose_ownership_through_a_group(app: Flask) -> None:
    org = make_org("acme")
    ada = make_member(org, "ada@x.example")
    owners = group(org, "Owners", [ada])
    role_mappings.set_role_mapping(SYSTEM, org, group="Owners", role=Role.OWNER)
    db.session.commit()
    assert role_of(org, ada) == Role.OWNER
    with pytest.raises(Conflict) as info:
        directory.change_group_members(idp_actor(org), org, owners, remove=[ada.id])
    assert info.value.code == "last_owner"


def test_a_hand_set_role_below_the_mapped_one_is_refused(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "owner@x.example", Role.OWNER)
    ada = make_member(org, "ada@x.example")
    group(org, "Admins", [ada])
    role_mappings.set_role_mapping(SYSTEM, org, group="Admins", role=Role.ADMIN)
    db.session.commit()
    with pytest.raises(Conflict) as info:
        services.change_role(SYSTEM, org, ada.user_id, Role.MEMBER)
    assert info.value.code == "role_from_group_mapping"


def test_only_groups_the_idp_provisions_count(app: Flask) -> None:
    org = make_org("acme")
    make_member(org, "owner@x.example", Role.OWNER)
    ada = make_member(org, "ada@x.example")
    role_mappings.set_role_mapping(SYSTEM, org, group="Owners", role=Role.OWNER)
    handmade = teams.create_team(SYSTEM, org, name="Owners")
    teams.add_team_member(SYSTEM, org, handmade.id, ada.user_id)
    services.recompute_roles(SYSTEM, org, [ada.id])
    db.session.commit()
    assert role_of(org, ada) == Role.MEMBER


def test_provisioned_teams_change_only_through_the_idp(app: Flask) -> None:
    org = make_org("acme")
    ada = make_member(org, "ada@x.example")
    eng = group(org, "Engineering", [])
    for attempt in (
        lambda: teams.add_team_member(SYSTEM, org, eng.team_id, ada.user_id),
        lambda: teams.update_team(SYSTEM, org, eng.team_id, name="Mine now"),
        lambda: teams.delete_team(SYSTEM, org, eng.team_id),
    ):
        with pytest.raises(Conflict) as info:
            attempt()
        assert info.value.code == "managed_by_directory"


def test_only_owners_map_to_owner(app: Flask) -> None:
    org = make_org("acme")
    admin = Actor(ActorKind.API_KEY, "k", "k", role=Role.ADMIN, org_id=org.id)
    with pytest.raises(Forbidden):
        role_mappings.set_role_mapping(admin, org, group="Owners", role=Role.OWNER)
    role_mappings.set_role_mapping(admin, org, group="Admins", role=Role.ADMIN)
