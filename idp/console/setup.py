"""The setup portal: the customer's IT admin opens a setup link (no account) and connects the
org's IdP, directory and domains, one IdP's guide at a time.

The link's token is exchanged at once for a cookie scoped to ``/setup``, so it leaves the
address bar (and any referrer); every page reads the link again, so a revoked or expired
link stops working on the next click.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Response, abort, flash, g, redirect, request, url_for

from idp.actors import Actor
from idp.config import current_settings
from idp.connections import domains as domain_service
from idp.connections import services as connections
from idp.connections.models import Connection, ConnectionKind
from idp.console.forms import (
    AttributeMapForm,
    ChooseIdpForm,
    ConfirmForm,
    DomainForm,
    OidcIdpForm,
    SamlIdpForm,
    check_button,
)
from idp.console.guides import GUIDES, Guide, render_step
from idp.console.pages import bp, refuse_into, render
from idp.credentials import services as credentials
from idp.credentials import setup_links
from idp.credentials.setup_links import Intent
from idp.db import declare_org, utcnow
from idp.errors import Conflict, Forbidden, GatehouseError
from idp.orgs.models import Organization
from idp.sso import saml, testing
from idp.sso.setup import (
    add_oidc_connection,
    add_saml_connection,
    change_connection,
    public_settings,
)

COOKIE = "gatehouse_setup"


class Portal:
    """This request's link, its org, and who acts through it."""

    def __init__(self) -> None:
        token = request.cookies.get(COOKIE, "")
        self.link, self.org = setup_links.open_setup_link(token)
        declare_org(self.org.id)  # the link's org only, for the rest of the request
        self.actor: Actor = setup_links.actor_for_setup_link(
            self.link, self.org.workspace_id, g.get("request_id")
        )

    def require(self, intent: Intent) -> None:
        if not setup_links.allows(self.link, intent):
            raise Forbidden("setup_link_scope", f"This setup link does not cover {intent.value}")


def _secure() -> bool:
    return current_settings().issuer.startswith("https://")


@bp.get("/setup/<token>")
def open_link(token: str) -> Response:
    """Check the link, keep it in a cookie for ``/setup`` only, and take it off the URL."""
    link, _ = setup_links.open_setup_link(token)
    response = redirect(url_for("console.setup_home"), code=303)
    lifetime = link.expires_at - utcnow()
    response.set_cookie(
        COOKIE,
        token,
        max_age=max(int(lifetime / timedelta(seconds=1)), 0),
        httponly=True,
        secure=_secure(),
        samesite="Lax",  # the IdP's answer to a test sign-in comes back through a redirect
        path="/setup",
    )
    return response


@bp.get("/setup")
def setup_home() -> Response:
    portal = Portal()
    listed = connections.list_connections(portal.org.id) if "sso" in portal.link.intents else []
    return render(
        "setup/home.html",
        portal=portal,
        org=portal.org,
        connections=listed,
        guide_of=guide_of,
    )


def guide_of(connection: Connection) -> Guide:
    """The guide a connection was made from (its preset, or the generic one of its kind)."""
    if connection.preset != "generic" and connection.preset in GUIDES:
        return GUIDES[connection.preset]
    return GUIDES["oidc" if connection.kind is ConnectionKind.OIDC else "saml"]


@bp.route("/setup/sso", methods=["GET", "POST"])
def choose_idp() -> Response:
    portal = Portal()
    portal.require(Intent.SSO)
    form = ChooseIdpForm()
    if form.validate_on_submit():
        guide = GUIDES[form.idp.data]
        if guide.kind is ConnectionKind.SAML:
            made = add_saml_connection(
                portal.actor, portal.org, name=guide.name, preset=guide.preset
            )
        else:
            made = add_oidc_connection(
                portal.actor, portal.org, name=guide.name, preset=guide.preset
            )
        return redirect(url_for("console.connect_idp", connection_id=made.id), code=303)
    status = 400 if form.errors else 200
    return render("setup/choose.html", status, portal=portal, org=portal.org, form=form)


