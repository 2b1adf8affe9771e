"""Access control of the admin API over HTTP: the permission gate on every operation,
role-relative rules, tenant isolation, and what a malformed request gets back.

Every operation is found through ``OPERATIONS`` and must have an entry in ``SPECS`` (its scope,
the permission the product rule expects, and a valid request body), so an operation added
without one fails ``test_every_operation_has_a_spec`` before it can go unchecked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pprint import pformat
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from idp.actors import system_actor
from idp.admin.api import OPERATIONS, Operation
from idp.audit.models import AuditEvent
from idp.connections import domains
from idp.connections.models import Connection, Domain
from idp.credentials import setup_links
from idp.credentials.models import ApiKey, SetupLink
from idp.credentials.services import create_api_key, create_scim_token, revoke_api_key
from idp.db import db, utcnow
from idp.orgs import custom_roles, invitations, role_mappings, services, teams
from idp.orgs.models import (
    CustomRole,
    Invitation,
    InvitationStatus,
    Membership,
    MembershipStatus,
    Organization,
    Team,
    TeamMember,
)
from idp.orgs.roles import BUILTIN_ROLES, Role
from idp.people import services as people_services
from idp.resources import services as resources
from idp.resources.models import Resource, ResourceGrant
from idp.sso.saml import new_sp_keypair
from idp.sso.setup import add_saml_connection
from tests.builders import auth, make_key, make_org, workspace
from tests.dns_server import DnsServer
from tests.orgs.test_roles import RANK, holds

# --- the operations and what each should be ---------------------------------------------


@dataclass(frozen=True)
class World:
    """One org with a person in every role, a team, invitations and keys, by id."""

    org_id: str
    slug: str
    name: str
    owner_id: str
    co_owner_id: str  # a second owner, so an owner can be demoted or removed
    admin_id: str
    member_id: str  # on the team: the target of member and team-member paths
    spare_id: str  # on no team: the one added to the team
    emails: tuple[str, ...]
    team_id: str
    invitation_id: str  # an email invitation for the member role
    owner_invitation_id: str  # an email invitation for the owner role
    key_id: str  # a member-role key: the one revoked
    owner_key_id: str  # an owner-role key
    scim_token_id: str
    mapping_id: str  # "Staff" → member: the mapping deleted
    domain_id: str  # "<slug>.example", pending, its TXT record published: the one verified
    connection_id: str  # a SAML connection set up by hand
    setup_link_id: str  # a setup link for SSO: the one revoked

    @property
    def org(self) -> Organization:
        return db.session.get(Organization, self.org_id)

    def identifiers(self) -> tuple[str, ...]:
        """Everything that would betray this org's data in another org's response."""
        return (
            self.org_id,
            self.name,
            self.owner_id,
            self.co_owner_id,
            self.admin_id,
            self.member_id,
            self.spare_id,
            *self.emails,
            self.team_id,
            self.invitation_id,
            self.owner_invitation_id,
            self.key_id,
            self.owner_key_id,
            self.domain_id,
            self.connection_id,
            self.setup_link_id,
        )


Body = Callable[[World], dict[str, Any]]
# A certificate standing in for an IdP's signing certificate (SAML connections set up by hand).
IDP_CERT, _ = new_sp_keypair("idp.test")


def saml_body(slug: str) -> dict[str, Any]:
    return {
        "kind": "saml",
        "name": f"{slug} Okta",
        "idp_entity_id": f"https://idp.{slug}.example/saml",
        "sso_url": f"https://idp.{slug}.example/sso",
        "idp_certs": [IDP_CERT],
    }


# Roles as data: a workspace template and an org's own role, each held by a key in the
# permission matrix, beside the built-ins; and a spare of each that operations change.
CUSTOM_ROLES: dict[str, set[str]] = {
    # Finance (a template): views and manages billing and nothing else.
    "finance": {"org:read", "profile:read", "teams:read", "membership:leave", "billing:read",
                "billing:manage"},
    # Auditor (each org's own): reads members, connections and the audit log.
    "auditor": {"org:read", "members:read", "connections:read", "audit:read"},
}  # fmt: skip
SPARE_ROLE, SPARE_TEMPLATE, SPARE_PERMISSION = "reviewer", "spare", "tunnels:spare"


def ensure_templates() -> None:
    """The workspace's templates and app permission (once, for every world)."""
    if not any(r.key == "finance" for r in custom_roles.list_roles(workspace().id, None)):
        for key in ("finance", SPARE_TEMPLATE):
            custom_roles.create_role(
                system_actor(),
                workspace().id,
                None,
                key=key,
                name=key.title(),
                permissions=sorted(CUSTOM_ROLES["finance"]),
            )
        custom_roles.register_permission(system_actor(), workspace().id, key=SPARE_PERMISSION)
        resources.create_resource_type(
            system_actor(),
            workspace().id,
            key="tenant",
            roles=[{"key": "tenant_member", "permissions": ["org:read"]}],
        )


def grants(role: str, permission: str) -> bool:
    """The matrix's answer for a built-in role (the product rule) or a custom one (its set)."""
    return permission in CUSTOM_ROLES[role] if role in CUSTOM_ROLES else holds(role, permission)


@dataclass(frozen=True)
class Spec:
    scope: str
    permission: str | None = None  # the product rule's permission, by value
    body: Body | None = None  # a valid body for the org in ``World``


