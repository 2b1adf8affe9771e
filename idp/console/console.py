"""The org console: an org's owners and admins (and what members may see) run their org,
signed in with Gatehouse's own sign-in, one person switching between their orgs.

Each page decides what to show with the same decision the services enforce: a page hides
what the role cannot do, and the service refuses it anyway.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, flash, g, redirect, request, url_for

from idp.actors import Actor, ActorKind
from idp.console.forms import ConfirmForm, InviteForm, RoleForm, check_button
from idp.console.pages import bp, flash_refusal, refuse_into, render
from idp.db import db, declare_org
from idp.errors import BadRequest, GatehouseError, NotFound
from idp.login.cookies import session_token
from idp.orgs import invitations
from idp.orgs import services as orgs
from idp.orgs.models import InvitationStatus, Membership, MembershipStatus, Organization
from idp.orgs.role_book import org_roles
from idp.orgs.roles import Permission, RoleDef
from idp.people.signin import admission, reachable_memberships
from idp.policies.chain import org_policy
from idp.resources import services as resources
from idp.sessions.models import Session
from idp.sessions.services import find_live_session, move_session, touch_session

MEMBERS_PER_PAGE = 50


class SignInFirst(Exception):
    """Nobody is signed in (or this sign-in does not admit the org): to the sign-in page."""

    def __init__(self, org_slug: str | None = None) -> None:
        super().__init__("sign in first")
        self.org_slug = org_slug


@bp.errorhandler(SignInFirst)
def sign_in_first(exc: SignInFirst) -> Response:
    query = {"next": request.full_path.rstrip("?")}
    if exc.org_slug:
        query["org"] = exc.org_slug
    return redirect("/login?" + urlencode(query), code=303)


class NoAccess(Exception):
    """The person's role here does not include the page."""

    def __init__(self, visit: Visit) -> None:
        super().__init__("no access")
        self.visit = visit


@bp.errorhandler(NoAccess)
def no_access(exc: NoAccess) -> Response:
    db.session.rollback()
    return render("console/no_access.html", 403, visit=exc.visit, org=exc.visit.org)


class Visit:
    """The signed-in person in the org the URL names: their membership, role and actor. The
    session moves to that org when the sign-in admits it; one of their orgs that does not
    admit it asks for a new sign-in there; an org they are not in is not found."""

    def __init__(self, slug: str) -> None:
        token = session_token()
        session = find_live_session(token) if token else None
        if session is None:
            raise SignInFirst()
        self.session: Session = session
        self.orgs = reachable_memberships(session)
        found = next(((o, m) for o, m in self.orgs if o.slug == slug), None)
        if found is None:
            raise NotFound("org_not_found", "No such organization")
        self.org: Organization = found[0]
        self.membership: Membership = found[1]
        if self.org.id != session.org_id:
            if admission(session, self.org.id) is not None:
                raise SignInFirst(self.org.slug)
            move_session(session, self.org)
        elif admission(session, self.org.id) is not None:
            raise SignInFirst(self.org.slug)
        touch_session(session)
        # Who the person is and their orgs were found workspace-wide (the console's start);
        # the page itself sees the URL's org alone.
        declare_org(self.org.id)
        self.book = org_roles(self.org)
        self.role: RoleDef | None = self.book.find(self.membership.role)
        self.actor = Actor(
            ActorKind.USER,
            self.membership.user_id,
            f"user:{session.user.email}",
            role=self.role,
            user_id=self.membership.user_id,
            org_id=self.org.id,
            request_id=g.get("request_id"),
            workspace_id=self.org.workspace_id,
        )

    def can(self, permission: Permission) -> bool:
        return self.actor.can(permission).allowed

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise NoAccess(self)

    def grantable(self) -> list[RoleDef]:
        """The roles this person may hand out here (none above their own)."""
        mine = self.role.permissions if self.role else frozenset()
        return [
            r
            for r in self.book.ordered()
            if r.permissions <= mine
            and (r.key != "owner" or self.can(Permission.OWNERS_MANAGE))
            and r.key != "guest"
        ]


@bp.get("/console")
def console_home() -> Response:
    token = session_token()
    session = find_live_session(token) if token else None
    if session is None or session.org_id is None:
        raise SignInFirst()
    org = db.session.get(Organization, session.org_id)
    return redirect(url_for("console.members_page", slug=org.slug), code=303)


def _members_view(visit: Visit, invite: InviteForm | None = None, status: int = 200) -> Response:
    visit.require(Permission.MEMBERS_READ)
    tab = request.args.get("tab", "members")
    q = (request.args.get("q") or "").strip()[:200]
    role = request.args.get("role") or ""
    roles = [role] if role and visit.book.find(role) else []
    page = orgs.list_members(
        visit.org.id,
        roles=roles,
        q=q or None,
        cursor=request.args.get("cursor"),
        limit=MEMBERS_PER_PAGE,
    )
    counts = orgs.count_members_by_role(visit.org.id)
    cap = min(visit.org.member_cap, org_policy(visit.org).member_cap)
    seats = orgs.count_active_members(visit.org.id)
    pending = (
        invitations.list_invitations(visit.org.id, status=InvitationStatus.PENDING, limit=100).items
        if visit.can(Permission.MEMBERS_INVITE)
        else []
    )
    invite = invite or _invite_form(visit)
    return render(
        "console/members.html",
        status,
        visit=visit,
        org=visit.org,
        tab=tab,
        q=q,
        role=role,
        members=page.items,
        next_cursor=page.next_cursor,
        counts=[(r, counts.get(r.key, 0)) for r in visit.book.ordered() if counts.get(r.key)],
        cap=cap,
        seats=seats,
        at_cap=seats >= cap,
        pending=pending,
        invite=invite,
        role_choices=_role_form(visit).role.choices,
        # One token serves every form of the page (Flask-WTF's is per session), rendered once.
        csrf_input=ConfirmForm().csrf_token(),
        members_url=url_for("console.members_page", slug=visit.org.slug),
        Permission=Permission,
        MembershipStatus=MembershipStatus,
    )


