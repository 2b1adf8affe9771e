"""Races over roles as data: a role deleted while it is being given, a member removed while
a role on a resource is being granted. Each pair ends in one consistent state: nobody holds
a role that no longer exists, no grant outlives its membership."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from idp.actors import system_actor
from idp.db import db
from idp.errors import BadRequest, Conflict, NotFound
from idp.orgs import custom_roles
from idp.orgs.models import CustomRole, Membership
from idp.orgs.services import change_role, remove_member
from idp.resources import services as resources
from idp.resources.models import ResourceGrant
from tests.builders import make_member, make_org, workspace
from tests.orgs.test_races import ROUNDS, race, winners_and_losers


def test_deleting_a_role_while_it_is_given_leaves_no_holder_of_a_missing_role(
    app: Flask,
) -> None:
    org = make_org("acme")
    make_member(org, "owner@acme.example")
    people = [make_member(org, f"p{i}@acme.example").user_id for i in range(ROUNDS)]
    for user_id in people:
        custom_roles.create_role(
            system_actor(),
            workspace().id,
            org,
            key="finance",
            name="Finance",
            permissions=["billing:read"],
        )
        db.session.commit()
        outcomes = race(
            app,
            org.id,
            [
                lambda o, u=user_id: change_role(system_actor(), o, u, "finance"),
                lambda o: custom_roles.delete_role(system_actor(), workspace().id, o, "finance"),
            ],
        )
        winners, losers = winners_and_losers(
            outcomes,
            lambda e: (
                (isinstance(e, BadRequest) and e.code == "unknown_role")
                or (isinstance(e, Conflict) and e.code == "role_in_use")
            ),
        )
        assert len(winners) == 1 and len(losers) == 1
        db.session.rollback()
        role = db.session.scalar(select(CustomRole).where(CustomRole.key == "finance"))
        holder = db.session.scalar(select(Membership.role).where(Membership.user_id == user_id))
        # Either the role was given (and so kept), or deleted (and never given).
        assert (role is not None) == (holder == "finance")
        if role is not None:  # clean up for the next round
            change_role(system_actor(), org, user_id, "member")
            custom_roles.delete_role(system_actor(), workspace().id, org, "finance")
            db.session.commit()


def test_removing_a_member_while_a_resource_role_is_granted_leaves_no_grant(app: Flask) -> None:
    actor = system_actor()
    org = make_org("acme")
    make_member(org, "owner@acme.example")
    custom_roles.register_permission(actor, workspace().id, key="projects:view")
    resources.create_resource_type(
        actor,
        workspace().id,
        key="project",
        roles=[{"key": "viewer", "permissions": ["projects:view"]}],
    )
    project = resources.create_resource(actor, org, type="project", id="p1")
    people = [make_member(org, f"p{i}@acme.example").user_id for i in range(ROUNDS)]
    db.session.commit()
    for user_id in people:
        outcomes = race(
            app,
            org.id,
            [
                lambda o, u=user_id: resources.grant_role(
                    system_actor(),
                    o,
                    resources.get_resource(o, "project", "p1"),
                    role="viewer",
                    user_id=u,
                ),
                lambda o, u=user_id: remove_member(system_actor(), o, u),
            ],
        )
        winners, losers = winners_and_losers(
            outcomes, lambda e: isinstance(e, NotFound) and e.code == "member_not_found"
        )
        assert len(winners) + len(losers) == 2 and len(losers) <= 1
        db.session.rollback()
        assert db.session.scalar(select(Membership.id).where(Membership.user_id == user_id)) is None
        orphans = db.session.scalars(
            select(ResourceGrant.id).where(ResourceGrant.resource_id == project.id)
        ).all()
        assert orphans == []