SPECS: dict[str, Spec] = {
    # organizations
    "orgs_create_org": Spec("workspace", body=lambda w: {"slug": "gamma", "name": "Gamma"}),
    "orgs_list_orgs": Spec("key"),
    "orgs_get_org": Spec("org", "org:read"),
    "orgs_update_org": Spec("org", "org:update", lambda w: {"name": "Renamed"}),
    "orgs_delete_org": Spec("org", "org:delete"),
    "orgs_transfer_ownership": Spec(
        "org",
        "org:transfer_ownership",
        lambda w: {"to_user_id": w.member_id, "from_user_id": w.owner_id, "confirm": w.slug},
    ),
    # members
    "members_list_members": Spec("org", "members:read"),
    "members_add_member": Spec(
        "org", "members:add", lambda w: {"email": f"added@{w.slug}.example"}
    ),
    "members_get_member": Spec("org", "members:read"),
    "members_update_member": Spec("org", "members:update", lambda w: {"role": "admin"}),
    "members_remove_member": Spec("org", "members:remove"),
    # teams
    "teams_list_teams": Spec("org", "teams:read"),
    "teams_create_team": Spec("org", "teams:write", lambda w: {"name": "Design"}),
    "teams_get_team": Spec("org", "teams:read"),
    "teams_update_team": Spec("org", "teams:write", lambda w: {"name": "Platform"}),
    "teams_delete_team": Spec("org", "teams:write"),
    "teams_list_team_members": Spec("org", "teams:read"),
    "teams_add_team_member": Spec("org", "team_members:write", lambda w: {"user_id": w.spare_id}),
    "teams_create_team_key": Spec("org", "api_keys:write", lambda w: {"name": "ci"}),
    "teams_update_team_member": Spec("org", "teams:write", lambda w: {"is_lead": True}),
    "teams_remove_team_member": Spec("org", "team_members:write"),
    # invitations
    "invitations_create_invitation": Spec(
        "org", "members:invite", lambda w: {"email": f"new@{w.slug}.example"}
    ),
    "invitations_list_invitations": Spec("org", "members:invite"),
    "invitations_get_invitation": Spec("org", "members:invite"),
    "invitations_resend_invitation": Spec("org", "members:invite"),
    "invitations_revoke_invitation": Spec("org", "members:invite"),
    "invitations_accept_invitation": Spec("public", body=lambda w: {"token": "ghi_unknown"}),
    "invitations_reject_invitation": Spec("public", body=lambda w: {"token": "ghi_unknown"}),
    # API keys
    "api_keys_list_org_keys": Spec("org", "api_keys:write"),
    "api_keys_create_org_key": Spec("org", "api_keys:write", lambda w: {"name": "ci"}),
    "api_keys_revoke_org_key": Spec("org", "api_keys:write"),
    # setup links
    "setup_links_create_setup_link": Spec("org", "owners:manage", lambda w: {"intents": ["sso"]}),
    "setup_links_list_setup_links": Spec("org", "owners:manage"),
    "setup_links_revoke_setup_link": Spec("org", "owners:manage"),
    "api_keys_list_workspace_keys": Spec("workspace"),
    "api_keys_create_workspace_key": Spec("workspace", body=lambda w: {"name": "deploy"}),
    "roles_list_workspace_roles": Spec("workspace"),
    "roles_create_workspace_role": Spec(
        "workspace", body=lambda w: {"key": "support", "name": "Support", "permissions": []}
    ),
    "roles_update_workspace_role": Spec("workspace", body=lambda w: {"name": "Spare Role"}),
    "roles_delete_workspace_role": Spec("workspace"),
    "roles_list_org_roles": Spec("org", "org:read"),
    "roles_create_org_role": Spec(
        "org", "roles:write", lambda w: {"key": "helper", "name": "Helper", "permissions": []}
    ),
    "roles_update_org_role": Spec("org", "roles:write", lambda w: {"name": "Reviewers"}),
    "roles_delete_org_role": Spec("org", "roles:write"),
    "roles_list_permissions": Spec("key"),
    "roles_create_permission": Spec("workspace", body=lambda w: {"key": "tunnels:use"}),
    "roles_delete_permission": Spec("workspace"),
    "resources_list_resource_types": Spec("key"),
    "resources_create_resource_type": Spec(
        "workspace", body=lambda w: {"key": "site", "roles": [{"key": "x", "permissions": []}]}
    ),
    "resources_list_resources": Spec("org", "resources:read"),
    "resources_create_resource": Spec(
        "org", "resources:write", lambda w: {"type": "tenant", "id": "t9"}
    ),
    "resources_get_resource": Spec("org", "resources:read"),
    "resources_update_resource": Spec("org", "resources:write", lambda w: {"name": "Tenant One"}),
    "resources_delete_resource": Spec("org", "resources:write"),
    "resources_list_resource_members": Spec("org", "resources:read"),
    "resources_grant_resource_role": Spec(
        "org", "resources:write", lambda w: {"user_id": w.spare_id, "role": "tenant_member"}
    ),
    "resources_revoke_resource_role": Spec("org", "resources:write"),
    "authorize_authorize_resources": Spec(
        "key",
        body=lambda w: {
            "user_id": w.member_id,
            "org": w.slug,
            "permission": "org:read",
            "type": "tenant",
        },
    ),
    "api_keys_revoke_workspace_key": Spec("workspace"),
    # SCIM tokens and role mappings
    "api_keys_list_scim_tokens": Spec("org", "scim_tokens:write"),
    "api_keys_create_scim_token": Spec("org", "scim_tokens:write", lambda w: {"name": "okta"}),
    "api_keys_revoke_scim_token": Spec("org", "scim_tokens:write"),
    "members_list_role_mappings": Spec("org", "members:read"),
    "members_set_role_mapping": Spec(
        "org", "members:update", lambda w: {"group": "Engineers", "role": "admin"}
    ),
    "members_delete_role_mapping": Spec("org", "members:update"),
    # domains
    "domains_list_domains": Spec("org", "connections:read"),
    "domains_claim_domain": Spec(
        "org", "connections:write", lambda w: {"domain": f"login.{w.slug}.example"}
    ),
    "domains_verify_domain": Spec("org", "connections:write"),
    "domains_remove_domain": Spec("org", "connections:write"),
    # connections
    "connections_list_connections": Spec("org", "connections:read"),
    "connections_create_connection": Spec("org", "connections:write", lambda w: saml_body(w.slug)),
    "connections_get_connection": Spec("org", "connections:read"),
    "connections_update_connection": Spec("org", "connections:write", lambda w: {"name": "SSO"}),
    "connections_delete_connection": Spec("org", "connections:write"),
    # audit, authorization, docs
    "audit_list_audit_events": Spec("org", "audit:read"),
    "audit_export_audit_events": Spec("org", "audit:read"),
    "audit_list_workspace_audit_events": Spec("workspace"),
    # policies
    "policies_get_workspace_policy": Spec("workspace"),
    "policies_put_workspace_policy": Spec("workspace", body=lambda w: {"session_max_age": "8h"}),
    "policies_get_org_policy": Spec("org", "org:read"),
    "policies_put_org_policy": Spec("org", "policies:write", lambda w: {"mfa_required": True}),
    "policies_delete_org_policy": Spec("org", "policies:write"),
    "policies_get_effective_policy": Spec("org", "org:read"),
    "authorize_authorize": Spec(
        "key", body=lambda w: {"user_id": w.member_id, "org": w.slug, "permission": "org:read"}
    ),
    "authorize_authorize_batch": Spec(
        "key",
        body=lambda w: {
            "checks": [{"user_id": w.member_id, "org": w.slug, "permission": "org:read"}]
        },
    ),
    "openapi_openapi_document": Spec("public"),
    # OAuth clients (workspace keys)
    "clients_list_clients": Spec("workspace"),
    "clients_create_client": Spec(
        "workspace", body=lambda w: {"name": "Web app", "redirect_uris": ["https://app.example/cb"]}
    ),
    "clients_revoke_client": Spec("workspace"),
}