def _values(connection: Connection, org: Organization) -> dict[str, str]:
    shown = public_settings(connection)
    return {
        "acs_url": shown.get("acs_url", ""),
        "entity_id": shown.get("sp_entity_id", ""),
        "metadata_url": shown.get("sp_metadata_url", ""),
        "redirect_uri": shown.get("redirect_uri", ""),
        "scim_url": credentials.scim_base_url(org),
    }


@bp.route("/setup/sso/<connection_id>", methods=["GET", "POST"])
def connect_idp(connection_id: str) -> Response:
    """The IdP's guide with the SP's values filled in, and the form for what the IdP gives
    back; errors beside the field, what was typed kept (never the secret)."""
    portal = Portal()
    portal.require(Intent.SSO)
    connection = connections.get_connection(portal.org.id, connection_id)
    guide = guide_of(connection)
    saml_kind = connection.kind is ConnectionKind.SAML
    form = SamlIdpForm() if saml_kind else OidcIdpForm()
    status = 200
    if form.is_submitted():
        if form.validate():
            try:
                change_connection(portal.actor, portal.org, connection, form.idp_values())
            except GatehouseError as refused:
                by_hand = saml_kind and bool(form.idp_entity_id.data)
                refuse_into(
                    form,
                    refused,
                    "idp_certificate" if by_hand else ("metadata_url" if saml_kind else "issuer"),
                )
            else:
                flash("Saved. Your IdP's values are in: run a test sign-in, then switch it on.")
                return redirect(
                    url_for("console.connect_idp", connection_id=connection.id), code=303
                )
        status = 400
    values = _values(connection, portal.org)
    return render(
        "setup/connection.html",
        status,
        portal=portal,
        org=portal.org,
        connection=connection,
        guide=guide,
        steps=[render_step(step, values) for step in guide.sso],
        values=values,
        form=form,
        activate=ConfirmForm(),
        needs_test=needs_test(connection),
        last_test=testing.latest_test(connection),
    )


@bp.get("/setup/sso/<connection_id>/test")
def start_test_sign_in(connection_id: str) -> Response:
    """Off to the IdP with a fresh request; its answer comes back to the trace page."""
    portal = Portal()
    portal.require(Intent.SSO)
    connection = connections.get_connection(portal.org.id, connection_id)
    _test, url = testing.start_test(
        portal.actor,
        portal.org,
        connection,
        lambda test_id: url_for(
            "console.test_result", connection_id=connection.id, test_id=test_id
        ),
    )
    return redirect(url, code=303)


def _names(raw: str | None) -> list[str]:
    return [n.strip() for n in (raw or "").split(",") if n.strip()]


@bp.route("/setup/sso/<connection_id>/tests/<test_id>", methods=["GET", "POST"])
def test_result(connection_id: str, test_id: str) -> Response:
    """The trace of a test sign-in, and where the IdP's attributes are read from (changed
    here, it takes a new test)."""
    portal = Portal()
    portal.require(Intent.SSO)
    connection = connections.get_connection(portal.org.id, connection_id)
    test = testing.get_test(connection, test_id)
    current = connection.settings.get("attribute_map") or {}
    form = AttributeMapForm(
        data={k: ", ".join(current.get(k, [])) for k in ("email", "groups")}
        if request.method == "GET"
        else None
    )
    if form.is_submitted() and form.validate():
        mapping = {k: _names(getattr(form, k).data) for k in ("email", "groups")}
        try:
            change_connection(portal.actor, portal.org, connection, {"attribute_map": mapping})
        except GatehouseError as refused:
            refuse_into(form, refused, "email")
        else:
            flash("Mapping saved. Run a new test sign-in to check it.")
            return redirect(url_for("console.connect_idp", connection_id=connection.id), code=303)
    return render(
        "setup/test.html",
        400 if form.errors else 200,
        portal=portal,
        org=portal.org,
        connection=connection,
        test=test,
        form=form,
        saml_kind=connection.kind is ConnectionKind.SAML,
    )


