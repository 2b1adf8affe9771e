"""The ``gatehouse`` command: Flask's CLI group with the app's own commands."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, FlaskGroup

from idp.actors import system_actor
from idp.config import ConfigError, current_settings
from idp.connections import domains
from idp.connections import services as connections
from idp.credentials import setup_links
from idp.credentials.models import ApiKey
from idp.credentials.services import (
    create_api_key,
    create_scim_token,
    list_scim_tokens,
    revoke_scim_token,
)
from idp.crypto import ENCRYPTED_COLUMNS, current_key_ring, reencrypt_column
from idp.db import db, declare_workspace_wide
from idp.errors import GatehouseError
from idp.orgs import custom_roles, invitations, role_mappings, services
from idp.orgs.roles import Role
from idp.people import services as people
from idp.policies import registry as policy_registry
from idp.policies import services as policy_services
from idp.resources import services as resources
from idp.sso.setup import add_oidc_connection, add_saml_connection

# A role key: built-in (owner, admin, member) or a custom role of the org or workspace.
ROLES = click.STRING


def transactional(command: Callable[..., Any]) -> Callable[..., Any]:
    """Commit once when the command succeeds; on a domain error roll back and exit 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        declare_workspace_wide()  # the operator's commands span orgs (row-level security)
        try:
            result = command(*args, **kwargs)
            db.session.commit()
            return result
        except GatehouseError as exc:
            db.session.rollback()
            details = f" {json.dumps(exc.details, default=str)}" if exc.details else ""
            click.echo(f"error: {exc.code}: {exc.message}{details}", err=True)
            sys.exit(1)

    return run


def _workspace() -> Any:
    return services.ensure_workspace(current_settings().workspace)


org_cli = AppGroup("org", help="Organizations.")
api_key_cli = AppGroup("api-key", help="Admin API keys.")
invite_cli = AppGroup("invite", help="Invitations.")
member_cli = AppGroup("member", help="Members of an organization.")
scim_token_cli = AppGroup("scim-token", help="SCIM bearer tokens of an organization.")
role_mapping_cli = AppGroup("role-mapping", help="IdP group to role mappings of an organization.")
role_cli = AppGroup("role", help="Roles: built-in, workspace templates and an org's own.")
permission_cli = AppGroup("permission", help="The app's own permissions.")
resource_cli = AppGroup("resource", help="Scopes below an org: resource types, resources, grants.")
keys_cli = AppGroup("keys", help="Encryption and signing keys.")
domain_cli = AppGroup("domain", help="Email domains of an organization, verified by DNS TXT.")
connection_cli = AppGroup("connection", help="SSO connections (OIDC, SAML) of an organization.")
client_cli = AppGroup("client", help="OAuth clients: the apps signing people in through Gatehouse.")
people_cli = AppGroup("people", help="People: memberships that are one person.")
setup_link_cli = AppGroup("setup-link", help="Setup links for a customer's IT admin.")
policy_cli = AppGroup(
    "policy", help="Policies: the workspace baseline and the stricter overrides of orgs."
)


@click.command("bootstrap")
@transactional
def bootstrap() -> None:
    """Create the workspace; on first run, print a workspace API key (shown once)."""
    workspace = _workspace()
    has_key = (
        db.session.query(ApiKey.id)
        .filter(
            ApiKey.workspace_id == workspace.id,
            ApiKey.org_id.is_(None),
            ApiKey.revoked_at.is_(None),
        )
        .first()
    )
    if has_key:
        click.echo(
            "workspace ready; an API key exists ('gatehouse api-key create' makes more)",
            err=True,
        )
        return
    _, token = create_api_key(system_actor("bootstrap"), workspace.id, name="bootstrap")
    click.echo("Bootstrap workspace API key (shown once, keep it safe):", err=True)
    click.echo(token)


@org_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--parent", "parent", default=None, help="Slug of the parent organization.")
@transactional
def org_create(slug: str, name: str, parent: str | None) -> None:
    """Create an organization; prints its id."""
    org = services.create_org(
        system_actor(), _workspace(), slug=slug, name=name, parent_slug=parent
    )
    click.echo(org.id)


