"""Invitations: by email (one-time, role pre-assigned) and by shareable link (member role).

Tokens are shown once, in the creating response and the email, and stored as digests.
Accepting proves only possession of the token: it creates the membership, never a session.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from idp.actors import Actor, anonymous_actor
from idp.audit.services import record_org_event
from idp.config import current_settings
from idp.crypto import digests_match, new_token, token_digest
from idp.db import db, utcnow
from idp.errors import BadRequest, Conflict, Forbidden, Gone, NotFound
from idp.mail import Mail, queue_mail
from idp.orgs.models import (
    Invitation,
    InvitationKind,
    InvitationStatus,
    Membership,
    MembershipSource,
    Organization,
)
from idp.orgs.role_book import hold_role, org_roles
from idp.orgs.roles import BUILTIN_ROLES, Permission, Role, RoleDef
from idp.orgs.services import (
    check_permission,
    check_role_authority,
    enforce_invitation_policy,
    lock_org,
)
from idp.orgs.teams import get_team
from idp.pagination import Page, paginate
from idp.people import services as people
from idp.policies.chain import org_policy
from idp.policies.enforcement import Action, Attempt, enforce
from idp.resources import services as resources
from idp.resources.models import Resource, ResourceType
from idp.users.models import User, normalize_email
from idp.users.services import validate_email

TOKEN_PREFIX = "ghi"  # noqa: S105 - a public prefix for secret scanners
MAX_TTL = timedelta(days=90)
MIN_TTL = timedelta(minutes=5)
# Whose word an invitation sent before inviters' roles were kept is taken on: an admin's, the
# lowest role that may invite by default (an org asking more has such invitations resent).
UNRECORDED_INVITER = Role.ADMIN


def accept_url(token: str) -> str:
    return f"{current_settings().issuer}/invitations/accept?token={quote(token)}"


def current_status(invitation: Invitation, now: datetime | None = None) -> InvitationStatus:
    """The status as of now: a pending invitation past its expiry reads as expired."""
    return invitation.status_at(now or utcnow())


def _ttl(ttl: timedelta | None) -> timedelta:
    if ttl is None:
        return timedelta(days=current_settings().invitation_ttl_days)
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise BadRequest("invalid_expiry", "An invitation lasts from 5 minutes to 90 days")
    return ttl


def _audit(actor: Actor, org: Organization, action: str, inv: Invitation, **change: Any) -> None:
    record_org_event(actor, org, action, "invitation", inv.id, **change)


def _enforce_invite(org: Organization, email: str, role: RoleDef | None) -> None:
    """The org's policy on who may invite whom (domains, external invites, inviter's role)."""
    enforce_invitation_policy(org, Attempt(Action.INVITE, email=email, role=role))


def _invitation_mail(org: Organization, invitation: Invitation, token: str) -> Mail:
    """The invitation's mail; its link alone carries a fresh proof secret (see
    ``proves_address``), stored as a digest and shown nowhere else."""
    proof = secrets.token_urlsafe(32)
    invitation.proof_digest = token_digest(proof)
    return Mail(
        to=invitation.email or "",
        subject=f"You are invited to join {org.name}",
        body=(
            f"You have been invited to join {org.name} as {invitation.role}.\n\n"
            f"Accept or decline here (the link works once, until "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n{accept_url(token)}&proof={proof}\n\n"
            "If you did not expect this, ignore this message.\n"
        ),
    )


def get_invitation(org_id: str, invitation_id: str) -> Invitation:
    invitation = db.session.scalar(
        select(Invitation).where(Invitation.org_id == org_id, Invitation.id == invitation_id)
    )
    if invitation is None:
        raise NotFound("invitation_not_found", "No such invitation in this organization")
    return invitation


def list_invitations(
    org_id: str,
    *,
    status: InvitationStatus | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Invitation]:
    query = select(Invitation).where(Invitation.org_id == org_id)
    now = utcnow()
    if status is InvitationStatus.PENDING:
        query = query.where(
            Invitation.status == InvitationStatus.PENDING, Invitation.expires_at > now
        )
    elif status is InvitationStatus.EXPIRED:
        query = query.where(
            (Invitation.status == InvitationStatus.EXPIRED)
            | ((Invitation.status == InvitationStatus.PENDING) & (Invitation.expires_at <= now))
        )
    elif status is not None:
        query = query.where(Invitation.status == status)
    return paginate(query, Invitation.id, cursor=cursor, limit=limit, descending=True)


def _issue(actor: Actor, org: Organization, invitation: Invitation, ttl: timedelta | None) -> str:
    """Store a new invitation with a fresh token and expiry; returns the token."""
    token = new_token(TOKEN_PREFIX)
    invitation.org_id = org.id
    invitation.token_digest = token_digest(token)
    invitation.expires_at = utcnow() + _ttl(ttl)
    invitation.invited_by = actor.label
    invitation.inviter_role = actor.role.key if actor.role else None
    db.session.add(invitation)
    db.session.flush()
    _audit(actor, org, "invitation.created", invitation, after=invitation.snapshot())
    return token


def invite_by_email(
    actor: Actor,
    org: Organization,
    *,
    email: str,
    role: str = Role.MEMBER,
    team_ids: list[str] | None = None,
    ttl: timedelta | None = None,
    resource: dict[str, str] | None = None,
    resource_role: str | None = None,
) -> tuple[Invitation, str]:
    """Invite one person by email; returns the invitation and its token (shown once).

    ``resource`` (``{"type", "id"}``) and ``resource_role`` make its target a tenant or
    project of the org: accepting gives that role there. A member may be invited to any
    resource; someone outside the org only to a type that allows it, and they join as a
    guest, holding nothing org-wide.
    """
    check_permission(actor, Permission.MEMBERS_INVITE)
    email = validate_email(email)
    member = people.find_member_by_email(org.id, email)
    target = held = None
    if resource is not None:
        check_permission(actor, Permission.RESOURCES_WRITE)
        target = resources.get_resource(org, resource.get("type", ""), resource.get("id", ""))
        held = resources.resource_role(target, resource_role or "")
        if member is None and not db.session.get(ResourceType, target.type_id).invite_outsiders:
            raise Conflict(
                "invitation_needs_member",
                "Invitations to this kind of resource go to the organization's members only",
            )
        role = Role.GUEST.value
    elif resource_role is not None:
        raise BadRequest("resource_required", "A resource role needs its resource")
    hold_role(org_roles(org), role)  # a role this org has, not deleted meanwhile
    check_role_authority(actor, org, None, role)
    _enforce_invite(org, email, actor.role)
    team_ids = list(dict.fromkeys(team_ids or []))
    for team_id in team_ids:
        get_team(org.id, team_id)
    if member is not None and target is None:
        raise Conflict("already_member", "That person is already a member of this organization")
    pending = people.pending_invitation(org.id, email)
    if pending is not None:
        raise Conflict(
            "invitation_pending",
            "That person already has a pending invitation: resend it instead",
            invitation_id=pending.id,
        )
    invitation = Invitation(
        kind=InvitationKind.EMAIL,
        email=normalize_email(email),
        role=role,
        team_ids=team_ids,
        resource_id=target.id if target else None,
        resource_role_id=held.id if held else None,
    )
    token = _issue(actor, org, invitation, ttl)
    queue_mail(db.session, _invitation_mail(org, invitation, token))
    return invitation, token


def create_invite_link(
    actor: Actor, org: Organization, *, ttl: timedelta | None = None, max_uses: int | None = None
) -> tuple[Invitation, str]:
    """A shareable link that makes whoever accepts it a member, until it expires or runs out."""
    check_permission(actor, Permission.MEMBERS_INVITE)
    if max_uses is not None and (isinstance(max_uses, bool) or not 1 <= max_uses <= 100_000):
        raise BadRequest("invalid_max_uses", "max_uses must be from 1 to 100000")
    policy = org_policy(org)
    seconds = None if ttl is None else int(ttl.total_seconds())
    enforce(policy, Attempt(Action.INVITE_LINK, role=actor.role, ttl_seconds=seconds))
    limit = policy.invite_link_max_age
    if ttl is None and limit is not None and _ttl(None).total_seconds() > limit:
        ttl = timedelta(seconds=limit)  # the default lifetime, shortened to what the org allows
    invitation = Invitation(
        kind=InvitationKind.LINK, role=Role.MEMBER, team_ids=[], max_uses=max_uses
    )
    return invitation, _issue(actor, org, invitation, ttl)


def resend_invitation(
    actor: Actor, org: Organization, invitation_id: str, *, ttl: timedelta | None = None
) -> tuple[Invitation, str]:
    """A new token and expiry for an email invitation; the old token stops working."""
    check_permission(actor, Permission.MEMBERS_INVITE)
    invitation = get_invitation(org.id, invitation_id)
    check_role_authority(actor, org, None, invitation.role)
    if invitation.kind is not InvitationKind.EMAIL:
        raise Conflict("not_resendable", "Only email invitations can be resent")
    _enforce_invite(org, invitation.email or "", actor.role)
    if current_status(invitation) not in (InvitationStatus.PENDING, InvitationStatus.EXPIRED):
        raise Conflict("invitation_not_pending", f"This invitation is {invitation.status.value}")
    before = invitation.snapshot()
    token = new_token(TOKEN_PREFIX)
    invitation.token_digest = token_digest(token)
    invitation.status = InvitationStatus.PENDING
    invitation.expires_at = utcnow() + _ttl(ttl)
    # The one who sent it again now vouches for it.
    invitation.inviter_role = actor.role.key if actor.role else None
    db.session.flush()
    _audit(
        actor,
        org,
        "invitation.resent",
        invitation,
        before=before,
        after=invitation.snapshot(),
    )
    queue_mail(db.session, _invitation_mail(org, invitation, token))
    return invitation, token


def revoke_invitation(actor: Actor, org: Organization, invitation_id: str) -> Invitation:
    check_permission(actor, Permission.MEMBERS_INVITE)
    invitation = get_invitation(org.id, invitation_id)
    check_role_authority(actor, org, None, invitation.role)
    if current_status(invitation) is not InvitationStatus.PENDING:
        raise Conflict(
            "invitation_not_pending", f"This invitation is {current_status(invitation).value}"
        )
    before = invitation.snapshot()
    invitation.status = InvitationStatus.REVOKED
    db.session.flush()
    _audit(
        actor,
        org,
        "invitation.revoked",
        invitation,
        before=before,
        after=invitation.snapshot(),
    )
    return invitation


def _find_by_token(token: str) -> Invitation:
    invitation = db.session.scalar(
        select(Invitation)
        .where(Invitation.token_digest == token_digest(token or ""))
        .execution_options(populate_existing=True)
    )
    if invitation is None:
        raise NotFound("invitation_not_found", "This invitation link is not valid")
    return invitation


def _live_org(invitation: Invitation) -> Organization:
    org = db.session.get(Organization, invitation.org_id)
    if org is None or org.deleted_at is not None:
        raise NotFound("invitation_not_found", "This invitation link is not valid")
    return org


def _refuse_unless_pending(invitation: Invitation) -> None:
    status = current_status(invitation)
    if status is InvitationStatus.EXPIRED:
        raise Gone("invitation_expired", "This invitation has expired; ask for a new one")
    if status is not InvitationStatus.PENDING:
        raise Gone("invitation_not_pending", f"This invitation is {status.value}")


def _acceptance(org: Organization, invitation: Invitation, email: str) -> Attempt:
    """What accepting asks of the org's policy as it is now, on the word of whoever sent the
    invitation or made the link: an email invitation is checked as if sent again; a link, by
    its own rules (allowed, its age) and whether its maker may invite the one who joins."""
    key = invitation.inviter_role or UNRECORDED_INVITER
    role = BUILTIN_ROLES.get(key) or org_roles(org).find(key)  # a role since deleted: none
    if invitation.kind is InvitationKind.EMAIL:
        return Attempt(Action.INVITE, email=email, role=role)
    return Attempt(
        Action.LINK_ACCEPT,
        now=utcnow(),
        email=email,
        role=role,
        link_created_at=invitation.created_at,
    )


def describe_invitation(token: str) -> tuple[Invitation, Organization]:
    """A pending invitation and its org, for the page that asks to accept (changes nothing)."""
    invitation = _find_by_token(token)
    org = _live_org(invitation)
    _refuse_unless_pending(invitation)
    return invitation, org


def proves_address(invitation: Invitation, proof: str | None) -> bool:
    """Whether ``proof`` is the secret only the invitation's mail carried: opening the
    mail's link proves the address, where the token alone (which the inviter saw) does not."""
    return bool(proof and invitation.proof_digest and digests_match(proof, invitation.proof_digest))