ORG_OPS = [op for op in OPERATIONS if op.scope == "org"]
AUTHENTICATED_OPS = [op for op in OPERATIONS if op.scope != "public"]
WORKSPACE_OPS = [op for op in OPERATIONS if op.scope == "workspace"]
BODY_OPS = [op for op in OPERATIONS if op.body is not None]
SUB_RESOURCE_PARAMS = (
    "user_id",
    "team_id",
    "invitation_id",
    "key_id",
    "token_id",
    "mapping_id",
    "domain_id",
    "connection_id",
    "link_id",
)
_PARAM = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


def endpoint(op: Operation) -> str:
    return op.endpoint


def params(op: Operation) -> list[str]:
    return _PARAM.findall(op.rule)


def path(op: Operation, w: World, **override: str) -> str:
    """The operation's URL with every placeholder filled from ``w`` (or ``override``)."""
    values = {
        "slug": w.slug,
        "user_id": w.member_id,
        "team_id": w.team_id,
        "invitation_id": w.invitation_id,
        "key_id": w.key_id,
        "token_id": w.scim_token_id,
        "mapping_id": w.mapping_id,
        "domain_id": w.domain_id,
        "connection_id": w.connection_id,
        "link_id": w.setup_link_id,
        "client_id": "unknown-client",  # no client exists: workspace operations only
        "role": SPARE_ROLE,
        "template": SPARE_TEMPLATE,
        "permission": SPARE_PERMISSION,
        "rtype": "tenant",
        "rid": "t1",
        "principal_id": w.member_id,  # holds tenant_member on t1
        **override,
    }
    return "/api/v1" + _PARAM.sub(lambda m: values[m.group(1)], op.rule)


def body(op: Operation, w: World) -> dict[str, Any] | None:
    make = SPECS[op.endpoint].body
    return None if make is None else make(w)


def call(
    client: FlaskClient,
    op: Operation,
    w: World,
    token: str | None,
    **override: str,
) -> TestResponse:
    """Send ``op`` as ``token`` (None: no credential) with a valid body for ``w``."""
    payload = body(op, w)
    return client.open(
        path(op, w, **override),
        method=op.method,
        headers=auth(token) if token else {},
        **({} if payload is None else {"json": payload}),
    )


def is_success(response: TestResponse) -> bool:
    return response.status_code in (200, 201, 204)


# --- the world ----------------------------------------------------------------------------