@org_cli.command("list")
@transactional
def org_list() -> None:
    """List organizations: slug, id, name."""
    workspace, cursor = _workspace(), None
    while True:
        page = services.list_orgs(workspace.id, cursor=cursor, limit=200)
        for org in page.items:
            click.echo(f"{org.slug}\t{org.id}\t{org.name}")
        if not (cursor := page.next_cursor):
            break


@api_key_cli.command("create")
@click.option("--name", required=True)
@click.option("--org", "org_slug", default=None, help="Scope the key to one organization.")
@click.option("--role", type=ROLES, default=None, help="Role of an org key (default: admin).")
@transactional
def api_key_create(name: str, org_slug: str | None, role: str | None) -> None:
    """Create an API key; prints only the key."""
    if role is not None and org_slug is None:
        raise click.UsageError(f"--role {role!r} is for org keys: a workspace key acts as owner")
    workspace = _workspace()
    org = services.get_org(workspace.id, org_slug) if org_slug else None
    _, token = create_api_key(
        system_actor(), workspace.id, name=name, org=org, role=role or Role.ADMIN.value
    )
    click.echo(token)


@invite_cli.command("create")
@click.argument("slug")
@click.argument("email")
@click.option("--role", type=ROLES, default="member", show_default=True)
@transactional
def invite_create(slug: str, email: str, role: str) -> None:
    """Invite EMAIL to the organization SLUG; prints the accept URL."""
    org = services.get_org(_workspace().id, slug)
    _, token = invitations.invite_by_email(system_actor(), org, email=email, role=role)
    click.echo(invitations.accept_url(token))


@invite_cli.command("expire")
@transactional
def invite_expire() -> None:
    """Mark every pending invitation past its expiry as expired."""
    click.echo(invitations.expire_invitations(system_actor()))


@member_cli.command("list")
@click.argument("slug")
@transactional
def member_list(slug: str) -> None:
    """List members of SLUG: user id, email, role, status."""
    org, cursor = services.get_org(_workspace().id, slug), None
    while True:
        page = services.list_members(org.id, cursor=cursor, limit=200)
        for m in page.items:
            click.echo(f"{m.user_id}\t{m.email or m.user.email}\t{m.role}\t{m.status.value}")
        if not (cursor := page.next_cursor):
            break


@scim_token_cli.command("create")
@click.argument("slug")
@click.option("--name", default="scim", show_default=True)
@transactional
def scim_token_create(slug: str, name: str) -> None:
    """Create a SCIM token for SLUG; prints only the token."""
    org = services.get_org(_workspace().id, slug)
    _, token = create_scim_token(system_actor(), org, name=name)
    click.echo(token)


@scim_token_cli.command("list")
@click.argument("slug")
@transactional
def scim_token_list(slug: str) -> None:
    """List SLUG's SCIM tokens: id, name, last 4 characters, last used, revoked."""
    org, cursor = services.get_org(_workspace().id, slug), None
    while True:
        page = list_scim_tokens(org.id, cursor=cursor, limit=200)
        for t in page.items:
            used = t.last_used_at.isoformat() if t.last_used_at else "never"
            state = "revoked" if t.revoked_at else "active"
            click.echo(f"{t.id}\t{t.name}\t...{t.hint}\t{used}\t{state}")
        if not (cursor := page.next_cursor):
            break


@scim_token_cli.command("revoke")
@click.argument("slug")
@click.argument("token_id")
@transactional
def scim_token_revoke(slug: str, token_id: str) -> None:
    """Revoke one of SLUG's SCIM tokens by id."""
    org = services.get_org(_workspace().id, slug)
    revoke_scim_token(system_actor(), org, token_id)


def _role_scope(org_slug: str | None) -> Any:
    return services.get_org(_workspace().id, org_slug) if org_slug else None


