"""The ``gatehouse`` command: Flask's CLI group with the app's own commands."""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import (
    AppGroup,
    FlaskGroup,
    NoAppException,
    ScriptInfo,
    routes_command,
    shell_command,
)

from idp.actors import system_actor
from idp.cli_backends import (
    OperationError,
    Operations,
    Row,
    local_operations,
    remote_operations,
)
from idp.cli_profiles import load_profile
from idp.config import ConfigError, current_settings
from idp.connections import domains
from idp.connections import services as connections
from idp.credentials import setup_links
from idp.credentials.models import ApiKey
from idp.credentials.services import create_api_key
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
            _fail(exc.code, exc.message, exc.details)

    return run


def _fail(code: str, message: str, details: dict[str, Any] | None = None) -> None:
    """A refusal: ``error: CODE: MESSAGE [details as JSON]`` on stderr, exit 1."""
    extra = f" {json.dumps(details, default=str)}" if details else ""
    click.echo(f"error: {code}: {message}{extra}", err=True)
    sys.exit(1)


# --- commands that also work remotely -----------------------------------------------------

PROFILE = "gatehouse.profile"  # in click's ctx.meta: the profile of remote mode, if any


def _profile_name() -> str | None:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(PROFILE) if ctx is not None else None


@contextmanager
def _operations() -> Iterator[tuple[Operations, str | None]]:
    """The backend of this invocation, with the org of commands given no SLUG."""
    name = _profile_name()
    if name is None:
        with local_operations() as local:
            yield local, None
        return
    profile = load_profile(name)
    with remote_operations(profile) as remote:
        yield remote, profile.org


class Target:
    """What a command body gets: the backend and the org a missing SLUG stands for."""

    def __init__(self, ops: Operations, default_org: str | None) -> None:
        self.ops, self.default_org = ops, default_org

    def org(self, slug: str | None) -> str:
        if slug:
            return slug
        if self.default_org:
            return self.default_org
        raise click.UsageError("Give the org's SLUG (or an org in the --profile)")

    def split(self, args: tuple[str, ...], usage: str) -> tuple[str, tuple[str, ...]]:
        """``[SLUG] A B``: one word more than the usage's other names is the slug."""
        slug, rest = _split_target(args, usage)
        return self.org(slug), rest