def build_world(slug: str, name: str) -> World:
    """An org with two owners, an admin, two members, a team, invitations and keys."""
    org = make_org(slug, name)
    actor = system_actor()
    people = {
        label: people_services.add_member(actor, org, email=f"{label}@{slug}.example", role=role)
        for label, role in [
            ("owner", Role.OWNER),
            ("coowner", Role.OWNER),
            ("admin", Role.ADMIN),
            ("member", Role.MEMBER),
            ("spare", Role.MEMBER),
        ]
    }
    ids = {label: m.user_id for label, m in people.items()}
    team = teams.create_team(actor, org, name=f"{name} Engineering")
    teams.add_team_member(actor, org, team.id, ids["member"])
    invitation, _ = invitations.invite_by_email(actor, org, email=f"invitee@{slug}.example")
    owner_invitation, _ = invitations.invite_by_email(
        actor, org, email=f"heir@{slug}.example", role=Role.OWNER
    )
    ws = workspace()
    key, _ = create_api_key(actor, ws.id, name=f"{slug} reader", org=org, role=Role.MEMBER)
    owner_key, _ = create_api_key(actor, ws.id, name=f"{slug} root", org=org, role=Role.OWNER)
    scim_token, _ = create_scim_token(actor, org, name=f"{slug} idp")
    mapping = role_mappings.set_role_mapping(actor, org, group="Staff", role=Role.MEMBER)
    ensure_templates()
    tenant = resources.create_resource(actor, org, type="tenant", id="t1")
    resources.grant_role(actor, org, tenant, role="tenant_member", user_id=people["member"].user_id)
    for own in ("auditor", SPARE_ROLE):
        custom_roles.create_role(
            actor,
            workspace().id,
            org,
            key=own,
            name=own.title(),
            permissions=sorted(CUSTOM_ROLES["auditor"]),
        )
    domain = domains.claim_domain(actor, org, f"{slug}.example")
    body = saml_body(slug)
    del body["kind"]
    connection = add_saml_connection(actor, org, **body)
    link, _ = setup_links.create_setup_link(actor, org, intents=["sso"])
    db.session.commit()
    return World(
        org_id=org.id,
        slug=slug,
        name=name,
        owner_id=ids["owner"],
        co_owner_id=ids["coowner"],
        admin_id=ids["admin"],
        member_id=ids["member"],
        spare_id=ids["spare"],
        emails=(
            *(f"{label}@{slug}.example" for label in people),
            f"invitee@{slug}.example",
            f"heir@{slug}.example",
        ),
        team_id=team.id,
        invitation_id=invitation.id,
        owner_invitation_id=owner_invitation.id,
        key_id=key.id,
        owner_key_id=owner_key.id,
        scim_token_id=scim_token.id,
        mapping_id=mapping.id,
        domain_id=domain.id,
        connection_id=connection.id,
        setup_link_id=link.id,
    )


def org_state(org_id: str) -> dict[str, Any]:
    """Everything stored for one org, read fresh from the database."""
    db.session.expire_all()

    def rows(query: Any) -> list[tuple[str, ...]]:
        return sorted(tuple(map(str, row)) for row in db.session.execute(query))

    return {
        "org": rows(
            select(
                Organization.slug,
                Organization.name,
                Organization.member_cap,
                Organization.deleted_at,
            ).where(Organization.id == org_id)
        ),
        "members": rows(
            select(Membership.user_id, Membership.role, Membership.status).where(
                Membership.org_id == org_id
            )
        ),
        "roles": rows(
            select(CustomRole.key, CustomRole.name, CustomRole.permissions).where(
                CustomRole.org_id == org_id
            )
        ),
        "resources": rows(
            select(Resource.external_id, Resource.name, Resource.parent_id).where(
                Resource.org_id == org_id
            )
        ),
        "resource_grants": rows(
            select(
                ResourceGrant.resource_id, ResourceGrant.membership_id, ResourceGrant.role_id
            ).where(ResourceGrant.org_id == org_id)
        ),
        "teams": rows(select(Team.id, Team.name, Team.parent_id).where(Team.org_id == org_id)),
        "team_members": rows(
            select(TeamMember.team_id, TeamMember.membership_id, TeamMember.is_lead)
            .join(Team, Team.id == TeamMember.team_id)
            .where(Team.org_id == org_id)
        ),
        "invitations": rows(
            select(
                Invitation.id,
                Invitation.status,
                Invitation.role,
                Invitation.token_digest,
                Invitation.expires_at,
            ).where(Invitation.org_id == org_id)
        ),
        "api_keys": rows(
            select(ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.revoked_at).where(
                ApiKey.org_id == org_id
            )
        ),
        "setup_links": rows(
            select(SetupLink.id, SetupLink.revoked_at).where(SetupLink.org_id == org_id)
        ),
        "domains": rows(
            select(Domain.id, Domain.domain, Domain.status, Domain.verified_at).where(
                Domain.org_id == org_id
            )
        ),
        "connections": rows(
            select(Connection.id, Connection.name, Connection.enabled, Connection.secret).where(
                Connection.org_id == org_id
            )
        ),
        "audit_events": db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.org_id == org_id)
        ),
    }


def leaked(response: TestResponse, w: World) -> list[str]:
    text = response.get_data(as_text=True)
    return [value for value in w.identifiers() if value in text]


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def settings_overrides(dns_server: DnsServer) -> dict[str, Any]:
    """Domain verification asks a DNS server on loopback, serving each world's TXT record.

    Every operation is tried with each bad credential from one address: more failures than
    the per-IP limit allows (tests/test_ratelimit.py is where that limit is checked)."""
    dns_server.reset()
    return {
        "DNS_RESOLVER": dns_server.address,
        "DNS_TIMEOUT": 1,
        "RATE_LIMIT_IP_FAILURES": "100000 per 10 minutes",
        "RATE_LIMIT_CREDENTIAL_FAILURES": "100000 per 10 minutes",
    }


