"""The browser's own endpoints: sign in (home-realm discovery, email links), invitations,
who am I (``/api/v1/me``), sign out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, g, jsonify, redirect, request
from sqlalchemy import select

from idp import telemetry
from idp.actors import Actor, ActorKind
from idp.apps.clients import login_uri_for_signed_in
from idp.config import current_settings
from idp.connections.domains import verified_org_for_email
from idp.connections.services import list_connections
from idp.db import db, declare_workspace_wide, finish_request
from idp.errors import Forbidden, GatehouseError, NotFound, Unauthorized
from idp.login.cookies import clear_session_cookie, session_token, set_session_cookie
from idp.login.pages import page
from idp.login.redirects import safe_return_to
from idp.mail import Mail, queue_mail, queue_work
from idp.orgs import invitations
from idp.orgs.models import InvitationKind, Membership, MembershipStatus, Organization, Workspace
from idp.orgs.services import active_memberships, get_org
from idp.people.services import invitation_signs_in, is_known_address, prove_address
from idp.people.signin import admission, reachable_memberships
from idp.ratelimit import Credential, allow_login_mail, guarded_view
from idp.sessions.models import Session
from idp.sessions.services import (
    admits_email_sign_in,
    consume_email_link,
    find_live_session,
    issue_email_link,
    move_session,
    offers_email_sign_in,
    revoke_session,
    session_violation,
    start_email_session,
    touch_session,
)
from idp.users.models import User
from idp.users.services import validate_email

bp = Blueprint("login", __name__)
# A refusal on these routes is a refused sign-in (counted and logged).
_SIGN_IN_ENDPOINTS = frozenset({"login.email_link_sign_in"})


@bp.before_request
def start_workspace_wide() -> None:
    """Row-level security: sign-in pages serve a person across their orgs (home-realm
    discovery over every org's domains, the org picker, ``/api/v1/me``'s list of orgs)."""
    declare_workspace_wide()


def current_session() -> tuple[Session, Membership]:
    """The browser's live session and its active membership of the session's org, or 401."""
    token = session_token()
    session = find_live_session(token) if token else None
    membership = None
    if session is not None and session.org_id is not None:
        membership = db.session.scalar(
            select(Membership).where(
                Membership.org_id == session.org_id,
                Membership.user_id == session.user_id,
                Membership.status == MembershipStatus.ACTIVE,
            )
        )
    if session is None or membership is None:
        raise Unauthorized("unauthenticated", "Sign in first")
    key = session_violation(session, db.session.get(Organization, session.org_id))
    if key is not None:
        raise Unauthorized("session_not_admitted", f"Sign in again: the org's {key} policy")
    touch_session(session)
    return session, membership


@bp.get("/api/v1/me")
def me() -> Response:
    """The signed-in person, their current org and role, and every org they belong to."""
    session, membership = current_session()
    user = session.user
    rows = reachable_memberships(session)  # only what this sign-in speaks for
    current = db.session.get(Organization, session.org_id)
    body: dict[str, Any] = {
        "user": {"id": user.id, "email": user.email, "name": user.name},
        "org": {"id": current.id, "slug": current.slug, "name": current.name},
        "role": membership.role,
        "session": session.as_dict(),
        "orgs": [
            {
                "id": org.id,
                "slug": org.slug,
                "name": org.name,
                "role": their.role,
                # Whether switching there needs no new sign-in (the org accepts this one).
                "signed_in": admission(session, org.id) is None,
            }
            for org, their in rows
        ],
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/logout")
def logout() -> Response:
    """End this browser's session (server-side too) and clear its cookie."""
    token = session_token()
    session = find_live_session(token) if token else None
    if session is not None:
        revoke_session(session, "logout")
    response = redirect(safe_return_to(request.form.get("next")), code=303)
    clear_session_cookie(response)
    return response


@bp.errorhandler(GatehouseError)
def error(exc: GatehouseError) -> Response:
    """JSON under ``/api/``, a page elsewhere; the stable code either way."""
    db.session.rollback()
    if request.endpoint in _SIGN_IN_ENDPOINTS:
        telemetry.sign_in_refused("email_link", exc.code, policy=exc.details.get("key"))
    message = exc.message if exc.status < 500 else "Something went wrong on our side"
    if request.path.startswith("/api/"):
        response = jsonify(error=exc.code, message=message)
        response.status_code = exc.status
    else:
        response = page(
            "Something is not right", "<p>{{ message }}</p>", exc.status, message=message
        )
    response.headers["X-Gatehouse-Error"] = exc.code
    return response


@bp.after_request
def commit(response: Response) -> Response:
    return finish_request(response, lambda: Response(status=409))


# --- signing in: home-realm discovery, email links ------------------------------------