def _refuse_if_no_longer_member(org: Organization, invitation: Invitation) -> None:
    """An invitation to a resource for members only (a tenant) is taken up by a member only:
    one removed from the org since it was sent cannot come back through it."""
    if invitation.resource_id is None or invitation.email is None:
        return
    target = db.session.get(Resource, invitation.resource_id)
    kind = db.session.get(ResourceType, target.type_id) if target else None
    outsiders_refused = kind is not None and not kind.invite_outsiders
    if outsiders_refused and people.find_member_by_email(org.id, invitation.email) is None:
        raise Conflict(
            "invitation_needs_member",
            "This invitation is for members of the organization, which you are not now",
        )


def accept_invitation(
    token: str,
    *,
    email: str | None = None,
    name: str | None = None,
    actor: Actor | None = None,
    proof: str | None = None,
    person: User | None = None,
) -> Membership:
    """Join the org the token invites to, as the invited address (or, for a link, ``email``
    or the signed-in ``person``); who that is, ``idp.people`` decides.

    An email invitation opened from its mail (``proof``), or by a signed-in person who proved
    that address, joins the address's workspace identity; the token alone is the org's word,
    so it joins (or creates) the org's own person for the address. A link joins the signed-in
    workspace person, or through the API a person of the org's own for ``email``.
    """
    org = _live_org(_find_by_token(token))
    lock_org(org.id)
    invitation = _find_by_token(token)  # again, under the lock: concurrent accepts see the winner
    _refuse_unless_pending(invitation)
    _refuse_if_no_longer_member(org, invitation)
    name = people.validate_person_name(name)
    vouched = people.Proof.ORG
    if invitation.kind is InvitationKind.EMAIL:
        if email is not None and normalize_email(email) != invitation.email:
            raise Forbidden("email_mismatch", "This invitation was sent to another address")
        email = invitation.email
        proven_person = (
            person is not None
            and person.email_verified
            and person.email_normalized == invitation.email
        )
        if proves_address(invitation, proof) or proven_person:
            vouched = people.Proof.ADDRESS
        person = None  # the address decides who joins, not the browser
    elif person is not None:
        if not people.is_workspace_person(person):
            raise Forbidden(
                "email_proof_required", "Sign in with your email address first, then use the link"
            )
        email, vouched = person.email, people.Proof.ADDRESS
    elif not email:
        raise BadRequest("email_required", "Say which email joins through this link", field="email")
    else:
        email = validate_email(email)
    enforce_invitation_policy(org, _acceptance(org, invitation, email or ""))
    joiner = replace(actor or anonymous_actor(), label=email or "")
    if invitation.kind is InvitationKind.EMAIL:
        claim = people.Claim(email, people.address_proof(org, email, vouched), name)
        if claim.proof is people.Proof.ADDRESS:
            person = people.prove_address(
                lambda other: replace(joiner, org_id=other.id), org.workspace_id, email or ""
            )
    else:  # whoever holds a link names any address: never the org's proof of it
        claim = people.Claim(email, vouched, name)
    membership, created = people.admit(
        joiner,
        org,
        claim,
        role=invitation.role,
        source=MembershipSource.INVITE,
        person=person,
        invitation=invitation,
    )
    if not created:
        if invitation.kind is InvitationKind.LINK:
            raise Conflict("already_member", "You are already a member of this organization")
        people.take_up_invitation(joiner, org, invitation, membership)  # a member already
    return membership