def publish_domain(w: World, dns_server: DnsServer) -> World:
    record = domains.verification_record(db.session.get(Domain, w.domain_id))
    dns_server.set_txt(record["name"], record["value"])
    return w


@pytest.fixture
def world(app: Flask, dns_server: DnsServer) -> World:
    return publish_domain(build_world("alpha", "Alpha Inc"), dns_server)


@pytest.fixture
def other(app: Flask, world: World, dns_server: DnsServer) -> World:
    return publish_domain(build_world("beta", "Beta Corp"), dns_server)


# --- the inventory --------------------------------------------------------------------------


def test_every_operation_has_a_spec() -> None:
    assert ORG_OPS, "no org-scope operations registered"
    assert {op.endpoint for op in OPERATIONS} == set(SPECS)
    for op in OPERATIONS:
        spec = SPECS[op.endpoint]
        assert op.scope == spec.scope, op.endpoint
        assert (op.permission.value if op.permission else None) == spec.permission, op.endpoint
        assert (op.body is None) == (spec.body is None), op.endpoint


def test_every_admin_route_is_a_declared_operation(app: Flask) -> None:
    # The browser's own endpoint, authenticated by the session cookie rather than a key.
    declared = {("/api/v1" + op.rule, op.method) for op in OPERATIONS} | {("/api/v1/me", "GET")}
    routed = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routed == declared
    assert len({op.endpoint for op in OPERATIONS}) == len(OPERATIONS)


def test_every_route_under_an_org_is_gated() -> None:
    for op in OPERATIONS:
        if "<slug>" in op.rule:
            assert op.scope == "org" and op.permission is not None, op.endpoint


# --- a. the permission gate -----------------------------------------------------------------


@pytest.mark.parametrize("role", [*(r.value for r in Role), *CUSTOM_ROLES], ids=str)
@pytest.mark.parametrize("op", ORG_OPS, ids=endpoint)
def test_permission_gate(client: FlaskClient, world: World, op: Operation, role: str) -> None:
    token = make_key(world.org, role)
    permission = SPECS[op.endpoint].permission
    assert permission is not None
    before = org_state(world.org_id)

    response = call(client, op, world, token)

    if grants(role, permission):
        assert is_success(response), (response.status_code, response.json)
    else:
        assert response.status_code == 403, (response.status_code, response.json)
        assert response.json["error"] == "forbidden"
        assert response.json["reason"].startswith("requires_")
        if role in RANK:
            assert RANK[response.json["reason"].removeprefix("requires_")] > RANK[role]
        assert org_state(world.org_id) == before


@pytest.mark.parametrize("op", ORG_OPS, ids=endpoint)
def test_workspace_key_is_allowed_everywhere(
    client: FlaskClient, world: World, root_key: str, op: Operation
) -> None:
    response = call(client, op, world, root_key)
    assert is_success(response), (response.status_code, response.json)


def _revoked_key(w: World) -> str:
    key, token = create_api_key(system_actor(), workspace().id, name="old", org=w.org)
    revoke_api_key(system_actor(), workspace().id, key.id, org=w.org)
    db.session.commit()
    return token


def _expired_key(w: World) -> str:
    key, token = create_api_key(system_actor(), workspace().id, name="old", org=w.org)
    key.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    return token


def _deleted_org_key(w: World) -> str:
    gone = make_org("gone")
    token = make_key(gone, Role.OWNER)
    services.delete_org(system_actor(), gone)
    db.session.commit()
    return token


def _workspace_key_revoked(w: World) -> str:
    create_api_key(system_actor(), workspace().id, name="kept")  # the last one stays
    key, token = create_api_key(system_actor(), workspace().id, name="old")
    revoke_api_key(system_actor(), workspace().id, key.id)
    db.session.commit()
    return token


BAD_CREDENTIALS: dict[str, Callable[[World], dict[str, str]]] = {
    "none": lambda w: {},
    "empty-bearer": lambda w: {"Authorization": "Bearer "},
    "garbage-bearer": lambda w: auth("not-a-key"),
    "unknown-key": lambda w: auth("ghk_" + "A" * 43),
    "revoked-org-key": lambda w: auth(_revoked_key(w)),
    "revoked-workspace-key": lambda w: auth(_workspace_key_revoked(w)),
    "expired-key": lambda w: auth(_expired_key(w)),
    "deleted-org-key": lambda w: auth(_deleted_org_key(w)),
    "basic-scheme": lambda w: {"Authorization": "Basic " + make_key(w.org, Role.OWNER)},
    "bare-token": lambda w: {"Authorization": make_key(w.org, Role.OWNER)},
}


@pytest.mark.parametrize("credential", list(BAD_CREDENTIALS))
def test_requests_without_a_valid_key_are_unauthorized(
    client: FlaskClient, world: World, credential: str
) -> None:
    headers = BAD_CREDENTIALS[credential](world)
    before = org_state(world.org_id)
    failures = []
    for op in AUTHENTICATED_OPS:
        for slug in (world.slug, "no-such-org"):  # 401 before the org is looked up
            payload = body(op, world)
            response = client.open(
                path(op, world, slug=slug),
                method=op.method,
                headers=headers,
                **({} if payload is None else {"json": payload}),
            )
            if response.status_code != 401 or response.json["error"] != "unauthorized":
                failures.append((op.endpoint, slug, response.status_code, response.json))
    assert not failures, pformat(failures, width=100)
    assert org_state(world.org_id) == before