RESOURCE_TARGETS = 200  # resources offered as an invitation's target, first created first


def _invite_form(visit: Visit, **data: Any) -> InviteForm:
    """The invite form: to the org with one of its roles, or (when the org has tenants or
    projects and the person may give roles there) to one of them with a role of its type."""
    form = InviteForm(**data)
    form.target.choices = [("org", f"{visit.org.name} (the organization)")]
    form.role.choices = [(r.key, r.name) for r in visit.grantable()]
    if visit.can(Permission.RESOURCES_WRITE):
        found = resources.list_resources(visit.org, limit=RESOURCE_TARGETS).items
        kinds = {k.id: k for k in resources.list_resource_types(visit.org.workspace_id)}
        form.target.choices += [
            (
                f"{kinds[r.type_id].key}:{r.external_id}",
                f"{kinds[r.type_id].name}: {r.name or r.external_id}",
            )
            for r in found
            if r.type_id in kinds
        ]
        form.role.choices += [
            (f"{kind.key}:{role.key}", f"{role.name} (on a {kind.name.lower()})")
            for kind in kinds.values()
            for role in resources.type_roles(kind.id)
        ]
    if not form.role.data:
        form.role.data = "member"
    return form


def _invitation_target(form: InviteForm) -> dict[str, Any]:
    """What to pass ``invite_by_email``: an org role, or a resource and a role of its type."""
    if form.target.data == "org":
        if ":" in form.role.data:
            raise BadRequest("role_for_resource", "Choose a role of the organization", field="role")
        return {"role": form.role.data}
    type_key, _, external_id = form.target.data.partition(":")
    role_type, _, role_key = form.role.data.partition(":")
    if role_type != type_key:
        raise BadRequest(
            "role_for_resource", "Choose a role of that kind of resource", field="role"
        )
    return {"resource": {"type": type_key, "id": external_id}, "resource_role": role_key}


def _role_form(visit: Visit) -> RoleForm:
    form = RoleForm()
    form.role.choices = [(r.key, r.name) for r in visit.grantable()]
    return form


@bp.get("/console/orgs/<slug>/members")
def members_page(slug: str) -> Response:
    return _members_view(Visit(slug))


@bp.post("/console/orgs/<slug>/invitations")
def invite_member(slug: str) -> Response:
    visit = Visit(slug)
    form = _invite_form(visit)
    if form.validate_on_submit():
        try:
            invitations.invite_by_email(
                visit.actor, visit.org, email=form.email.data, **_invitation_target(form)
            )
        except GatehouseError as refused:
            refuse_into(form, refused, "email")
        else:
            flash(f"Invitation sent to {form.email.data}.")
            return redirect(url_for("console.members_page", slug=slug, tab="invitations"), code=303)
    return _members_view(visit, form, 400)


def _member_action(slug: str, user_id: str, act: Any, done: str) -> Response:
    visit = Visit(slug)
    check_button()
    try:
        act(visit)
    except GatehouseError as refused:
        flash_refusal(refused)
        return redirect(url_for("console.members_page", slug=slug), code=303)
    flash(done)
    return redirect(url_for("console.members_page", slug=slug), code=303)


@bp.post("/console/orgs/<slug>/members/<user_id>/role")
def change_member_role(slug: str, user_id: str) -> Response:
    visit = Visit(slug)
    form = _role_form(visit)
    if not form.validate_on_submit():
        flash("Choose one of the roles offered.")
        return redirect(url_for("console.members_page", slug=slug), code=303)
    try:
        orgs.change_role(visit.actor, visit.org, user_id, form.role.data)
    except GatehouseError as refused:
        flash_refusal(refused)
    else:
        flash("Role changed.")
    return redirect(url_for("console.members_page", slug=slug), code=303)


@bp.post("/console/orgs/<slug>/members/<user_id>/suspend")
def suspend_member(slug: str, user_id: str) -> Response:
    return _member_action(
        slug,
        user_id,
        lambda v: orgs.set_member_status(v.actor, v.org, user_id, MembershipStatus.SUSPENDED),
        "Member suspended: their sessions have ended.",
    )


@bp.post("/console/orgs/<slug>/members/<user_id>/reactivate")
def reactivate_member(slug: str, user_id: str) -> Response:
    return _member_action(
        slug,
        user_id,
        lambda v: orgs.set_member_status(v.actor, v.org, user_id, MembershipStatus.ACTIVE),
        "Member reactivated.",
    )


@bp.post("/console/orgs/<slug>/members/<user_id>/remove")
def remove_member(slug: str, user_id: str) -> Response:
    return _member_action(
        slug, user_id, lambda v: orgs.remove_member(v.actor, v.org, user_id), "Member removed."
    )


@bp.post("/console/orgs/<slug>/invitations/<invitation_id>/revoke")
def revoke_invitation(slug: str, invitation_id: str) -> Response:
    return _member_action(
        slug,
        invitation_id,
        lambda v: invitations.revoke_invitation(v.actor, v.org, invitation_id),
        "Invitation cancelled.",
    )


@bp.post("/console/orgs/<slug>/invitations/<invitation_id>/resend")
def resend_invitation(slug: str, invitation_id: str) -> Response:
    return _member_action(
        slug,
        invitation_id,
        lambda v: invitations.resend_invitation(v.actor, v.org, invitation_id),
        "Invitation sent again.",
    )
