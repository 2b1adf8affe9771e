"""The console's pages beside Members: SSO connections and setup links, the directory (SCIM),
domains, API keys, the audit log and its export, roles, teams, policy and settings.

Each action is the service the admin API calls; a page offers what the role may do, and the
service refuses the rest. Handing out a credential (a SCIM token, an API key, a setup link)
needs a sign-in within the last few minutes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, abort, flash, redirect, request, url_for

from idp.audit.services import list_events
from idp.connections import domains as domain_service
from idp.connections import services as connections
from idp.console.console import SignInFirst, Visit
from idp.console.forms import (
    ApiKeyForm,
    ConfirmForm,
    DeleteOrgForm,
    DomainForm,
    NameForm,
    PolicyForm,
    RoleCreateForm,
    SetupLinkForm,
    TeamForm,
    TransferForm,
    check_button,
)
from idp.console.pages import bp, flash_refusal, refuse_into, render, run_policy_form
from idp.credentials import services as credentials
from idp.credentials import setup_links
from idp.db import utcnow
from idp.downloads import audit_export
from idp.errors import GatehouseError
from idp.orgs import custom_roles, teams
from idp.orgs import services as orgs
from idp.orgs.roles import Permission
from idp.policies import services as policies
from idp.policies.registry import KEYS

RECENT_SIGN_IN = timedelta(minutes=10)


def _page(template: str, visit: Visit, status: int = 200, **values: Any) -> Response:
    """A console page (the view has checked that the role includes it)."""
    return render(
        template,
        status,
        visit=visit,
        org=visit.org,
        Permission=Permission,
        confirm=ConfirmForm(),
        **values,
    )


def _recently_signed_in(visit: Visit) -> None:
    """Handing out a credential needs a fresh sign-in (a stolen, idle session cannot)."""
    if utcnow() - visit.session.auth_time > RECENT_SIGN_IN:
        raise SignInFirst(visit.org.slug)


# --- SSO connections and setup links -------------------------------------------------------


@bp.route("/console/orgs/<slug>/sso", methods=["GET", "POST"])
def sso_page(slug: str) -> Response:
    visit = Visit(slug)
    visit.require(Permission.CONNECTIONS_READ)
    form = SetupLinkForm()
    url, status = None, 200
    if form.is_submitted():
        visit.require(Permission.OWNERS_MANAGE)
        if form.validate():
            _recently_signed_in(visit)
            try:
                _link, url = setup_links.create_setup_link(
                    visit.actor,
                    visit.org,
                    intents=form.intents.data,
                    expires_in=int(form.expires_hours.data) * 3600,
                )
            except GatehouseError as refused:
                refuse_into(form, refused, "intents")
                status = 400
        else:
            status = 400
    return _page(
        "console/sso.html",
        visit,
        status,
        connections=connections.list_connections(visit.org.id),
        links=setup_links.list_setup_links(visit.org.id)
        if visit.can(Permission.OWNERS_MANAGE)
        else [],
        form=form,
        url=url,
        now=utcnow(),
    )


@bp.post("/console/orgs/<slug>/sso/<connection_id>/<state>")
def switch_connection(slug: str, connection_id: str, state: str) -> Response:
    visit = Visit(slug)
    check_button()
    if state not in ("on", "off"):
        abort(404)
    connection = connections.get_connection(visit.org.id, connection_id)
    try:
        connections.update_connection(visit.actor, visit.org, connection, enabled=state == "on")
    except GatehouseError as refused:
        flash_refusal(refused)
    else:
        flash(f"{connection.name} is {state}.")
    return redirect(url_for("console.sso_page", slug=slug), code=303)


@bp.post("/console/orgs/<slug>/setup-links/<link_id>/revoke")
def revoke_setup_link(slug: str, link_id: str) -> Response:
    visit = Visit(slug)
    check_button()
    link = setup_links.get_setup_link(visit.org.id, link_id)
    try:
        setup_links.revoke_setup_link(visit.actor, visit.org, link)
    except GatehouseError as refused:
        flash_refusal(refused)
    else:
        flash("Setup link revoked.")
    return redirect(url_for("console.sso_page", slug=slug), code=303)


# --- directory (SCIM) ------------------------------------------------------------------------


@bp.route("/console/orgs/<slug>/directory", methods=["GET", "POST"])
def directory_page(slug: str) -> Response:
    visit = Visit(slug)
    visit.require(Permission.SCIM_TOKENS_WRITE)
    form = NameForm()
    token = None
    if form.is_submitted() and form.validate():
        _recently_signed_in(visit)
        try:
            _credential, token = credentials.create_scim_token(
                visit.actor, visit.org, name=form.name.data
            )
        except GatehouseError as refused:
            refuse_into(form, refused, "name")
    provisioning = list_events(
        visit.org.workspace_id, visit.org.id, actor_type="scim_token", limit=20
    ).items
    tokens = credentials.list_scim_tokens(visit.org.id, limit=100).items
    return _page(
        "console/directory.html",
        visit,
        400 if form.errors else 200,
        form=form,
        token=token,
        base_url=credentials.scim_base_url(visit.org),
        tokens=[t for t in tokens if t.revoked_at is None],
        provisioning=provisioning,
    )


@bp.post("/console/orgs/<slug>/directory/tokens/<token_id>/revoke")
def revoke_scim_token(slug: str, token_id: str) -> Response:
    visit = Visit(slug)
    check_button()
    try:
        credentials.revoke_scim_token(visit.actor, visit.org, token_id)
    except GatehouseError as refused:
        flash_refusal(refused)
    else:
        flash("Token revoked: the IdP's requests with it are refused from now on.")
    return redirect(url_for("console.directory_page", slug=slug), code=303)


# --- domains -------------------------------------------------------------------------------


@bp.route("/console/orgs/<slug>/domains", methods=["GET", "POST"])
def domains_page(slug: str) -> Response:
    visit = Visit(slug)
    visit.require(Permission.CONNECTIONS_READ)
    form = DomainForm()
    if form.is_submitted() and form.validate():
        try:
            domain_service.claim_domain(visit.actor, visit.org, form.domain.data)
        except GatehouseError as refused:
            refuse_into(form, refused, "domain")
        else:
            return redirect(url_for("console.domains_page", slug=slug), code=303)
    return _page(
        "console/domains.html",
        visit,
        400 if form.errors else 200,
        form=form,
        domains=domain_service.list_domains(visit.org.id),
        record=domain_service.verification_record,
    )


@bp.post("/console/orgs/<slug>/domains/<domain_id>/verify")
def verify_org_domain(slug: str, domain_id: str) -> Response:
    visit = Visit(slug)
    check_button()
    try:
        found = domain_service.verify_domain(visit.actor, visit.org, domain_id)
    except GatehouseError as refused:
        flash_refusal(refused)
    else:
        flash(f"{found.domain} is verified.")
    return redirect(url_for("console.domains_page", slug=slug), code=303)


# --- API keys --------------------------------------------------------------------------------


def _key_form(visit: Visit) -> ApiKeyForm:
    form = ApiKeyForm()
    form.role.choices = [(r.key, r.name) for r in visit.grantable()]
    if not form.role.data:
        form.role.data = "member"
    return form


@bp.route("/console/orgs/<slug>/api-keys", methods=["GET", "POST"])
def api_keys_page(slug: str) -> Response:
    visit = Visit(slug)
    visit.require(Permission.API_KEYS_WRITE)
    form = _key_form(visit)
    token = None
    if form.is_submitted() and form.validate():
        _recently_signed_in(visit)
        try:
            _key, token = credentials.create_api_key(
                visit.actor,
                visit.org.workspace_id,
                name=form.name.data,
                org=visit.org,
                role=form.role.data,
            )
        except GatehouseError as refused:
            refuse_into(form, refused, "role" if refused.code.startswith("role") else "name")
    keys = credentials.list_api_keys(visit.org.workspace_id, org_id=visit.org.id, limit=100).items
    return _page(
        "console/api_keys.html",
        visit,
        400 if form.errors else 200,
        form=form,
        token=token,
        keys=[k for k in keys if k.revoked_at is None],
    )


@bp.post("/console/orgs/<slug>/api-keys/<key_id>/revoke")
def revoke_api_key(slug: str, key_id: str) -> Response:
    visit = Visit(slug)
    check_button()
    try:
        credentials.revoke_api_key(visit.actor, visit.org.workspace_id, key_id, org=visit.org)
    except GatehouseError as refused:
        flash_refusal(refused)
    else:
        flash("Key revoked.")
    return redirect(url_for("console.api_keys_page", slug=slug), code=303)


# --- audit log -------------------------------------------------------------------------------


def _audit_filters() -> dict[str, str | None]:
    return {
        "action": (request.args.get("action") or "").strip()[:64] or None,
        "actor": (request.args.get("actor") or "").strip()[:320] or None,
    }


@bp.get("/console/orgs/<slug>/audit")
def audit_page(slug: str) -> Response:
    visit = Visit(slug)
    visit.require(Permission.AUDIT_READ)
    filters = _audit_filters()
    page = list_events(
        visit.org.workspace_id,
        visit.org.id,
        cursor=request.args.get("cursor"),
        limit=50,
        **(filters if visit.can(Permission.AUDIT_READ) else {}),
    )
    return _page(
        "console/audit.html",
        visit,
        events=page.items,
        next_cursor=page.next_cursor,
        filters=filters,
    )


@bp.get("/console/orgs/<slug>/audit/export")
def audit_download(slug: str) -> Response:
    visit = Visit(slug)
    visit.require(Permission.AUDIT_READ)
    return audit_export(visit.org, format=request.args.get("format", "csv"), **_audit_filters())


# --- roles -----------------------------------------------------------------------------------


def _role_form(visit: Visit) -> RoleCreateForm:
    form = RoleCreateForm()
    held = sorted(visit.role.permissions) if visit.role else []
    form.permissions.choices = [(p, p) for p in held]
    return form


@bp.route("/console/orgs/<slug>/roles", methods=["GET", "POST"])
def roles_page(slug: str) -> Response:
    visit = Visit(slug)
    visit.require(Permission.MEMBERS_READ)
    form = _role_form(visit)
    if form.is_submitted() and form.validate():
        try:
            custom_roles.create_role(
                visit.actor,
                visit.org.workspace_id,
                visit.org,
                key=form.key.data,
                name=form.name.data,
                permissions=list(form.permissions.data or []),
                description=form.description.data or None,
            )
        except GatehouseError as refused:
            refuse_into(form, refused, "permissions" if "permission" in refused.code else "key")
        else:
            flash(f"Role {form.name.data} created.")
            return redirect(url_for("console.roles_page", slug=slug), code=303)
    return _page(
        "console/roles.html",
        visit,
        400 if form.errors else 200,
        roles=custom_roles.list_roles(visit.org.workspace_id, visit.org),
        form=form,
    )


# --- teams -----------------------------------------------------------------------------------


@bp.route("/console/orgs/<slug>/teams", methods=["GET", "POST"])
def teams_page(slug: str) -> Response:
    visit = Visit(slug)
    visit.require(Permission.TEAMS_READ)
    listed = teams.list_teams(visit.org.id, limit=500).items
    form = TeamForm()
    form.parent_id.choices = [("", "No parent (top level)")] + [(t.id, t.name) for t in listed]
    if form.is_submitted() and form.validate():
        try:
            teams.create_team(
                visit.actor, visit.org, name=form.name.data, parent_id=form.parent_id.data or None
            )
        except GatehouseError as refused:
            refuse_into(
                form,
                refused,
                "parent_id" if "parent" in refused.code or "nested" in refused.code else "name",
            )
        else:
            flash(f"Team {form.name.data} created.")
            return redirect(url_for("console.teams_page", slug=slug), code=303)
    children: dict[str | None, list[Any]] = {}
    for team in listed:
        children.setdefault(team.parent_id, []).append(team)
    return _page(
        "console/teams.html",
        visit,
        400 if form.errors else 200,
        children=children,
        leads=teams.team_leads(visit.org.id),
        form=form,
    )


# --- policy ----------------------------------------------------------------------------------


@bp.route("/console/orgs/<slug>/policy", methods=["GET", "POST"])
def policy_page(slug: str) -> Response:
    """The effective policy with where each value comes from; a change shows its dry run
    (who would lose access) and is made only once confirmed."""
    visit = Visit(slug)
    visit.require(Permission.POLICIES_WRITE)
    form = PolicyForm()
    form.key.choices = [(name, name) for name in KEYS]
    made, dry_run = run_policy_form(
        form,
        lambda change, dry: policies.set_org_policy(
            visit.actor, visit.org, change, merge=True, dry_run=dry
        ),
    )
    if made:
        flash(f"{form.key.data} changed.")
        return redirect(url_for("console.policy_page", slug=slug), code=303)
    return _page(
        "console/policy.html",
        visit,
        400 if form.errors else 200,
        explained=policies.effective_org_policy(visit.org, explain_values=True),
        form=form,
        dry_run=dry_run,
        keys=KEYS,
    )


# --- settings --------------------------------------------------------------------------------


def _transfer_form(visit: Visit) -> TransferForm:
    form = TransferForm(prefix="transfer")
    others = orgs.list_members(visit.org.id, limit=200).items
    form.to_user_id.choices = [
        (m.user_id, m.email) for m in others if m.user_id != visit.membership.user_id
    ]
    return form


@bp.route("/console/orgs/<slug>/settings", methods=["GET", "POST"])
def settings_page(slug: str) -> Response:
    """The name; for owners, handing the org to another member and deleting it (both after a
    recent sign-in, both confirmed by typing the slug)."""
    visit = Visit(slug)
    visit.require(Permission.ORG_READ)
    form = NameForm(data={"name": visit.org.name} if request.method == "GET" else None)
    transfer = _transfer_form(visit)
    delete = DeleteOrgForm(prefix="delete")
    action = request.form.get("action") if request.method == "POST" else None
    if action == "rename" and form.validate_on_submit():
        try:
            orgs.update_org(visit.actor, visit.org, name=form.name.data)
        except GatehouseError as refused:
            refuse_into(form, refused, "name")
        else:
            flash("Saved.")
            return redirect(url_for("console.settings_page", slug=slug), code=303)
    elif action == "transfer" and transfer.validate_on_submit():
        _recently_signed_in(visit)
        try:
            orgs.transfer_ownership(
                visit.actor,
                visit.org,
                to_user_id=transfer.to_user_id.data,
                confirm=transfer.confirm.data,
                from_user_id=visit.membership.user_id,
            )
        except GatehouseError as refused:
            refuse_into(transfer, refused, "confirm")
        else:
            flash("Ownership handed over; you are an admin now.")
            return redirect(url_for("console.settings_page", slug=slug), code=303)
    elif action == "delete" and delete.validate_on_submit():
        _recently_signed_in(visit)
        if delete.confirm.data != visit.org.slug:
            delete.confirm.errors = [f"Type {visit.org.slug} to delete the organization"]
        else:
            try:
                orgs.delete_org(visit.actor, visit.org)
            except GatehouseError as refused:
                refuse_into(delete, refused, "confirm")
            else:
                return redirect("/", code=303)
    failed = bool(form.errors or transfer.errors or delete.errors) and request.method == "POST"
    return _page(
        "console/settings.html",
        visit,
        400 if failed else 200,
        form=form,
        transfer=transfer,
        delete=delete,
    )