# --- b. role-relative rules ---------------------------------------------------------------


def _membership(w: World, user_id: str) -> Membership | None:
    db.session.expire_all()
    return db.session.scalar(
        select(Membership).where(Membership.org_id == w.org_id, Membership.user_id == user_id)
    )


def _invitation(invitation_id: str) -> Invitation:
    db.session.expire_all()
    return db.session.get(Invitation, invitation_id)


@dataclass(frozen=True)
class Case:
    method: str
    url: Callable[[World], str]
    body: Callable[[World], dict[str, Any]] | None
    admin_error: str  # the admin key's 403 code
    owner_status: int
    owner_effect: Callable[[World, TestResponse], bool]


def _in(w: World, rest: str) -> str:
    return f"/api/v1/orgs/{w.slug}{rest}"


OWNER_CASES: dict[str, Case] = {
    "demote-owner": Case(
        "PATCH",
        lambda w: _in(w, f"/members/{w.co_owner_id}"),
        lambda w: {"role": "admin"},
        "owner_protected",
        200,
        lambda w, r: _membership(w, w.co_owner_id).role == Role.ADMIN,
    ),
    "suspend-owner": Case(
        "PATCH",
        lambda w: _in(w, f"/members/{w.co_owner_id}"),
        lambda w: {"status": "suspended"},
        "owner_protected",
        200,
        lambda w, r: _membership(w, w.co_owner_id).status is MembershipStatus.SUSPENDED,
    ),
    "remove-owner": Case(
        "DELETE",
        lambda w: _in(w, f"/members/{w.co_owner_id}"),
        None,
        "owner_protected",
        204,
        lambda w, r: _membership(w, w.co_owner_id) is None,
    ),
    "grant-owner": Case(
        "PATCH",
        lambda w: _in(w, f"/members/{w.member_id}"),
        lambda w: {"role": "owner"},
        "owner_protected",
        200,
        lambda w, r: _membership(w, w.member_id).role == Role.OWNER,
    ),
    "add-owner": Case(
        "POST",
        lambda w: _in(w, "/members"),
        lambda w: {"email": f"boss@{w.slug}.example", "role": "owner"},
        "owner_protected",
        201,
        lambda w, r: _membership(w, r.json["user_id"]).role == Role.OWNER,
    ),
    "invite-owner": Case(
        "POST",
        lambda w: _in(w, "/invitations"),
        lambda w: {"email": f"boss@{w.slug}.example", "role": "owner"},
        "owner_protected",
        201,
        lambda w, r: _invitation(r.json["id"]).role == Role.OWNER,
    ),
    "resend-owner-invitation": Case(
        "POST",
        lambda w: _in(w, f"/invitations/{w.owner_invitation_id}/resend"),
        None,
        "owner_protected",
        200,
        lambda w, r: r.json["role"] == "owner" and r.json["status"] == "pending",
    ),
    "revoke-owner-invitation": Case(
        "POST",
        lambda w: _in(w, f"/invitations/{w.owner_invitation_id}/revoke"),
        None,
        "owner_protected",
        200,
        lambda w, r: _invitation(w.owner_invitation_id).status is InvitationStatus.REVOKED,
    ),
    "create-owner-key": Case(
        "POST",
        lambda w: _in(w, "/api-keys"),
        lambda w: {"name": "escalate", "role": "owner"},
        "role_above_creator",
        201,
        lambda w, r: db.session.get(ApiKey, r.json["id"]).role == Role.OWNER,
    ),
    "revoke-owner-key": Case(
        "DELETE",
        lambda w: _in(w, f"/api-keys/{w.owner_key_id}"),
        None,
        "role_above_actor",
        204,
        lambda w, r: db.session.get(ApiKey, w.owner_key_id).revoked_at is not None,
    ),
}


def _send(client: FlaskClient, case: Case, w: World, token: str) -> TestResponse:
    payload = case.body(w) if case.body else None
    return client.open(
        case.url(w),
        method=case.method,
        headers=auth(token),
        **({} if payload is None else {"json": payload}),
    )


@pytest.mark.parametrize("name", list(OWNER_CASES))
def test_admin_key_cannot_touch_owners(client: FlaskClient, world: World, name: str) -> None:
    case = OWNER_CASES[name]
    token = make_key(world.org, Role.ADMIN)
    before = org_state(world.org_id)
    response = _send(client, case, world, token)
    assert response.status_code == 403, response.json
    assert response.json["error"] == case.admin_error
    assert org_state(world.org_id) == before


@pytest.mark.parametrize("name", list(OWNER_CASES))
def test_owner_key_can_touch_owners(client: FlaskClient, world: World, name: str) -> None:
    case = OWNER_CASES[name]
    response = _send(client, case, world, make_key(world.org, Role.OWNER))
    assert response.status_code == case.owner_status, response.json
    assert case.owner_effect(world, response)


@pytest.mark.parametrize(
    ("user", "role"),
    [("member_id", "admin"), ("admin_id", "member")],
    ids=["promote-to-admin", "demote-to-member"],
)
def test_admin_key_changes_roles_below_owner(
    client: FlaskClient, world: World, user: str, role: str
) -> None:
    user_id = getattr(world, user)
    response = client.patch(
        f"/api/v1/orgs/{world.slug}/members/{user_id}",
        json={"role": role},
        headers=auth(make_key(world.org, Role.ADMIN)),
    )
    assert response.status_code == 200, response.json
    assert _membership(world, user_id).role == Role(role)