def reject_invitation(token: str, *, actor: Actor | None = None) -> Invitation:
    invitation = _find_by_token(token)
    org = _live_org(invitation)
    if invitation.kind is not InvitationKind.EMAIL:
        raise Conflict("not_rejectable", "A shared link cannot be declined; just do not use it")
    _refuse_unless_pending(invitation)
    before = invitation.snapshot()
    invitation.status = InvitationStatus.REJECTED
    db.session.flush()
    _audit(
        actor or anonymous_actor(),
        org,
        "invitation.rejected",
        invitation,
        before=before,
        after=invitation.snapshot(),
    )
    return invitation


def expire_invitations(actor: Actor, now: datetime | None = None) -> int:
    """Mark pending invitations past their expiry as expired, one audit event each."""
    now = now or utcnow()
    stale = db.session.scalars(
        select(Invitation).where(
            Invitation.status == InvitationStatus.PENDING, Invitation.expires_at <= now
        )
    ).all()
    for invitation in stale:
        org = db.session.get(Organization, invitation.org_id)
        before = invitation.snapshot()
        invitation.status = InvitationStatus.EXPIRED
        _audit(
            actor,
            org,
            "invitation.expired",
            invitation,
            before=before,
            after=invitation.snapshot(),
        )
    db.session.flush()
    return len(stale)
