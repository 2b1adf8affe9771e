"""Invitations: by email (one-time, role pre-assigned) and by shareable link (member role).

Tokens are shown once, in the creating response and the email, and stored as digests.
Accepting proves only possession of the token: it creates the membership, never a session.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from idp.actors import Actor, anonymous_actor
from idp.audit.services import record_org_event
from idp.config import current_settings
from idp.crypto import new_token, token_digest
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
    Team,
    TeamMember,
)
from idp.orgs.roles import Permission, Role
from idp.orgs.services import (
    check_permission,
    check_role_authority,
    enforce_invitation_policy,
    join_org,
    lock_org,
)
from idp.orgs.teams import get_team
from idp.pagination import Page, paginate
from idp.policies.chain import org_policy
from idp.policies.enforcement import Action, Attempt, enforce
from idp.users.models import normalize_email
from idp.users.services import find_user_by_email, get_or_create_user, validate_email

TOKEN_PREFIX = "ghi"  # noqa: S105 - a public prefix for secret scanners
MAX_TTL = timedelta(days=90)
MIN_TTL = timedelta(minutes=5)
# Whose word an invitation sent before inviters' roles were kept is taken on: an admin's, the
# lowest role that may invite by default (an org asking more has such invitations resent).
UNRECORDED_INVITER = Role.ADMIN


def accept_url(token: str) -> str:
    return f"{current_settings().issuer}/invitations/accept?token={quote(token)}"


def invitation_snapshot(invitation: Invitation) -> dict[str, Any]:
    return {
        "kind": invitation.kind.value,
        "email": invitation.email,
        "role": invitation.role.value,
        "status": invitation.status.value,
        "expires_at": invitation.expires_at.isoformat(),
        "max_uses": invitation.max_uses,
        "use_count": invitation.use_count,
    }


def current_status(invitation: Invitation, now: datetime | None = None) -> InvitationStatus:
    """The status as of now: a pending invitation past its expiry reads as expired."""
    if invitation.status is InvitationStatus.PENDING and invitation.expires_at <= (now or utcnow()):
        return InvitationStatus.EXPIRED
    return invitation.status


def _ttl(ttl: timedelta | None) -> timedelta:
    if ttl is None:
        return timedelta(days=current_settings().invitation_ttl_days)
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise BadRequest("invalid_expiry", "An invitation lasts from 5 minutes to 90 days")
    return ttl


def _audit(actor: Actor, org: Organization, action: str, inv: Invitation, **change: Any) -> None:
    record_org_event(actor, org, action, "invitation", inv.id, **change)


def _enforce_invite(org: Organization, email: str, role: Role | None) -> None:
    """The org's policy on who may invite whom (domains, external invites, inviter's role)."""
    enforce_invitation_policy(org, Attempt(Action.INVITE, email=email, role=role))


def _invitation_mail(org: Organization, invitation: Invitation, token: str) -> Mail:
    return Mail(
        to=invitation.email or "",
        subject=f"You are invited to join {org.name}",
        body=(
            f"You have been invited to join {org.name} as {invitation.role.value}.\n\n"
            f"Accept or decline here (the link works once, until "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n{accept_url(token)}\n\n"
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
    invitation.inviter_role = actor.role
    db.session.add(invitation)
    db.session.flush()
    _audit(actor, org, "invitation.created", invitation, after=invitation_snapshot(invitation))
    return token


def invite_by_email(
    actor: Actor,
    org: Organization,
    *,
    email: str,
    role: Role = Role.MEMBER,
    team_ids: list[str] | None = None,
    ttl: timedelta | None = None,
) -> tuple[Invitation, str]:
    """Invite one person by email; returns the invitation and its token (shown once)."""
    check_permission(actor, Permission.MEMBERS_INVITE)
    check_role_authority(actor, None, role)
    email = validate_email(email)
    _enforce_invite(org, email, actor.role)
    team_ids = list(dict.fromkeys(team_ids or []))
    for team_id in team_ids:
        get_team(org.id, team_id)
    user = find_user_by_email(org.workspace_id, email)
    if user is not None and db.session.scalar(
        select(Membership.id).where(Membership.org_id == org.id, Membership.user_id == user.id)
    ):
        raise Conflict("already_member", "That person is already a member of this organization")
    pending = db.session.scalar(
        select(Invitation.id).where(
            Invitation.org_id == org.id,
            Invitation.kind == InvitationKind.EMAIL,
            Invitation.status == InvitationStatus.PENDING,
            Invitation.expires_at > utcnow(),
            Invitation.email == normalize_email(email),
        )
    )
    if pending:
        raise Conflict(
            "invitation_pending",
            "That person already has a pending invitation: resend it instead",
            invitation_id=pending,
        )
    invitation = Invitation(
        kind=InvitationKind.EMAIL, email=normalize_email(email), role=role, team_ids=team_ids
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
    check_role_authority(actor, None, invitation.role)
    if invitation.kind is not InvitationKind.EMAIL:
        raise Conflict("not_resendable", "Only email invitations can be resent")
    _enforce_invite(org, invitation.email or "", actor.role)
    if current_status(invitation) not in (InvitationStatus.PENDING, InvitationStatus.EXPIRED):
        raise Conflict("invitation_not_pending", f"This invitation is {invitation.status.value}")
    before = invitation_snapshot(invitation)
    token = new_token(TOKEN_PREFIX)
    invitation.token_digest = token_digest(token)
    invitation.status = InvitationStatus.PENDING
    invitation.expires_at = utcnow() + _ttl(ttl)
    invitation.inviter_role = actor.role  # the one who sent it again now vouches for it
    db.session.flush()
    _audit(
        actor,
        org,
        "invitation.resent",
        invitation,
        before=before,
        after=invitation_snapshot(invitation),
    )
    queue_mail(db.session, _invitation_mail(org, invitation, token))
    return invitation, token


def revoke_invitation(actor: Actor, org: Organization, invitation_id: str) -> Invitation:
    check_permission(actor, Permission.MEMBERS_INVITE)
    invitation = get_invitation(org.id, invitation_id)
    check_role_authority(actor, None, invitation.role)
    if current_status(invitation) is not InvitationStatus.PENDING:
        raise Conflict(
            "invitation_not_pending", f"This invitation is {current_status(invitation).value}"
        )
    before = invitation_snapshot(invitation)
    invitation.status = InvitationStatus.REVOKED
    db.session.flush()
    _audit(
        actor,
        org,
        "invitation.revoked",
        invitation,
        before=before,
        after=invitation_snapshot(invitation),
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


def _acceptance(invitation: Invitation, email: str) -> Attempt:
    """What accepting asks of the org's policy as it is now, on the word of whoever sent the
    invitation or made the link: an email invitation is checked as if sent again; a link, by
    its own rules (allowed, its age) and whether its maker may invite the one who joins."""
    role = invitation.inviter_role or UNRECORDED_INVITER
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


def accept_invitation(
    token: str, *, email: str | None = None, name: str | None = None, actor: Actor | None = None
) -> Membership:
    """Join the org the token invites to, as the invited email (or, for a link, ``email``)."""
    org = _live_org(_find_by_token(token))
    lock_org(org.id)
    invitation = _find_by_token(token)  # again, under the lock: concurrent accepts see the winner
    _refuse_unless_pending(invitation)
    if invitation.kind is InvitationKind.EMAIL:
        if email is not None and normalize_email(email) != invitation.email:
            raise Forbidden("email_mismatch", "This invitation was sent to another address")
        email = invitation.email
    elif not email:
        raise BadRequest("email_required", "Say which email joins through this link", field="email")
    enforce_invitation_policy(org, _acceptance(invitation, email or ""))
    user = get_or_create_user(org.workspace_id, email or "", name)
    membership = join_org(org, user, role=invitation.role, source=MembershipSource.INVITE)
    live_teams = db.session.scalars(
        select(Team.id).where(Team.org_id == org.id, Team.id.in_(invitation.team_ids))
    ).all()  # a team deleted since the invitation was sent is skipped
    for team_id in live_teams:
        db.session.add(TeamMember(team_id=team_id, membership_id=membership.id))
    before = invitation_snapshot(invitation)
    invitation.use_count += 1
    invitation.accepted_by_user_id = user.id
    if invitation.kind is InvitationKind.EMAIL or invitation.use_count == invitation.max_uses:
        invitation.status = InvitationStatus.ACCEPTED
    db.session.flush()
    _audit(
        replace(actor or anonymous_actor(), user_id=user.id, label=user.email),
        org,
        "invitation.accepted",
        invitation,
        before=before,
        after={
            **invitation_snapshot(invitation),
            "user_id": user.id,
            "role": membership.role.value,
        },
    )
    return membership


def reject_invitation(token: str, *, actor: Actor | None = None) -> Invitation:
    invitation = _find_by_token(token)
    org = _live_org(invitation)
    if invitation.kind is not InvitationKind.EMAIL:
        raise Conflict("not_rejectable", "A shared link cannot be declined; just do not use it")
    _refuse_unless_pending(invitation)
    before = invitation_snapshot(invitation)
    invitation.status = InvitationStatus.REJECTED
    db.session.flush()
    _audit(
        actor or anonymous_actor(),
        org,
        "invitation.rejected",
        invitation,
        before=before,
        after=invitation_snapshot(invitation),
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
        before = invitation_snapshot(invitation)
        invitation.status = InvitationStatus.EXPIRED
        _audit(
            actor,
            org,
            "invitation.expired",
            invitation,
            before=before,
            after=invitation_snapshot(invitation),
        )
    db.session.flush()
    return len(stale)