@pytest.mark.parametrize("role", ["member", "admin"])
def test_admin_key_mints_keys_up_to_its_own_role(
    client: FlaskClient, world: World, role: str
) -> None:
    response = client.post(
        f"/api/v1/orgs/{world.slug}/api-keys",
        json={"name": "minted", "role": role},
        headers=auth(make_key(world.org, Role.ADMIN)),
    )
    assert response.status_code == 201, response.json
    assert response.json["role"] == role


# --- c. tenant isolation ------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_another_orgs_slug_is_not_found(
    client: FlaskClient, world: World, other: World, role: Role
) -> None:
    """A's key sends B's own valid requests to B's slug: 404, as for an org that is not there."""
    token = make_key(world.org, role)
    before = org_state(other.org_id)
    failures = []
    for op in ORG_OPS:
        response = call(client, op, other, token)
        missing = call(client, op, replace(other, slug="no-such-org"), token)
        if response.status_code != 404 or response.json["error"] != "org_not_found":
            failures.append((op.endpoint, "status", response.status_code, response.json))
        elif leaked(response, other):
            failures.append((op.endpoint, "leak", leaked(response, other)))
        elif {k: v.replace(other.slug, "no-such-org") for k, v in response.json.items()} != (
            missing.json
        ):
            failures.append((op.endpoint, "differs from a missing org", response.json))
        if org_state(other.org_id) != before:
            failures.append((op.endpoint, "changed B"))
            before = org_state(other.org_id)
    assert not failures, pformat(failures, width=100)


CROSS_OPS = [op for op in ORG_OPS if set(params(op)) & set(SUB_RESOURCE_PARAMS)]


def _other_value(param: str, w: World) -> str:
    return {
        "user_id": w.member_id,
        "team_id": w.team_id,
        "invitation_id": w.invitation_id,
        "key_id": w.key_id,
        "token_id": w.scim_token_id,
        "mapping_id": w.mapping_id,
        "domain_id": w.domain_id,
        "connection_id": w.connection_id,
        "link_id": w.setup_link_id,
    }[param]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER], ids=str)
def test_another_orgs_sub_resources_are_not_found(
    client: FlaskClient, world: World, other: World, role: Role
) -> None:
    """Under A's slug, each of B's ids in turn in place of A's: 404, and nothing changes."""
    assert CROSS_OPS
    token = make_key(world.org, role)
    before = {w.org_id: org_state(w.org_id) for w in (world, other)}
    failures = []
    held = BUILTIN_ROLES[role.value].permissions
    for op in CROSS_OPS:
        if SPECS[op.endpoint].permission not in (None, *held):
            continue  # refused before any id is read (the matrix test checks that)
        for param in set(params(op)) & set(SUB_RESOURCE_PARAMS):
            response = call(client, op, world, token, **{param: _other_value(param, other)})
            if response.status_code != 404 or response.json["error"] == "org_not_found":
                failures.append((op.endpoint, param, response.status_code, response.json))
            elif leaked(response, other):
                failures.append((op.endpoint, param, "leak", leaked(response, other)))
            after = {w.org_id: org_state(w.org_id) for w in (world, other)}
            if after != before:
                failures.append((op.endpoint, param, "changed data"))
                before = after
    assert not failures, pformat(failures, width=100)


BODY_REFERENCES: dict[str, tuple[str, str, Callable[[World, World], dict[str, Any]]]] = {
    "team-member-from-b": (
        "POST",
        "/teams/{team}/members",
        lambda a, b: {"user_id": b.member_id},
    ),
    "team-under-b-parent": ("POST", "/teams", lambda a, b: {"name": "X", "parent_id": b.team_id}),
    "team-moved-under-b": ("PATCH", "/teams/{team}", lambda a, b: {"parent_id": b.team_id}),
    "invitation-to-b-team": (
        "POST",
        "/invitations",
        lambda a, b: {"email": "x@alpha.example", "team_ids": [b.team_id]},
    ),
    "transfer-to-b-user": (
        "POST",
        "/transfer-ownership",
        lambda a, b: {"to_user_id": b.member_id, "from_user_id": a.owner_id, "confirm": a.slug},
    ),
    "transfer-from-b-owner": (
        "POST",
        "/transfer-ownership",
        lambda a, b: {"to_user_id": a.member_id, "from_user_id": b.owner_id, "confirm": a.slug},
    ),
}


@pytest.mark.parametrize("name", list(BODY_REFERENCES))
def test_bodies_cannot_reference_another_orgs_resources(
    client: FlaskClient, world: World, other: World, name: str
) -> None:
    method, rest, make_body = BODY_REFERENCES[name]
    token = make_key(world.org, Role.OWNER)
    before = {w.org_id: org_state(w.org_id) for w in (world, other)}
    response = client.open(
        f"/api/v1/orgs/{world.slug}" + rest.format(team=world.team_id),
        method=method,
        json=make_body(world, other),
        headers=auth(token),
    )
    assert response.status_code == 404, response.json
    assert not leaked(response, other)
    assert {w.org_id: org_state(w.org_id) for w in (world, other)} == before