@role_cli.command("list")
@click.option("--org", "org_slug", default=None, help="The roles this org can use.")
@transactional
def role_list(org_slug: str | None) -> None:
    """List roles, highest first: key, rank, holders, permissions."""
    for role in custom_roles.list_roles(_workspace().id, _role_scope(org_slug)):
        click.echo(f"{role.key}\t{role.rank}\t{role.holders}\t{' '.join(sorted(role.permissions))}")


@role_cli.command("create")
@click.argument("key")
@click.option("--name", required=True)
@click.option("--permission", "permissions", multiple=True, help="Repeat for each permission.")
@click.option("--rank", type=int, default=None, help="1 to 299 (Member 100, Admin 200).")
@click.option("--description", default=None)
@click.option("--org", "org_slug", default=None, help="An org's own role (default: a template).")
@transactional
def role_create(
    key: str,
    name: str,
    permissions: tuple[str, ...],
    rank: int | None,
    description: str | None,
    org_slug: str | None,
) -> None:
    """Create a workspace template (or, with --org, an org's own role)."""
    custom_roles.create_role(
        system_actor(),
        _workspace().id,
        _role_scope(org_slug),
        key=key,
        name=name,
        permissions=list(permissions),
        rank=rank,
        description=description,
    )


@role_cli.command("delete")
@click.argument("key")
@click.option("--org", "org_slug", default=None)
@transactional
def role_delete(key: str, org_slug: str | None) -> None:
    """Delete a custom role nobody holds."""
    custom_roles.delete_role(system_actor(), _workspace().id, _role_scope(org_slug), key)


@permission_cli.command("create")
@click.argument("key")
@click.option("--description", default=None)
@click.option(
    "--granted-from",
    type=click.Choice([Role.MEMBER.value, Role.ADMIN.value, Role.OWNER.value]),
    default="owner",
    show_default=True,
    help="The lowest built-in role holding it.",
)
@transactional
def permission_create(key: str, description: str | None, granted_from: str) -> None:
    """Register a permission of the app's own (``tunnels:use``)."""
    custom_roles.register_permission(
        system_actor(),
        _workspace().id,
        key=key,
        description=description,
        granted_from=Role(granted_from),
    )


@permission_cli.command("list")
@transactional
def permission_list() -> None:
    """List the app's permissions: key, lowest built-in role holding it, description."""
    for row in custom_roles.list_permissions(_workspace().id):
        click.echo(f"{row.key}\t{row.granted_from.value}\t{row.description}")


def _role_option(value: str) -> dict[str, Any]:
    """``key=perm1,perm2`` → a resource role."""
    key, sep, permissions = value.partition("=")
    if not sep:
        raise click.BadParameter(f"{value!r}: write KEY=PERMISSION[,PERMISSION...]")
    return {"key": key, "permissions": [p for p in permissions.split(",") if p]}


@resource_cli.command("type-create")
@click.argument("key")
@click.option("--parent", default=None, help="The type its resources sit in.")
@click.option("--role", "roles", multiple=True, required=True, help="KEY=PERM,PERM (repeat).")
@transactional
def resource_type_create(key: str, parent: str | None, roles: tuple[str, ...]) -> None:
    """Declare a resource type and its roles."""
    resources.create_resource_type(
        system_actor(),
        _workspace().id,
        key=key,
        parent=parent,
        roles=[_role_option(r) for r in roles],
    )


@resource_cli.command("create")
@click.argument("slug")
@click.argument("type_key", metavar="TYPE")
@click.argument("resource_id", metavar="ID")
@click.option("--name", default=None)
@click.option("--parent", default=None, help="TYPE:ID of the parent resource.")
@transactional
def resource_create(
    slug: str, type_key: str, resource_id: str, name: str | None, parent: str | None
) -> None:
    """Create a resource of SLUG."""
    org = services.get_org(_workspace().id, slug)
    resources.create_resource(
        system_actor(), org, type=type_key, id=resource_id, name=name, parent=_ref(parent)
    )


