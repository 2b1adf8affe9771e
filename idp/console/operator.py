"""The operator pages: the SaaS team runs the workspace (its orgs, the baseline policy, the
apps signing people in, workspace keys, setup links for any org).

Operators are the owners of the team's own org (``GATEHOUSE_OPERATOR_ORG``), signed in to
it; they act with workspace authority, each change audited under their name.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, g, redirect, request, url_for

from idp.actors import Actor, ActorKind
from idp.config import current_settings
from idp.console.console import SignInFirst
from idp.console.forms import (
    ClientForm,
    ConfirmForm,
    NameForm,
    OrgCreateForm,
    PolicyForm,
    SetupLinkForm,
    check_button,
)
from idp.console.pages import bp, flash_refusal, refuse_into, render, run_policy_form
from idp.credentials import services as credentials
from idp.credentials import setup_links
from idp.db import db
from idp.errors import GatehouseError, NotFound
from idp.login.cookies import session_token
from idp.oauth import services as clients
from idp.orgs import services as orgs
from idp.orgs.models import MembershipStatus, Organization, Workspace
from idp.orgs.roles import OWNER, Role
from idp.people.signin import admission
from idp.policies import services as policies
from idp.policies.registry import KEYS
from idp.sessions.services import find_live_session, touch_session


class Operator:
    """The signed-in operator: an owner of the operator org, signed in to it."""

    def __init__(self) -> None:
        slug = current_settings().operator_org
        if not slug:
            raise NotFound("not_found", "No operator pages here")
        token = session_token()
        session = find_live_session(token) if token else None
        if session is None:
            raise SignInFirst(slug)
        home = db.session.get(Organization, session.org_id) if session.org_id else None
        if home is None or home.slug != slug or admission(session, home.id) is not None:
            raise SignInFirst(slug)
        membership = orgs.find_membership(home.id, session.user_id)
        if (
            membership is None
            or membership.status is not MembershipStatus.ACTIVE
            or membership.role != Role.OWNER
        ):
            raise NotFound("not_found", "No operator pages for you")
        touch_session(session)
        self.session, self.org = session, home
        self.workspace = db.session.get(Workspace, home.workspace_id)
        self.actor = Actor(
            ActorKind.OPERATOR,
            session.user_id,
            f"operator:{session.user.email}",
            role=OWNER,
            user_id=session.user_id,
            request_id=g.get("request_id"),
            workspace_id=home.workspace_id,
        )


def _page(template: str, operator: Operator, status: int = 200, **values: Any) -> Response:
    return render(template, status, operator=operator, confirm=ConfirmForm(), **values)


@bp.route("/console/operator", methods=["GET", "POST"])
def operator_orgs() -> Response:
    """Every org of the workspace (search by slug or name), and a new one."""
    operator = Operator()
    q = (request.args.get("q") or "").strip()[:100]
    page = orgs.list_orgs(
        operator.workspace.id, q=q or None, cursor=request.args.get("cursor"), limit=50
    )
    form = OrgCreateForm()
    form.parent.choices = [("", "None (a top-level organization)")] + [
        (o.slug, o.name) for o in page.items
    ]
    if form.is_submitted() and form.validate():
        try:
            made = orgs.create_org(
                operator.actor,
                operator.workspace,
                slug=form.slug.data,
                name=form.name.data,
                parent_slug=form.parent.data or None,
            )
        except GatehouseError as refused:
            refuse_into(form, refused, "slug" if "slug" in refused.code else "name")
        else:
            flash(f"{made.name} created.")
            return redirect(url_for("console.operator_org", slug=made.slug), code=303)
    return _page(
        "operator/orgs.html",
        operator,
        400 if form.errors else 200,
        orgs=page.items,
        next_cursor=page.next_cursor,
        q=q,
        form=form,
    )


@bp.route("/console/operator/orgs/<slug>", methods=["GET", "POST"])
def operator_org(slug: str) -> Response:
    """One org as the operator sees it, and a setup link for its IT admin."""
    operator = Operator()
    org = orgs.get_org(operator.workspace.id, slug)
    form = SetupLinkForm()
    url = None
    if form.is_submitted() and form.validate():
        try:
            _link, url = setup_links.create_setup_link(
                operator.actor,
                org,
                intents=form.intents.data,
                expires_in=int(form.expires_hours.data) * 3600,
            )
        except GatehouseError as refused:
            refuse_into(form, refused, "intents")
    return _page(
        "operator/org.html",
        operator,
        400 if form.errors else 200,
        org=org,
        form=form,
        url=url,
        links=setup_links.list_setup_links(org.id),
        counts=orgs.count_members_by_role(org.id),
    )


@bp.route("/console/operator/policy", methods=["GET", "POST"])
def operator_policy() -> Response:
    """The workspace baseline every org inherits; a change shows its dry run first."""
    operator = Operator()
    form = PolicyForm()
    form.key.choices = [(name, name) for name in KEYS]
    made, dry_run = run_policy_form(
        form,
        lambda change, dry: policies.set_workspace_policy(
            operator.actor, operator.workspace, change, merge=True, dry_run=dry
        ),
    )
    if made:
        flash(f"{form.key.data} changed for every organization.")
        return redirect(url_for("console.operator_policy"), code=303)
    return _page(
        "operator/policy.html",
        operator,
        400 if form.errors else 200,
        explained=policies.workspace_policy(operator.workspace, explain_values=True),
        form=form,
        dry_run=dry_run,
        keys=KEYS,
    )


@bp.route("/console/operator/clients", methods=["GET", "POST"])
def operator_clients() -> Response:
    """The apps that sign people in through Gatehouse (OIDC clients); a secret shown once."""
    operator = Operator()
    form = ClientForm()
    created = None
    if form.is_submitted() and form.validate():
        try:
            created = clients.create_client(
                operator.workspace.id,
                name=form.name.data,
                redirect_uris=[form.redirect_uri.data],
                is_public=bool(form.public.data),
            )
        except GatehouseError as refused:
            refuse_into(form, refused, "redirect_uri" if "redirect" in refused.code else "name")
    return _page(
        "operator/clients.html",
        operator,
        400 if form.errors else 200,
        clients=clients.list_clients(operator.workspace.id),
        form=form,
        created=created,
    )


@bp.route("/console/operator/keys", methods=["GET", "POST"])
def operator_keys() -> Response:
    """Workspace API keys (owner authority in every org); a key shown once."""
    operator = Operator()
    form = NameForm()
    token = None
    if form.is_submitted() and form.validate():
        try:
            _key, token = credentials.create_api_key(
                operator.actor, operator.workspace.id, name=form.name.data
            )
        except GatehouseError as refused:
            refuse_into(form, refused, "name")
    keys = credentials.list_api_keys(operator.workspace.id, org_id=None, limit=100).items
    return _page(
        "operator/keys.html",
        operator,
        400 if form.errors else 200,
        form=form,
        token=token,
        keys=[k for k in keys if k.revoked_at is None],
    )


@bp.post("/console/operator/keys/<key_id>/revoke")
def operator_revoke_key(key_id: str) -> Response:
    operator = Operator()
    check_button()
    try:
        credentials.revoke_api_key(operator.actor, operator.workspace.id, key_id)
    except GatehouseError as refused:
        flash_refusal(refused)
    else:
        flash("Key revoked.")
    return redirect(url_for("console.operator_keys"), code=303)