@pytest.mark.parametrize("role", list(Role), ids=str)
@pytest.mark.parametrize("op", WORKSPACE_OPS, ids=endpoint)
def test_workspace_operations_are_not_found_for_org_keys(
    client: FlaskClient, world: World, op: Operation, role: Role
) -> None:
    workspace_key, _ = create_api_key(system_actor(), workspace().id, name="ops")
    db.session.commit()
    token = make_key(world.org, role)
    before_keys = db.session.scalar(select(func.count()).select_from(ApiKey))
    before = org_state(world.org_id)

    response = call(client, op, world, token, key_id=workspace_key.id)

    assert response.status_code == 404, response.json
    assert response.json["error"] == "not_found"
    assert org_state(world.org_id) == before
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(ApiKey)) == before_keys
    assert db.session.get(ApiKey, workspace_key.id).revoked_at is None
    assert db.session.scalar(select(Organization).where(Organization.slug == "gamma")) is None


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_org_key_lists_only_its_org(
    client: FlaskClient, world: World, other: World, role: Role
) -> None:
    response = client.get("/api/v1/orgs", headers=auth(make_key(world.org, role)))
    assert response.status_code == 200
    assert [o["slug"] for o in response.json["data"]] == [world.slug]
    assert response.json["next_cursor"] is None
    assert not leaked(response, other)


def test_workspace_key_lists_every_org(
    client: FlaskClient, world: World, other: World, root_key: str
) -> None:
    response = client.get("/api/v1/orgs", headers=auth(root_key))
    assert response.status_code == 200
    assert sorted(o["slug"] for o in response.json["data"]) == [world.slug, other.slug]


# --- d. malformed requests ----------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    content_type: str
    data: Callable[[World, Operation], str | bytes]
    error: str


def _with_unknown_field(w: World, op: Operation) -> str:
    return json.dumps({**(body(op, w) or {}), "is_superuser": True})


BAD_BODIES: dict[str, Bad] = {
    "truncated-json": Bad("application/json", lambda w, op: '{"name": ', "malformed_json"),
    "not-json": Bad("application/json", lambda w, op: "name=x", "malformed_json"),
    "invalid-utf8": Bad("application/json", lambda w, op: b'{"name": "\xff"}', "malformed_json"),
    "json-array": Bad("application/json", lambda w, op: '[{"name": "x"}]', "invalid_request"),
    "empty-array": Bad("application/json", lambda w, op: "[]", "invalid_request"),
    "json-string": Bad("application/json", lambda w, op: '"x"', "invalid_request"),
    "json-number": Bad("application/json", lambda w, op: "42", "invalid_request"),
    "text-plain": Bad("text/plain", lambda w, op: '{"name": "x"}', "unsupported_media_type"),
    "xml": Bad("application/xml", lambda w, op: "<name>x</name>", "unsupported_media_type"),
    "unknown-field": Bad("application/json", _with_unknown_field, "validation_error"),
}
BAD_BODIES.update(
    {
        # Form bodies are not JSON: refused, never read as an empty object.
        "form-urlencoded": Bad(
            "application/x-www-form-urlencoded", lambda w, op: "name=x", "unsupported_media_type"
        ),
        "multipart": Bad(
            "multipart/form-data; boundary=b",
            lambda w, op: (
                '--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n'
            ),
            "unsupported_media_type",
        ),
        # json.loads raises RecursionError here, not ValueError.
        "deeply-nested": Bad(
            "application/json", lambda w, op: "[" * 100_000 + "]" * 100_000, "malformed_json"
        ),
    }
)
BAD_BODY_PARAMS = [pytest.param(name, bad, id=name) for name, bad in BAD_BODIES.items()]


@pytest.mark.parametrize(("kind", "bad"), BAD_BODY_PARAMS)
def test_malformed_bodies_are_bad_requests(
    client: FlaskClient, world: World, root_key: str, kind: str, bad: Bad
) -> None:
    """Every operation that takes a body, sent this bad one: 400 with the code, nothing kept."""
    assert BODY_OPS
    before = org_state(world.org_id)
    failures = []
    for op in BODY_OPS:
        response = client.open(
            path(op, world),
            method=op.method,
            headers=auth(root_key),
            data=bad.data(world, op),
            content_type=bad.content_type,
        )
        if response.status_code != 400 or response.json["error"] != bad.error:
            failures.append((op.endpoint, response.status_code, response.json))
        elif bad.error == "validation_error" and "is_superuser" not in response.json["fields"]:
            failures.append((op.endpoint, "unknown field not named", response.json))
        if org_state(world.org_id) != before:
            failures.append((op.endpoint, "changed the org"))
            before = org_state(world.org_id)
    assert not failures, pformat(failures, width=100)


NUL_CASES = {
    "org-name": ("PATCH", "", {"name": "Acme\x00Corp"}),
    "team-name": ("POST", "/teams", {"name": "Ops\x00"}),
    "member-name": ("POST", "/members", {"email": "nul@alpha.example", "name": "N\x00L"}),
    "key-name": ("POST", "/api-keys", {"name": "ci\x00"}),
}


@pytest.mark.parametrize("name", list(NUL_CASES))
def test_nul_characters_are_rejected(
    client: FlaskClient, world: World, root_key: str, name: str
) -> None:
    method, rest, payload = NUL_CASES[name]
    before = org_state(world.org_id)
    response = client.open(
        f"/api/v1/orgs/{world.slug}{rest}", method=method, json=payload, headers=auth(root_key)
    )
    assert response.status_code == 400, (response.status_code, response.json)
    assert response.json["error"] == "invalid_characters"
    assert org_state(world.org_id) == before