@resource_cli.command("list")
@click.argument("slug")
@click.option("--type", "type_key", default=None)
@transactional
def resource_list(slug: str, type_key: str | None) -> None:
    """List SLUG's resources: type, id, name."""
    org = services.get_org(_workspace().id, slug)
    kinds = {k.id: k.key for k in resources.list_resource_types(org.workspace_id)}
    cursor = None
    while True:
        page = resources.list_resources(org, type=type_key, cursor=cursor, limit=200)
        for row in page.items:
            click.echo(f"{kinds.get(row.type_id, '')}\t{row.external_id}\t{row.name or ''}")
        if not (cursor := page.next_cursor):
            break


@resource_cli.command("grant")
@click.argument("slug")
@click.argument("type_key", metavar="TYPE")
@click.argument("resource_id", metavar="ID")
@click.option("--role", required=True)
@click.option("--user", "user_id", default=None)
@click.option("--team", "team_id", default=None)
@transactional
def resource_grant(
    slug: str,
    type_key: str,
    resource_id: str,
    role: str,
    user_id: str | None,
    team_id: str | None,
) -> None:
    """Give a member (--user) or a team (--team) a role on a resource."""
    org = services.get_org(_workspace().id, slug)
    resource = resources.get_resource(org, type_key, resource_id)
    resources.grant_role(system_actor(), org, resource, role=role, user_id=user_id, team_id=team_id)


def _ref(value: str | None) -> dict[str, str] | None:
    """A resource named on the command line as TYPE:ID."""
    if not value:
        return None
    type_key, _, resource_id = value.partition(":")
    return {"type": type_key, "id": resource_id}


@role_mapping_cli.command("set")
@click.argument("slug")
@click.option("--group", required=True, help="The IdP group's displayName or externalId.")
@click.option("--role", type=ROLES, required=True)
@click.option("--resource", default=None, help="TYPE:ID: the role is one at that resource.")
@transactional
def role_mapping_set(slug: str, group: str, role: str, resource: str | None) -> None:
    """Map an IdP group to a role in SLUG (or at one of its resources); members follow at
    once."""
    org = services.get_org(_workspace().id, slug)
    role_mappings.set_role_mapping(
        system_actor(), org, group=group, role=role, resource=_ref(resource)
    )


@role_mapping_cli.command("list")
@click.argument("slug")
@transactional
def role_mapping_list(slug: str) -> None:
    """List SLUG's mappings: group, role, and the resource (TYPE:ID) for one at a resource."""
    org = services.get_org(_workspace().id, slug)
    for mapping in role_mappings.list_role_mappings(org.id):
        at = resources.resource_ref(mapping.resource_id) if mapping.resource_id else None
        where = f"\t{at['type']}:{at['id']}" if at else ""
        click.echo(f"{mapping.group}\t{mapping.role}{where}")


@role_mapping_cli.command("delete")
@click.argument("slug")
@click.option("--group", required=True)
@click.option("--resource", default=None, help="TYPE:ID of the mapping's resource.")
@transactional
def role_mapping_delete(slug: str, group: str, resource: str | None) -> None:
    """Remove the mapping of an IdP group in SLUG (org-wide, or at --resource)."""
    org = services.get_org(_workspace().id, slug)
    ref = _ref(resource)
    target = resources.get_resource(org, ref["type"], ref["id"]).id if ref else None
    mapping = role_mappings.get_role_mapping(org.id, group=group, resource_id=target)
    role_mappings.delete_role_mapping(system_actor(), org, mapping)


@keys_cli.command("rotate")
@transactional
def keys_rotate() -> None:
    """Add a new OIDC signing key of each algorithm; older keys stay published until their
    tokens have expired, then drop out of the JWKS."""
    from idp.oauth.keys import rotate_keys

    for key in rotate_keys():
        click.echo(f"{key.alg.value}\t{key.kid}")


