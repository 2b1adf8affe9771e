"""Role mappings at a resource: IdP group X → role R on a tenant or project, for SCIM groups
and the groups asserted at SSO alike; the grants follow the groups, and sit beside the ones
given by hand."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from idp.actors import Actor, ActorKind
from idp.audit.models import AuditEvent
from idp.db import db
from idp.directory import services as directory
from idp.directory.models import DirectoryGroup
from idp.orgs import services
from idp.orgs.models import Membership, Organization, RoleMapping
from idp.orgs.roles import Role
from idp.resources.models import ResourceGrant
from tests.builders import make_key, make_member, make_org
from tests.resources.test_scopes import ALL, Api, acme, allowed, decide, grant  # noqa: F401

MAPPINGS = "/orgs/acme/role-mappings"


def idp_actor(org: Organization) -> Actor:
    return Actor(ActorKind.SCIM_TOKEN, "scim_x", "scim_token:idp", role=Role.OWNER, org_id=org.id)


def membership(org: Organization, user_id: str) -> Membership:
    return services.get_membership(org.id, user_id, fresh=True)


def scim_group(org: Organization, name: str, user_ids: list[str]) -> DirectoryGroup:
    made = directory.create_group(
        idp_actor(org),
        org,
        display_name=name,
        external_id=f"00g{name.upper()}",
        attributes={},
        member_ids=[membership(org, u).id for u in user_ids],
    )
    db.session.commit()
    return made


def change_group(org: Organization, group: DirectoryGroup, **change: list[str]) -> None:
    directory.change_group_members(
        idp_actor(org),
        org,
        group,
        **{side: [membership(org, u).id for u in users] for side, users in change.items()},
    )
    db.session.commit()


def map_group(root: Api, group: str, role: str, target: str, status: int = 200) -> Any:
    kind = "tenant" if target.startswith("t") else "project"
    body = {"group": group, "role": role, "resource": {"type": kind, "id": target}}
    return root("POST", MAPPINGS, body, status)


def mapped_grants() -> int:
    found = (
        select(func.count()).select_from(ResourceGrant).where(ResourceGrant.mapping_id.is_not(None))
    )
    return db.session.scalar(found)


def test_a_group_mapped_at_a_project_gives_its_members_that_role_there_only(
    acme: dict[str, Any],  # noqa: F811
) -> None:
    root, org, ann, bob = acme["root"], acme["org"], acme["ann"], acme["bob"]
    deployers = scim_group(org, "Deployers", [ann])

    mapping = map_group(root, "Deployers", "project_developer", "p1")

    assert (mapping["role"], mapping["resource"]) == (
        "project_developer",
        {"type": "project", "id": "p1"},
    )
    assert allowed(root, ann, "projects:deploy", ALL) == ["p1"]
    assert not decide(root, ann, "projects:deploy")["allowed"]  # never org-wide
    assert membership(org, ann).role == Role.MEMBER  # the org role is untouched
    members = root("GET", "/orgs/acme/resources/project/p1/members")["data"]
    assert members == [
        {"user_id": ann, "team_id": None, "role": "project_developer", "mapping_id": mapping["id"]}
    ]
    # The grants follow the group: Bob joins it, Ann leaves it.
    change_group(org, deployers, add=[bob], remove=[ann])
    assert allowed(root, bob, "projects:deploy", ALL) == ["p1"]
    assert allowed(root, ann, "projects:deploy", ALL) == []
    # The org-wide mappings and the ones at a resource are listed together.
    root("POST", MAPPINGS, {"group": "Deployers", "role": "admin"})
    listed = root("GET", MAPPINGS)["data"]
    assert [(m["group"], m["role"], m["resource"]) for m in listed] == [
        ("Deployers", "admin", None),
        ("Deployers", "project_developer", {"type": "project", "id": "p1"}),
    ]
    assert membership(org, bob).role == Role.ADMIN


def test_mapped_and_hand_given_grants_stand_side_by_side(
    acme: dict[str, Any],  # noqa: F811
) -> None:
    root, org, ann = acme["root"], acme["org"], acme["ann"]
    grant(root, "p1", "project_viewer", user_id=ann)
    scim_group(org, "Deployers", [ann])
    mapping = map_group(root, "Deployers", "project_developer", "p1")
    assert allowed(root, ann, "projects:deploy", ALL) == ["p1"]
    # The same group mapped again there: its role changes, for every member at once.
    again = map_group(root, "deployers", "project_admin", "p1")
    assert again["id"] == mapping["id"]
    assert allowed(root, ann, "projects:admin", ALL) == ["p1"]
    # A grant given by hand is not the group's to take away, nor the other way round.
    root("DELETE", f"/orgs/acme/resources/project/p1/members/{ann}", status=204)
    assert allowed(root, ann, "projects:admin", ALL) == ["p1"]
    grant(root, "p1", "project_viewer", user_id=ann)
    root("DELETE", f"{MAPPINGS}/{mapping['id']}", status=204)
    assert allowed(root, ann, "projects:deploy", ALL) == []
    assert allowed(root, ann, "projects:view", ALL) == ["p1"]
    assert mapped_grants() == 0
    # Each grant the mapping gave and took away is on the record, with its reason.
    events = db.session.execute(
        select(AuditEvent.action, AuditEvent.after, AuditEvent.before)
        .where(AuditEvent.action.in_(("resource.role_granted", "resource.role_revoked")))
        .order_by(AuditEvent.id)
    ).all()
    by_mapping = [
        (action, (after or before)["reason"])
        for action, after, before in events
        if (after or before).get("mapping_id") == mapping["id"]
    ]
    assert by_mapping == [
        ("resource.role_granted", "role_mapping"),
        ("resource.role_granted", "role_mapping"),
        ("resource.role_revoked", "role_mapping"),
    ]


def test_a_tenant_mapping_reaches_its_projects_and_goes_with_the_tenant(
    acme: dict[str, Any],  # noqa: F811
) -> None:
    root, org, ann = acme["root"], acme["org"], acme["ann"]
    scim_group(org, "Tenant One", [ann])
    map_group(root, "Tenant One", "tenant_member", "t1")
    assert allowed(root, ann, "projects:view", ALL) == ["t1", "p1", "p2"]
    lookup = {"user_id": ann, "org": "acme", "permission": "projects:view", "type": "project"}
    listed = root("POST", "/authorize/resources", lookup)["data"]
    assert [r["id"] for r in listed] == ["p1", "p2"]
    # Removing the member from the org takes the grant with the membership.
    root("DELETE", f"/orgs/acme/members/{ann}", status=204)
    assert mapped_grants() == 0
    # Deleting the tenant deletes the mappings at it.
    root("DELETE", "/orgs/acme/resources/project/p1", status=204)
    root("DELETE", "/orgs/acme/resources/project/p2", status=204)
    root("DELETE", "/orgs/acme/resources/tenant/t1", status=204)
    assert root("GET", MAPPINGS)["data"] == []


def test_the_groups_asserted_at_sso_count_at_resources_too(
    acme: dict[str, Any],  # noqa: F811
) -> None:
    root, org, bob = acme["root"], acme["org"], acme["bob"]
    map_group(root, "on-call", "project_developer", "p3")
    assert allowed(root, bob, "projects:deploy", ALL) == []
    # What an SSO login records (the login itself is tested against the real IdPs).
    member = membership(org, bob)
    member.sso_groups = ["engineering", "On-Call"]
    services.recompute_roles(idp_actor(org), org, [member.id])
    db.session.commit()
    assert allowed(root, bob, "projects:deploy", ALL) == ["p3"]
    member = membership(org, bob)
    member.sso_groups = ["engineering"]
    services.recompute_roles(idp_actor(org), org, [member.id])
    db.session.commit()
    assert allowed(root, bob, "projects:deploy", ALL) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"role": "project_developer", "resource": {"type": "project", "id": "p9"}},
            404,
            "resource_not_found",
        ),
        (
            {"role": "tenant_admin", "resource": {"type": "project", "id": "p1"}},
            400,
            "unknown_role",
        ),
        (
            {"role": "project_developer", "resource": {"type": "planet", "id": "p1"}},
            404,
            "resource_not_found",
        ),
        ({"role": "project_developer", "resource": {"type": "project"}}, 400, "validation_error"),
    ],
)
def test_bad_mappings_at_resources_are_refused_and_nothing_is_stored(
    acme: dict[str, Any],  # noqa: F811
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    root = acme["root"]
    refused = root("POST", MAPPINGS, {"group": "Deployers", **body}, status)
    assert refused["error"] == code
    assert db.session.scalar(select(func.count()).select_from(RoleMapping)) == 0


def test_mapping_at_a_resource_needs_the_right_to_give_roles_there(
    acme: dict[str, Any],  # noqa: F811
) -> None:
    root, org = acme["root"], acme["org"]
    root(
        "POST",
        "/orgs/acme/roles",
        {
            "key": "people_ops",
            "name": "People ops",
            "permissions": ["members:read", "members:update"],
        },
        201,
    )
    reader = {"key": "reader", "name": "Reader", "permissions": ["members:read"]}
    root("POST", "/orgs/acme/roles", reader, 201)
    people_ops = Api(root.client, make_key(org, "people_ops"))  # type: ignore[arg-type]
    refused = map_group(people_ops, "Deployers", "project_developer", "p1", status=403)
    assert refused["error"] == "forbidden"
    people_ops("POST", MAPPINGS, {"group": "Deployers", "role": "reader"})  # org-wide: theirs
    # Another org cannot map onto acme's resources.
    beta = make_org("beta")
    make_member(beta, "owner@beta.example", Role.OWNER)
    beta_key = Api(root.client, make_key(beta, Role.OWNER))
    body = {"group": "X", "role": "project_developer", "resource": {"type": "project", "id": "p1"}}
    assert beta_key("POST", "/orgs/beta/role-mappings", body, 404)["error"] == "resource_not_found"
    assert db.session.scalar(select(func.count()).select_from(RoleMapping)) == 1


def test_mappings_at_resources_through_the_cli(
    acme: dict[str, Any],  # noqa: F811
    runner: Any,
) -> None:
    root, org, ann = acme["root"], acme["org"], acme["ann"]
    scim_group(org, "Deployers", [ann])
    base = ["role-mapping"]
    done = runner.invoke(
        args=[
            *base,
            "set",
            "acme",
            "--group",
            "Deployers",
            "--role",
            "project_developer",
            "--resource",
            "project:p2",
        ]
    )
    assert done.exit_code == 0, done.output
    assert allowed(root, ann, "projects:deploy", ALL) == ["p2"]
    listed = runner.invoke(args=[*base, "list", "acme"]).output.splitlines()
    assert listed == ["Deployers\tproject_developer\tproject:p2"]
    gone = runner.invoke(
        args=[*base, "delete", "acme", "--group", "Deployers", "--resource", "project:p2"]
    )
    assert gone.exit_code == 0, gone.output
    assert allowed(root, ann, "projects:deploy", ALL) == []
    missing = runner.invoke(args=[*base, "delete", "acme", "--group", "Deployers"])
    assert missing.exit_code == 1 and "role_mapping_not_found" in missing.stderr