def needs_test(connection: Connection) -> bool:
    """A connection is switched on here only after a test sign-in passed."""
    return not testing.has_passed_test(connection)


@bp.post("/setup/sso/<connection_id>/activate")
def activate_connection(connection_id: str) -> Response:
    portal = Portal()
    portal.require(Intent.SSO)
    connection = connections.get_connection(portal.org.id, connection_id)
    check_button()
    if needs_test(connection):
        raise Conflict("test_required", "Run a test sign-in that passes before switching it on")
    connections.update_connection(portal.actor, portal.org, connection, enabled=True)
    flash(f"{connection.name} is on: people of {portal.org.name} can sign in with it.")
    return redirect(url_for("console.connect_idp", connection_id=connection.id), code=303)


@bp.get("/setup/sso/<connection_id>/metadata.xml")
def download_sp_metadata(connection_id: str) -> Response:
    portal = Portal()
    portal.require(Intent.SSO)
    connection = connections.get_connection(portal.org.id, connection_id)
    if connection.kind is not ConnectionKind.SAML:
        abort(404)
    xml = saml.sp_metadata(connection, connections.connection_secret(connection))
    response = Response(xml, content_type="application/samlmetadata+xml; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="sp-metadata.xml"'
    return response


@bp.route("/setup/scim", methods=["GET", "POST"])
def connect_directory() -> Response:
    """The SCIM base URL, a token (shown once, on the answer to the button), the IdP's steps,
    and whether the IdP's first request has arrived."""
    portal = Portal()
    portal.require(Intent.SCIM)
    form = ConfirmForm()
    token = None
    if form.validate_on_submit():
        _, token = credentials.create_scim_token(
            portal.actor, portal.org, name="Set up by the IT admin"
        )
    guide = GUIDES.get(request.args.get("idp", ""), GUIDES["okta"])
    values = {"scim_url": credentials.scim_base_url(portal.org)}
    tokens = credentials.list_scim_tokens(portal.org.id, limit=20).items
    return render(
        "setup/scim.html",
        portal=portal,
        org=portal.org,
        form=form,
        token=token,
        base_url=values["scim_url"],
        tokens=[t for t in tokens if t.revoked_at is None],
        guides=[g for g in GUIDES.values() if g.scim],
        guide=guide,
        steps=[render_step(step, values) for step in guide.scim],
    )


@bp.route("/setup/domains", methods=["GET", "POST"])
def claim_domains() -> Response:
    portal = Portal()
    portal.require(Intent.DOMAINS)
    form = DomainForm()
    status = 200
    if form.is_submitted():
        if form.validate():
            try:
                domain_service.claim_domain(portal.actor, portal.org, form.domain.data)
            except GatehouseError as refused:
                refuse_into(form, refused, "domain")
            else:
                return redirect(url_for("console.claim_domains"), code=303)
        status = 400
    return render(
        "setup/domains.html",
        status,
        portal=portal,
        org=portal.org,
        form=form,
        domains=domain_service.list_domains(portal.org.id),
        record=domain_service.verification_record,
        verify=ConfirmForm(),
    )


@bp.post("/setup/domains/<domain_id>/verify")
def verify_domain(domain_id: str) -> Response:
    portal = Portal()
    portal.require(Intent.DOMAINS)
    check_button()
    try:
        found = domain_service.verify_domain(portal.actor, portal.org, domain_id)
    except GatehouseError as refused:
        if refused.status >= 500 or refused.code == "domain_not_found":
            raise
        flash(refused.message)
    else:
        flash(f"{found.domain} is verified.")
    return redirect(url_for("console.claim_domains"), code=303)