@client_cli.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True)
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True)
@click.option("--public", "is_public", is_flag=True, help="No secret; PKCE (S256) required.")
@click.option("--third-party", is_flag=True, help="Ask each person's consent once per scopes.")
@click.option("--id-token-alg", type=click.Choice(["RS256", "ES256"]), default="RS256")
@click.option(
    "--initiate-login-uri", default=None, help="Where people signed in at Gatehouse are sent."
)
@transactional
def client_create(
    name: str,
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    is_public: bool,
    third_party: bool,
    id_token_alg: str,
    initiate_login_uri: str | None,
) -> None:
    """Register an OAuth client; prints its client_id (and secret, shown once) as JSON."""
    from idp.oauth.services import create_client

    client, secret = create_client(
        _workspace().id,
        name=name,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris,
        is_public=is_public,
        first_party=not third_party,
        id_token_alg=id_token_alg,
        initiate_login_uri=initiate_login_uri,
    )
    out = {"client_id": client.client_id}
    if secret is not None:
        out["client_secret"] = secret
    click.echo(json.dumps(out))


@keys_cli.command("rotate-encryption")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
def keys_rotate_encryption(batch_size: int) -> None:
    """Re-encrypt stored secrets under the first GATEHOUSE_ENCRYPTION_KEY; prints rows per column.

    Commits batch by batch (not through ``transactional``), so a re-run after an interruption
    only does what is left. Exits 1 if a value cannot be decrypted with any key of the ring.
    """
    click.echo(f"encrypting under key id {current_key_ring().current_id}", err=True)
    failed = 0
    for name, entry in sorted(ENCRYPTED_COLUMNS.items()):
        rotation = reencrypt_column(entry, batch_size)
        click.echo(f"{name}\t{rotation.reencrypted}")
        for row_id, reason in rotation.failed.items():
            click.echo(f"error: {name} of row {row_id}: {reason}", err=True)
        failed += len(rotation.failed)
    if failed:
        sys.exit(1)


@domain_cli.command("add")
@click.argument("slug")
@click.argument("domain")
@transactional
def domain_add(slug: str, domain: str) -> None:
    """Claim DOMAIN for SLUG; prints the TXT record to publish: name, type, value."""
    org = services.get_org(_workspace().id, slug)
    record = domains.verification_record(domains.claim_domain(system_actor(), org, domain))
    click.echo(
        f"Publish this TXT record (at {record['name']} or "
        f"{domains.CHALLENGE_LABEL}.{record['name']}), then run: "
        f"gatehouse domain verify {slug} {record['name']}",
        err=True,
    )
    click.echo(f"{record['name']}\t{record['type']}\t{record['value']}")


@domain_cli.command("verify")
@click.argument("slug")
@click.argument("domain")
@transactional
def domain_verify(slug: str, domain: str) -> None:
    """Look up DOMAIN's TXT record and mark it verified for SLUG."""
    org = services.get_org(_workspace().id, slug)
    claim = domains.get_domain(org.id, domain=domain)
    claim = domains.verify_domain(system_actor(), org, claim.id)
    click.echo(f"{claim.domain}\t{claim.status.value}")


@domain_cli.command("list")
@click.argument("slug")
@transactional
def domain_list(slug: str) -> None:
    """List SLUG's domains: domain, status, the TXT value to publish."""
    org = services.get_org(_workspace().id, slug)
    for claim in domains.list_domains(org.id):
        record = domains.verification_record(claim)
        click.echo(f"{claim.domain}\t{claim.status.value}\t{record['value']}")


@domain_cli.command("remove")
@click.argument("slug")
@click.argument("domain")
@transactional
def domain_remove(slug: str, domain: str) -> None:
    """Remove DOMAIN from SLUG."""
    org = services.get_org(_workspace().id, slug)
    domains.remove_domain(system_actor(), org, domains.get_domain(org.id, domain=domain).id)