_LOGIN_FORM = """
<form method="post" action="/login">
  <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
  <label>Work email <input type="email" name="email" required autofocus></label>
  <input type="hidden" name="next" value="{{ next }}">
  <button>Continue</button>
</form>"""
_CHOOSE = """<p>Sign in to {{ org.name }} with:</p><ul>
{% for c in connections %}<li><a href="{{ c.url }}">{{ c.name }}</a></li>{% endfor %}
</ul>"""
_NO_CONNECTION = """<p>{{ org.name }} requires signing in through its identity provider, and
none is set up yet: ask its admin.</p>"""
_SENT = """<p>If that address can sign in here, a link is on its way to it. It works once,
within 10 minutes.</p>"""
_CONFIRM = """<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<p>Sign in as {{ email }}?</p><button>Sign in</button></form>"""


def _connections_page(org: Organization, return_to: str) -> Response:
    """Straight to the org's connection, or a choice when it has several."""
    found = [c for c in list_connections(org.id) if c.enabled]
    query = urlencode({"next": return_to})
    targets = [{"name": c.name, "url": f"/sso/{c.kind.value}/{c.id}/login?{query}"} for c in found]
    if len(targets) == 1:
        return redirect(targets[0]["url"], code=303)
    return page("Choose how to sign in", _CHOOSE, org=org, connections=targets)


_SIGNED_IN = """<p id="signed-in">Signed in as {{ email }} to {{ org.name }} ({{ role }}).</p>
<nav aria-label="Your organizations"><ul>{% for o, m in orgs %}
<li><a href="/console/orgs/{{ o.slug }}/members">{{ o.name }}</a> ({{ m.role }})</li>{% endfor %}
</ul></nav>
<form method="post" action="/logout">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button>Sign out</button></form>"""


@bp.get("/")
def home() -> Response:
    """Where a sign-in without ``next`` lands: the app (``GATEHOUSE_DEFAULT_RETURN_URL``, or
    the one app's ``initiate_login_uri``), or a page saying who is signed in and their orgs;
    the sign-in page when nobody is."""
    try:
        session, membership = current_session()
    except Unauthorized:
        return redirect("/login", code=303)
    org = db.session.get(Organization, session.org_id)
    # Both set by the operator (configuration, a registered app), not by the request.
    target = current_settings().default_return_url or login_uri_for_signed_in(org.workspace_id)
    if target:
        return redirect(target, code=303)
    return page(
        "Signed in",
        _SIGNED_IN,
        email=session.user.email,
        org=org,
        role=membership.role,
        orgs=reachable_memberships(session),  # the org chooser: switching needs no new sign-in
    )


@bp.get("/login")
def login_page() -> Response:
    """Ask for the email (home-realm discovery), or go to ``?org=SLUG``'s connection."""
    return_to = safe_return_to(request.args.get("next"))
    slug = request.args.get("org")
    if slug:
        org = get_org(_workspace_id(), slug)
        if any(c.enabled for c in list_connections(org.id)):
            return _connections_page(org, return_to)
        if not offers_email_sign_in(org):  # no email link would be let in
            return page("Sign in", _NO_CONNECTION, 403, org=org)
    return page("Sign in", _LOGIN_FORM, next=return_to)


@bp.post("/login")
def login_submit() -> Response:
    """Route by the email's verified domain to its org's IdP; else send a one-time link."""
    return_to = safe_return_to(request.form.get("next"))
    try:
        email = validate_email(request.form.get("email", ""))
    except GatehouseError:
        return page("Sign in", _LOGIN_FORM, status=400, next=return_to)
    workspace_id = _workspace_id()
    org_id = verified_org_for_email(workspace_id, email)
    if org_id is not None:
        org = db.session.get(Organization, org_id)
        if any(c.enabled for c in list_connections(org.id)):
            return _connections_page(org, return_to)
    # The same answer, in the same time, either way: the mail limits (per address, per IP)
    # count every address; whether it is known, and the link and mail that follow if it is,
    # are decided after the response. Over a limit, nothing is queued.
    if allow_login_mail(email):
        queue_work(db.session(), partial(_mail_sign_in_link, workspace_id, email, return_to))
    return page("Check your email", _SENT)


def _mail_sign_in_link(workspace_id: str, email: str, return_to: str) -> None:
    """Off the request's path: a one-time link to ``email`` if it can sign in here."""
    if not is_known_address(workspace_id, email):
        return
    _link, token = issue_email_link(email, return_to=return_to)
    link = f"{current_settings().issuer}/login/email?token={quote(token)}"
    queue_mail(
        db.session(),
        Mail(
            to=email,
            subject="Your sign-in link",
            body=f"Sign in here (once, within 10 minutes):\n{link}\n\n"
            "If you did not ask for this, ignore this message.\n",
        ),
    )


@bp.get("/login/email")
def email_link_page() -> Response:
    """Confirm before signing in: mail scanners that fetch links must not use them up."""
    return page("Sign in", _CONFIRM, email="your account")