def operator_command(
    group: click.Group, name: str, show: Callable[[Any], None] | None = None, **settings: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """A command written once for both modes: here (the services, committed once) or, with
    ``--profile``, over that profile's admin API. The body returns the admin API's
    representation; ``show`` prints it as text, ``--json`` as JSON."""

    def register(body: Callable[..., Any]) -> click.Command:
        @functools.wraps(body)
        def run(*args: Any, as_json: bool, **kwargs: Any) -> None:
            try:
                with _operations() as (ops, default_org):
                    result = body(Target(ops, default_org), *args, **kwargs)
            except OperationError as exc:
                _fail(exc.code, exc.message, exc.details)
            if result is None:
                return
            if as_json:
                click.echo(json.dumps(result, indent=2))
            elif show is not None:
                show(result)

        run = click.option(
            "--json", "as_json", is_flag=True, help="Print the admin API's JSON representation."
        )(run)
        command = group.command(name, with_appcontext=False, **settings)(run)
        command.remote = True  # type: ignore[attr-defined]
        return command

    return register


def _rows(line: Callable[[Row], str]) -> Callable[[list[Row]], None]:
    def show(rows: list[Row]) -> None:
        for row in rows:
            click.echo(line(row))

    return show


def _field(name: str) -> Callable[[Row], None]:
    return lambda row: click.echo(row[name])


def _member_line(m: Row) -> str:
    return f"{m['user_id']}\t{m['email']}\t{m['role']}\t{m['status']}"


def _credential_state(row: Row) -> str:
    used = row["last_used_at"] or "never"
    return f"{used}\t{'revoked' if row['revoked_at'] else 'active'}"


def _workspace() -> Any:
    return services.ensure_workspace(current_settings().workspace)


def _local_only(profile: str | None) -> str:
    return (
        f"this command is not offered in remote mode (profile {profile!r}): run it where "
        "Gatehouse runs, without --profile or GATEHOUSE_PROFILE"
    )


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


@operator_command(org_cli, "create", _field("id"))
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--parent", "parent", default=None, help="Slug of the parent organization.")
def org_create(target: Target, slug: str, name: str, parent: str | None) -> Row:
    """Create an organization; prints its id."""
    return target.ops.create_org(slug, name, parent)


@operator_command(org_cli, "list", _rows(lambda o: f"{o['slug']}\t{o['id']}\t{o['name']}"))
def org_list(target: Target) -> list[Row]:
    """List organizations: slug, id, name."""
    return target.ops.list_orgs()


@operator_command(org_cli, "delete")
@click.argument("slug", required=False)
@click.confirmation_option(prompt="Delete the organization? Its slug stays reserved.")
def org_delete(target: Target, slug: str | None) -> None:
    """Soft-delete SLUG (refused while it has sub-organizations)."""
    target.ops.delete_org(target.org(slug))


@operator_command(api_key_cli, "create", _field("key"))
@click.option("--name", required=True)
@click.option("--org", "org_slug", default=None, help="Scope the key to one organization.")
@click.option("--role", type=ROLES, default=None, help="Role of an org key (default: admin).")
def api_key_create(target: Target, name: str, org_slug: str | None, role: str | None) -> Row:
    """Create an API key; prints only the key."""
    if role is not None and org_slug is None:
        raise click.UsageError(f"--role {role!r} is for org keys: a workspace key acts as owner")
    return target.ops.create_api_key(name, org_slug, role or Role.ADMIN.value)


@operator_command(
    api_key_cli,
    "list",
    _rows(
        lambda k: (
            f"{k['id']}\t{k['name']}\t{k['org_id'] or '-'}\t{k['role'] or 'owner'}"
            f"\t...{k['hint']}\t{_credential_state(k)}"
        )
    ),
)
@click.option("--org", "org_slug", default=None, help="An org's keys (default: workspace keys).")
def api_key_list(target: Target, org_slug: str | None) -> list[Row]:
    """List API keys (never the keys): id, name, org id, role, last 4 characters, last used,
    state."""
    return target.ops.list_api_keys(org_slug)


@operator_command(api_key_cli, "revoke")
@click.argument("key_id")
@click.option("--org", "org_slug", default=None, help="The org of an org key.")
def api_key_revoke(target: Target, key_id: str, org_slug: str | None) -> None:
    """Revoke an API key by id (never the last live workspace key)."""
    target.ops.revoke_api_key(key_id, org_slug)


@operator_command(invite_cli, "create", _field("url"))
@click.argument("args", nargs=-1, required=True, metavar="[SLUG] EMAIL")
@click.option("--role", type=ROLES, default="member", show_default=True)
def invite_create(target: Target, args: tuple[str, ...], role: str) -> Row:
    """Invite EMAIL to the organization SLUG; prints the accept URL."""
    slug, (email,) = target.split(args, "[SLUG] EMAIL")
    return target.ops.invite(slug, email, role)


@invite_cli.command("expire")
@transactional
def invite_expire() -> None:
    """Mark every pending invitation past its expiry as expired."""
    click.echo(invitations.expire_invitations(system_actor()))


@operator_command(member_cli, "list", _rows(_member_line))
@click.argument("slug", required=False)
def member_list(target: Target, slug: str | None) -> list[Row]:
    """List members of SLUG: user id, email, role, status."""
    return target.ops.list_members(target.org(slug))


@operator_command(member_cli, "add", lambda m: click.echo(_member_line(m)))
@click.argument("args", nargs=-1, required=True, metavar="[SLUG] EMAIL")
@click.option("--role", type=ROLES, default="member", show_default=True)
@click.option("--name", default=None, help="The name this org shows for the person.")
def member_add(target: Target, args: tuple[str, ...], role: str, name: str | None) -> Row:
    """Add a person to SLUG at once (creating them if new); prints user id, email, role,
    status."""
    slug, (email,) = target.split(args, "[SLUG] EMAIL")
    return target.ops.add_member(slug, email, role, name)


def _status_command(name: str, status: str, doc: str) -> click.Command:
    def change(target: Target, args: tuple[str, ...]) -> Row:
        slug, (user_id,) = target.split(args, "[SLUG] USER_ID")
        return target.ops.set_member_status(slug, user_id, status)

    change.__doc__ = doc
    change.__name__ = f"member_{name}"
    change = click.argument("args", nargs=-1, required=True, metavar="[SLUG] USER_ID")(change)
    return operator_command(member_cli, name, lambda m: click.echo(_member_line(m)))(change)


member_suspend = _status_command(
    "suspend", "suspended", "Suspend a member: no access, membership kept (never the last owner)."
)
member_reactivate = _status_command("reactivate", "active", "Reactivate a suspended member.")


@operator_command(member_cli, "remove")
@click.argument("args", nargs=-1, required=True, metavar="[SLUG] USER_ID")
def member_remove(target: Target, args: tuple[str, ...]) -> None:
    """Remove a member from SLUG (never the last owner); the person stays in the workspace."""
    slug, (user_id,) = target.split(args, "[SLUG] USER_ID")
    target.ops.remove_member(slug, user_id)


@operator_command(scim_token_cli, "create", _field("token"))
@click.argument("slug", required=False)
@click.option("--name", default="scim", show_default=True)
def scim_token_create(target: Target, slug: str | None, name: str) -> Row:
    """Create a SCIM token for SLUG; prints only the token."""
    return target.ops.create_scim_token(target.org(slug), name)


@operator_command(
    scim_token_cli,
    "list",
    _rows(lambda t: f"{t['id']}\t{t['name']}\t...{t['hint']}\t{_credential_state(t)}"),
)
@click.argument("slug", required=False)
def scim_token_list(target: Target, slug: str | None) -> list[Row]:
    """List SLUG's SCIM tokens: id, name, last 4 characters, last used, revoked."""
    return target.ops.list_scim_tokens(target.org(slug))


@operator_command(scim_token_cli, "revoke")
@click.argument("args", nargs=-1, required=True, metavar="[SLUG] TOKEN_ID")
def scim_token_revoke(target: Target, args: tuple[str, ...]) -> None:
    """Revoke one of SLUG's SCIM tokens by id."""
    slug, (token_id,) = target.split(args, "[SLUG] TOKEN_ID")
    target.ops.revoke_scim_token(slug, token_id)


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


@operator_command(
    client_cli,
    "list",
    _rows(
        lambda c: (
            f"{c['client_id']}\t{c['name']}\t"
            f"{'public' if c['is_public'] else 'confidential'}\t{' '.join(c['redirect_uris'])}"
        )
    ),
)
def client_list(target: Target) -> list[Row]:
    """List OAuth clients (never their secrets): client_id, name, kind, redirect URIs."""
    return target.ops.list_clients()


@operator_command(client_cli, "delete")
@click.argument("client_id")
def client_delete(target: Target, client_id: str) -> None:
    """Revoke an OAuth client and every token issued to it."""
    target.ops.delete_client(client_id)


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


@operator_command(setup_link_cli, "create", _field("url"))
@click.argument("slug", required=False)
@click.option(
    "--intent",
    "intents",
    multiple=True,
    required=True,
    type=click.Choice([i.value for i in setup_links.Intent]),
    help="What the link sets up (repeat).",
)
@click.option("--expires-in", type=int, default=None, help="Seconds (default 72 hours).")
def setup_link_create(
    target: Target, slug: str | None, intents: tuple[str, ...], expires_in: int | None
) -> Row:
    """Create a setup link for SLUG; prints only its URL (shown once)."""
    return target.ops.create_setup_link(target.org(slug), list(intents), expires_in)


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

    if (profile := _profile_name()) is not None:
        # Remote mode never loads an app here: what needs one has no admin API endpoint.
        raise click.UsageError(_local_only(profile))
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


class GatehouseGroup(FlaskGroup):
    """Flask's CLI group, whose listing loads no app in remote mode and shows a
    configuration error as its message, not a traceback."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """In remote mode, refuse a command that would run here before it loads anything."""
        name, command, rest = super().resolve_command(ctx, args)
        profile = _profile_name()
        leaf, words = command, list(rest)
        while profile is not None and isinstance(leaf, click.Group) and words:
            word = words.pop(0)
            if word.startswith("-"):
                break  # the group's own --help
            leaf = leaf.get_command(ctx, word)
        runs_here = leaf is not None and not isinstance(leaf, click.Group)
        if profile is not None and runs_here and not getattr(leaf, "remote", False):
            raise click.UsageError(_local_only(profile), ctx)
        return name, command, rest

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(self.commands)
        if ctx.meta.get(PROFILE):
            return sorted(names)
        try:
            names.update(ctx.ensure_object(ScriptInfo).load_app().cli.list_commands(ctx))
        except (NoAppException, click.ClickException) as exc:
            click.secho(f"Error: {exc.format_message()}\n", err=True, fg="red")
        return sorted(names)


def _remember_profile(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[PROFILE] = value


@click.command(
    "run",
    hidden=True,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def run_refused() -> None:
    """Not offered: Flask's development server is not how Gatehouse is served."""
    raise click.UsageError(
        "gatehouse does not serve: use 'make run' in development, or "
        "gunicorn --config gunicorn.conf.py wsgi:app"
    )


main = GatehouseGroup(
    create_app=_create_app,
    help="Gatehouse: identity for multi-tenant apps.",
    add_default_commands=False,  # run (refused), shell and routes stay out of --help
    add_version_option=False,  # Flask's prints Flask's version; ours, Gatehouse's
    params=[
        click.Option(
            ["--profile"],
            envvar="GATEHOUSE_PROFILE",
            expose_value=False,
            is_eager=True,
            callback=_remember_profile,
            help="Work remotely: a profile of ~/.config/gatehouse/profiles.toml "
            "(its admin API URL, API key and default org).",
        )
    ],
)
main = click.version_option(package_name="gatehouse", prog_name="gatehouse")(main)
main.add_command(run_refused)
for _debugging in (shell_command, routes_command):
    _hidden = copy.copy(_debugging)  # Flask's own objects stay as they are
    _hidden.hidden = True
    main.add_command(_hidden)
# The groups are the script's own, so remote mode finds them without loading an app; their
# local commands push the app's context themselves (AppGroup), found on app.cli as well.
for _command in COMMANDS:
    if isinstance(_command, AppGroup):
        main.add_command(_command)