@connection_cli.command("add")
@click.argument("slug")
@click.option("--name", default=None, help="Defaults to the protocol's name.")
@click.option(
    "--saml-metadata", "metadata", default=None, help="The IdP's metadata: a file or URL."
)
@click.option("--oidc-issuer", "issuer", default=None, help="The OIDC issuer (discovered now).")
@click.option("--client-id", default=None)
@click.option("--client-secret", default=None, help="Stored encrypted.")
@click.option("--preset", default="generic", show_default=True)
@transactional
def connection_add(
    slug: str,
    name: str | None,
    metadata: str | None,
    issuer: str | None,
    client_id: str | None,
    client_secret: str | None,
    preset: str,
) -> None:
    """Add a SAML (--saml-metadata) or OIDC (--oidc-issuer) connection; prints its id."""
    org = services.get_org(_workspace().id, slug)
    if (metadata is None) == (issuer is None):
        raise click.UsageError("Give either --saml-metadata FILE|URL or --oidc-issuer URL")
    if issuer is not None:
        if not client_id or not client_secret:
            raise click.UsageError("--oidc-issuer needs --client-id and --client-secret")
        connection = add_oidc_connection(
            system_actor(),
            org,
            name=name or "OIDC",
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            preset=preset,
        )
    else:
        source = (
            {"metadata_url": metadata}
            if metadata.startswith(("https://", "http://"))
            else {"metadata_xml": Path(metadata).read_text()}
        )
        connection = add_saml_connection(
            system_actor(), org, name=name or "SAML", preset=preset, **source
        )
    click.echo(connection.id)


@connection_cli.command("list")
@click.argument("slug")
@transactional
def connection_list(slug: str) -> None:
    """List SLUG's connections: id, kind, name, enabled."""
    org = services.get_org(_workspace().id, slug)
    for c in connections.list_connections(org.id):
        click.echo(f"{c.id}\t{c.kind.value}\t{c.name}\t{'enabled' if c.enabled else 'disabled'}")


@connection_cli.command("remove")
@click.argument("slug")
@click.argument("connection_id")
@transactional
def connection_remove(slug: str, connection_id: str) -> None:
    """Remove a connection; the sessions it authenticated end with it."""
    org = services.get_org(_workspace().id, slug)
    connections.delete_connection(
        system_actor(), org, connections.get_connection(org.id, connection_id)
    )


def _policy_value(name: str, raw: str) -> Any:
    """A value as typed: JSON (``true``, ``3600``, ``["a.example"]``, ``null``), else the
    text itself (``12h``, ``owner``); for a domain list, also ``a.example,b.example``."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    key = policy_registry.policy_key(name)
    if key.kind is policy_registry.Kind.DOMAIN_SET and isinstance(value, str):
        value = [d.strip() for d in value.split(",") if d.strip()]
    return value


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _split_target(args: tuple[str, ...], usage: str) -> tuple[str | None, tuple[str, ...]]:
    """``[SLUG] KEY ...`` by count: one word more than ``usage`` names is the org's slug
    (slugs have no underscores, so no slug reads as a key)."""
    arity = len(usage.split()) - 1
    if len(args) == arity:
        return None, args
    if len(args) == arity + 1:
        return args[0], args[1:]
    raise click.UsageError(f"expected {usage}")


@policy_cli.command("show")
@click.argument("slug", required=False)
@click.option("--explain", is_flag=True, help="Where each value comes from.")
@transactional
def policy_show(slug: str | None, explain: bool) -> None:
    """The effective policy of SLUG (or the workspace baseline): key, value[, source]."""
    workspace = _workspace()
    if slug is None:
        body = policy_services.workspace_policy(workspace, explain_values=True)
    else:
        org = services.get_org(workspace.id, slug)
        body = policy_services.effective_org_policy(org, explain_values=True)
    keys = body.get("keys") or body["effective"]
    for name, item in keys.items():
        line = f"{name}\t{_show(item['value'])}"
        if explain:
            line += f"\t{item['source']}"
            if item["superseded"]:
                line += f"\tsupersedes {', '.join(item['superseded'])}"
        click.echo(line)


# Values such as -5 are arguments (refused by the key's parser), not unknown options.
_VALUES = {"ignore_unknown_options": True}


@policy_cli.command("set", context_settings=_VALUES)
@click.argument("args", nargs=-1, required=True, metavar="[SLUG] KEY VALUE")
@click.option("--dry-run", is_flag=True, help="Only print whom the change would affect.")
@transactional
def policy_set(args: tuple[str, ...], dry_run: bool) -> None:
    """Set KEY of SLUG's overrides (stricter only), or of the workspace baseline."""
    slug, (name, raw) = _split_target(args, "[SLUG] KEY VALUE")
    change = {name: _policy_value(name, raw)}
    workspace = _workspace()
    if slug is None:
        result = policy_services.set_workspace_policy(
            system_actor(), workspace, change, merge=True, dry_run=dry_run
        )
    else:
        org = services.get_org(workspace.id, slug)
        result = policy_services.set_org_policy(
            system_actor(), org, change, merge=True, dry_run=dry_run
        )
    if dry_run:
        click.echo(json.dumps(result, indent=2))
        db.session.rollback()


