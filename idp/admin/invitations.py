"""Invitations: create (email or link), list, resend, revoke; accept and reject by token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.orgs import invitations as service
from idp.orgs.models import Invitation, InvitationKind, Membership
from idp.orgs.roles import Permission, Role
from idp.pagination import Page
from idp.ratelimit import Credential, guard_credential

NOT_FOUND = "invitation_not_found"  # a guessed token; a used or expired one is not counted


def _with_url(invitation: Invitation, token: str) -> dict[str, Any]:
    return {**s.InvitationOut().dump(invitation), "url": service.accept_url(token)}


def _ttl(seconds: int | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


@operation(
    "/orgs/<slug>/invitations",
    "POST",
    permission=Permission.MEMBERS_INVITE,
    body=s.InvitationCreate,
    response=s.InvitationCreated,
    status=201,
)
def create_invitation(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Invite by email (``role``, ``team_ids``; or ``resource`` and ``resource_role``: a
    tenant or project as its target) or create a shareable link (``kind: link``)."""
    if data["kind"] is InvitationKind.LINK:
        invitation, token = service.create_invite_link(
            ctx.actor, ctx.org, ttl=_ttl(data["expires_in"]), max_uses=data["max_uses"]
        )
    else:
        invitation, token = service.invite_by_email(
            ctx.actor,
            ctx.org,
            email=data["email"],
            role=data["role"] or Role.MEMBER.value,
            team_ids=data["team_ids"],
            ttl=_ttl(data["expires_in"]),
            resource=data["resource"],
            resource_role=data["resource_role"],
        )
    return _with_url(invitation, token), 201


@operation(
    "/orgs/<slug>/invitations",
    permission=Permission.MEMBERS_INVITE,
    query=s.InvitationQuery,
    response=s.InvitationOut,
    paged=True,
)
def list_invitations(ctx: Ctx, args: dict[str, Any]) -> Page[Invitation]:
    """List invitations, newest first, optionally by ``status``."""
    return service.list_invitations(ctx.org.id, **args)


@operation(
    "/orgs/<slug>/invitations/<invitation_id>",
    permission=Permission.MEMBERS_INVITE,
    response=s.InvitationOut,
)
def get_invitation(ctx: Ctx, invitation_id: str) -> Invitation:
    """Read one invitation."""
    return service.get_invitation(ctx.org.id, invitation_id)


@operation(
    "/orgs/<slug>/invitations/<invitation_id>/resend",
    "POST",
    permission=Permission.MEMBERS_INVITE,
    response=s.InvitationCreated,
)
def resend_invitation(ctx: Ctx, invitation_id: str) -> dict[str, Any]:
    """Send an email invitation again with a new token; the old link stops working."""
    invitation, token = service.resend_invitation(ctx.actor, ctx.org, invitation_id)
    return _with_url(invitation, token)


@operation(
    "/orgs/<slug>/invitations/<invitation_id>/revoke",
    "POST",
    permission=Permission.MEMBERS_INVITE,
    response=s.InvitationOut,
)
def revoke_invitation(ctx: Ctx, invitation_id: str) -> Invitation:
    """Revoke a pending invitation."""
    return service.revoke_invitation(ctx.actor, ctx.org, invitation_id)


@operation(
    "/invitations/accept", "POST", scope="public", body=s.InvitationAccept, response=s.MemberOut
)
def accept_invitation(ctx: Ctx, data: dict[str, Any]) -> Membership:
    """Accept an invitation by its token (the token is the credential)."""
    with guard_credential(Credential.INVITATION, data["token"], NOT_FOUND):
        return service.accept_invitation(
            data["token"], email=data["email"], name=data["name"], actor=ctx.actor
        )


@operation(
    "/invitations/reject", "POST", scope="public", body=s.InvitationToken, response=s.InvitationOut
)
def reject_invitation(ctx: Ctx, data: dict[str, Any]) -> Invitation:
    """Decline an email invitation by its token."""
    with guard_credential(Credential.INVITATION, data["token"], NOT_FOUND):
        return service.reject_invitation(data["token"], actor=ctx.actor)