@bp.post("/login/email")
@guarded_view(Credential.EMAIL_LINK, "token", "invalid_link")
def email_link_sign_in() -> Response:
    """Use the link once and start a session (method ``email_link``)."""
    link = consume_email_link(request.args.get("token", ""))
    if link is None:
        raise Unauthorized("invalid_link", "This sign-in link is unknown, used or expired")
    workspace_id = _workspace_id()
    if link.email:  # the address is proven: its workspace identity, with what orgs made for it
        user = prove_address(_person_actor(link.email), workspace_id, link.email)
    else:  # a link from before links named addresses
        user = db.session.get(User, link.user_id)
    if link.org_id is not None:
        org = db.session.get(Organization, link.org_id)
    else:
        orgs = [org for org, _membership in active_memberships(user.id)]
        if not orgs:
            raise Forbidden("no_membership", "This account belongs to no organization")
        # The first org whose policy lets an email link in; else the first, which refuses.
        org = next((o for o in orgs if admits_email_sign_in(o, user.email)), orgs[0])
    lifetime = timedelta(hours=current_settings().session_hours)
    _session, token = start_email_session(
        user, org, lifetime=lifetime, request_id=g.get("request_id")
    )
    response = redirect(safe_return_to(link.return_to), code=303)
    set_session_cookie(response, token, lifetime)
    return response


def _person_actor(email: str) -> Callable[[Organization], Actor]:
    """The person who proved ``email``, as the actor of what that changes in each org."""
    return lambda org: Actor(
        ActorKind.USER,
        None,
        email,
        org_id=org.id,
        request_id=g.get("request_id"),
        workspace_id=org.workspace_id,
    )


def _workspace_id() -> str:
    found = db.session.scalar(
        select(Workspace.id).where(Workspace.slug == current_settings().workspace)
    )
    if found is None:
        raise NotFound("not_found", "This deployment has no workspace yet")
    return found


# --- invitations ----------------------------------------------------------------------

_INVITATION = """<p>You are invited to join <strong>{{ org.name }}</strong>
as {{ invitation.role }}.</p>
<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="token" value="{{ token }}">
<input type="hidden" name="proof" value="{{ proof }}">
<button name="answer" value="accept">Accept</button>
<button name="answer" value="reject">Decline</button></form>"""
_SIGN_IN_FIRST = """<p>Sign in first, then open the invitation link again:
<a href="{{ login }}">sign in</a>.</p>"""


@bp.get("/invitations/accept")
@guarded_view(Credential.INVITATION, "token", "invitation_not_found")
def invitation_page() -> Response:
    """Show what the invitation is for; nothing changes until the person answers."""
    token = request.args.get("token", "")
    invitation, org = invitations.describe_invitation(token)
    proof = request.args.get("proof", "")[:100]
    return page("Invitation", _INVITATION, org=org, invitation=invitation, token=token, proof=proof)


@bp.post("/invitations/accept")
@guarded_view(Credential.INVITATION, "token", "invitation_not_found")
def invitation_answer() -> Response:
    """Accept (and be signed in: the emailed token proved the address) or decline.

    A shareable link proves no address, so it joins the signed-in person only.
    """
    token = request.form.get("token", "")
    if request.form.get("answer") == "reject":
        invitations.reject_invitation(token)
        return page("Invitation declined", "<p>You declined the invitation.</p>")
    invitation, _org = invitations.describe_invitation(token)
    browser = session_token()
    session = find_live_session(browser) if browser else None
    if invitation.kind is InvitationKind.LINK:
        if session is None or not session.user.email:
            login = "/login?" + urlencode({"next": f"/invitations/accept?token={token}"})
            return page("Sign in first", _SIGN_IN_FIRST, status=401, login=login)
        membership = invitations.accept_invitation(token, person=session.user)
        if admission(session, membership.org_id) is not None:
            # A member now, but this sign-in is not one the org accepts: its own IdP next.
            org = db.session.get(Organization, membership.org_id)
            return redirect("/login?" + urlencode({"org": org.slug}), code=303)
        move_session(session, db.session.get(Organization, membership.org_id))
        return redirect("/", code=303)
    proof = request.form.get("proof") or None
    proven = invitations.proves_address(invitation, proof)
    membership = invitations.accept_invitation(
        token, proof=proof, person=session.user if session is not None else None
    )
    org = db.session.get(Organization, membership.org_id)
    user = membership.user
    if not invitation_signs_in(membership, address_proven=proven) or not admits_email_sign_in(
        org, user.email
    ):
        # A member now; the sign-in is the org's IdP's (or the address's, by a link).
        return redirect("/login?" + urlencode({"org": org.slug}), code=303)
    lifetime = timedelta(hours=current_settings().session_hours)
    _session, cookie = start_email_session(
        user, org, lifetime=lifetime, request_id=g.get("request_id")
    )
    response = redirect("/", code=303)
    set_session_cookie(response, cookie, lifetime)
    return response