@policy_cli.command("unset")
@click.argument("args", nargs=-1, required=True, metavar="[SLUG] KEY")
@transactional
def policy_unset(args: tuple[str, ...]) -> None:
    """Drop KEY from SLUG's overrides (or the baseline): it is inherited (or default) again."""
    slug, (name,) = _split_target(args, "[SLUG] KEY")
    workspace = _workspace()
    if slug is None:
        policy_services.clear_workspace_policy(system_actor(), workspace, [name])
    else:
        org = services.get_org(workspace.id, slug)
        policy_services.clear_org_policy(system_actor(), org, [name])


@people_cli.command("duplicates")
@click.argument("slug", required=False)
@transactional
def people_duplicates(slug: str | None) -> None:
    """List addresses held by several memberships of one org (from an earlier release), as
    JSON lines; exit 1 if there are any."""
    workspace = _workspace()
    org = services.get_org(workspace.id, slug) if slug else None
    found = people.list_duplicates(workspace.id, org.id if org else None)
    for duplicate in found:
        click.echo(json.dumps(duplicate))
    if found:
        raise SystemExit(1)


@people_cli.command("merge")
@click.argument("slug")
@click.argument("user_ids", nargs=-1, required=True)
@transactional
def people_merge(slug: str, user_ids: tuple[str, ...]) -> None:
    """Merge memberships of one address in SLUG into the first USER_ID (audited): the highest
    role set by hand, their teams and IdP links; the others are removed with their access."""
    org = services.get_org(_workspace().id, slug)
    kept = people.merge_members(system_actor(), org, list(user_ids))
    click.echo(f"{kept.user_id}\t{kept.role}\t{kept.status.value}")


@setup_link_cli.command("create")
@click.argument("slug")
@click.option(
    "--intent",
    "intents",
    multiple=True,
    required=True,
    type=click.Choice([i.value for i in setup_links.Intent]),
    help="What the link sets up (repeat).",
)
@click.option("--expires-in", type=int, default=None, help="Seconds (default 72 hours).")
@transactional
def setup_link_create(slug: str, intents: tuple[str, ...], expires_in: int | None) -> None:
    """Create a setup link for SLUG; prints only its URL (shown once)."""
    org = services.get_org(_workspace().id, slug)
    _, url = setup_links.create_setup_link(
        system_actor(), org, intents=list(intents), expires_in=expires_in
    )
    click.echo(url)


COMMANDS = (
    bootstrap,
    setup_link_cli,
    org_cli,
    api_key_cli,
    invite_cli,
    member_cli,
    scim_token_cli,
    role_mapping_cli,
    role_cli,
    permission_cli,
    resource_cli,
    keys_cli,
    domain_cli,
    connection_cli,
    client_cli,
    policy_cli,
    people_cli,
)


def register_commands(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)


def _create_app() -> Flask:
    from idp.app import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


main = FlaskGroup(create_app=_create_app, help="Gatehouse: identity for multi-tenant apps.")
