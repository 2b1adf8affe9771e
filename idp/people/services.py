"""Who a person is, for one org: the resolver every way in calls.

The rules (the README's "One person, one identity"):

- **Within an org** a person is at most one membership, keyed by the address the org names
  them by (``memberships.email_key``, unique per org). Every route that names an address
  the org already holds resolves to that membership: its admins, its directory (SCIM), its
  invitations and its IdPs' sign-ins (an IdP subject once linked stays linked).
- **Across orgs** a person is one workspace identity (``users.email_normalized``) only once
  the address is proven: the person used an email link or opened an invitation from its
  mail (``Proof.ADDRESS``), or the org verified the address's domain, so it speaks for the
  domain. What an org says on its own word alone (``Proof.ORG``: an admin's add, its
  directory, an invitation whose token its admin saw, an IdP connection an owner marked
  ``trust_email``) gives it a person of its own, linked to the workspace identity when the
  proof arrives (``member.linked``, audited).
- An IdP's sign-in that its org does not vouch for (``Proof.ASSERTED``) never takes over a
  membership, nor a pending invitation, by its address alone: the person proves the
  address once by an email link in the same browser (``EmailProofRequired``).
- What an org sees of a person (name, address) is what it set: ``memberships.name`` and
  ``.email``, never another org's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sqlalchemy import exists, func, select, update

from idp.actors import Actor
from idp.audit.services import record_org_event
from idp.connections.domains import verified_org_for_email
from idp.connections.models import ExternalIdentity
from idp.db import db, new_id, utcnow, workspace_wide
from idp.directory.models import DirectoryUser
from idp.errors import BadRequest, Conflict
from idp.orgs import services as orgs
from idp.orgs.models import (
    Invitation,
    InvitationKind,
    InvitationStatus,
    Membership,
    MembershipSource,
    MembershipStatus,
    Organization,
    Team,
    TeamMember,
)
from idp.orgs.role_book import hold_role, org_roles
from idp.orgs.roles import Permission, Role
from idp.policies.enforcement import Action, Attempt
from idp.resources.models import Resource
from idp.resources.services import Principal, put_grant
from idp.sessions.services import cut_member_access
from idp.users.models import User, normalize_email
from idp.users.services import get_or_create_user, validate_email

MAX_PERSON_NAME = 200


class Proof(IntEnum):
    """How well a route's address is known to belong to the person it names."""

    ASSERTED = 0  # an org's IdP said so, and the org does not vouch for its addresses
    ORG = 1  # the org's own word: its admins, its directory, its invitations, trust_email
    ADDRESS = 2  # the address itself: an email link, an invitation's mail, a verified domain


@dataclass(frozen=True)
class Claim:
    """What a route says of the person it admits to one org."""

    email: str | None
    proof: Proof
    name: str | None = None


class EmailProofRequired(Conflict):
    """The org knows this address already, and this route alone does not prove it."""

    def __init__(self, email: str) -> None:
        super().__init__(
            "email_proof_required",
            "This organization already knows this address: confirm it with the link we sent",
        )
        self.email = email


# --- names -----------------------------------------------------------------------------


def validate_person_name(name: str | None) -> str | None:
    """A person's display name: trimmed, at most 200 characters, nothing invisible; or None."""
    if name is None:
        return None
    value = name.strip()
    if not value:
        return None
    if len(value) > MAX_PERSON_NAME:
        raise BadRequest(
            "invalid_name", f"A name has at most {MAX_PERSON_NAME} characters", field="name"
        )
    char = orgs.unsafe_character(value)
    if char is not None:
        raise BadRequest(
            "invalid_name",
            f"A name may not contain control, bidi or zero-width characters (U+{ord(char):04X})",
            field="name",
        )
    return value


def safe_asserted_name(name: str | None) -> str | None:
    """An IdP's name for display, or None when it is not one we can show as it is."""
    try:
        return validate_person_name(name[:MAX_PERSON_NAME] if name else None)
    except BadRequest:
        return None


# --- finding ---------------------------------------------------------------------------


def address_proof(org: Organization, email: str | None, vouched: Proof) -> Proof:
    """The proof a route's address carries in ``org``: the org that verified the address's
    domain speaks for it (``ADDRESS``); otherwise what the route itself vouches."""
    if (
        email
        and vouched < Proof.ADDRESS
        and verified_org_for_email(org.workspace_id, email) == org.id
    ):
        return Proof.ADDRESS
    return vouched


def find_member_by_email(org_id: str, email: str | None) -> Membership | None:
    """The org's membership for this address (one at most), whatever its status."""
    if not email:
        return None
    return db.session.scalar(
        select(Membership).where(
            Membership.org_id == org_id, Membership.email_key == normalize_email(email)
        )
    )


def is_known_address(workspace_id: str, email: str) -> bool:
    """Whether anyone can be signed in by a link to this address: a workspace person, or a
    member of some org named by it."""
    key = normalize_email(email)
    return bool(
        db.session.scalar(
            select(
                exists().where(User.workspace_id == workspace_id, User.email_normalized == key)
                | exists().where(
                    Membership.email_key == key,
                    Membership.org_id == Organization.id,
                    Organization.workspace_id == workspace_id,
                    Organization.deleted_at.is_(None),
                )
            )
        )
    )


def pending_invitation(org_id: str, email: str | None) -> Invitation | None:
    """The org's live email invitation for this address, if any."""
    if not email:
        return None
    return db.session.scalar(
        select(Invitation)
        .where(
            Invitation.org_id == org_id,
            Invitation.kind == InvitationKind.EMAIL,
            Invitation.status == InvitationStatus.PENDING,
            Invitation.expires_at > utcnow(),
            Invitation.email == normalize_email(email),
        )
        .order_by(Invitation.created_at.desc())
        .limit(1)
    )


def is_workspace_person(user: User) -> bool:
    """Whether the person is the workspace identity of their address (proven), rather than
    one org's person of its own."""
    return user.email_normalized is not None


def person_for(org: Organization, claim: Claim) -> User:
    """The person a new membership belongs to: the workspace identity of a proven address,
    else a person of the org's own (the address shown, never matched across orgs)."""
    if claim.email and claim.proof is Proof.ADDRESS:
        return workspace_person(org.workspace_id, claim.email, name=claim.name)
    user = User(id=new_id("usr"), workspace_id=org.workspace_id, email=claim.email, name=claim.name)
    db.session.add(user)
    db.session.flush()
    return user


def workspace_person(workspace_id: str, email: str, *, name: str | None = None) -> User:
    """The workspace identity of a proven address, created on first proof."""
    user = get_or_create_user(workspace_id, email, name)
    if not user.email_verified:
        user.email_verified = True
        db.session.flush()
    return user


# --- admitting -------------------------------------------------------------------------


def admit(
    actor: Actor,
    org: Organization,
    claim: Claim,
    *,
    role: Role,
    source: MembershipSource,
    status: MembershipStatus = MembershipStatus.ACTIVE,
    person: User | None = None,
    invitation: Invitation | None = None,
) -> tuple[Membership, bool]:
    """The org's membership for ``claim``: the one it holds for the address, or a new one
    (``(membership, True)``) for ``person`` or :func:`person_for`.

    A live email invitation for the address (``invitation``, or the org's pending one) is
    taken up by the join: its role if higher, its teams, marked accepted. An IdP sign-in the
    org does not vouch for cannot take one up by its address alone (``EmailProofRequired``).
    """
    orgs.lock_org(org.id)  # so that concurrent routes naming one address resolve to one row
    found = find_member_by_email(org.id, claim.email)
    if found is not None:
        return found, False
    if invitation is None and claim.email:
        invitation = pending_invitation(org.id, claim.email)
        if invitation is not None and claim.proof is Proof.ASSERTED:
            raise EmailProofRequired(claim.email)
    if invitation is not None:
        book = org_roles(org)
        if book.rank(invitation.role) > book.rank(role):
            role = invitation.role
    user = person or person_for(org, claim)
    membership = orgs.join_org(
        org, user, role=role, source=source, status=status, email=claim.email, name=claim.name
    )
    if invitation is not None:
        take_up_invitation(actor, org, invitation, membership)
    return membership, True


def take_up_invitation(
    actor: Actor, org: Organization, invitation: Invitation, membership: Membership
) -> None:
    """Mark the invitation used by this member: its teams joined, its role if higher."""
    if invitation.role != membership.role:
        orgs.raise_assigned_role(membership, invitation.role, org_roles(org))
    if invitation.resource_id and invitation.resource_role_id:  # its target below the org
        target = db.session.get(Resource, invitation.resource_id)
        put_grant(
            org.id, target, Principal(membership_id=membership.id), invitation.resource_role_id
        )
    present = set(
        db.session.scalars(
            select(TeamMember.team_id).where(TeamMember.membership_id == membership.id)
        )
    )
    live_teams = db.session.scalars(
        select(Team.id).where(Team.org_id == org.id, Team.id.in_(invitation.team_ids))
    ).all()  # a team deleted since the invitation was sent is skipped
    for team_id in live_teams:
        if team_id not in present:
            db.session.add(TeamMember(team_id=team_id, membership_id=membership.id))
    before = invitation.snapshot()
    invitation.use_count += 1
    invitation.accepted_by_user_id = membership.user_id
    if invitation.kind is InvitationKind.EMAIL or invitation.use_count == invitation.max_uses:
        invitation.status = InvitationStatus.ACCEPTED
    db.session.flush()
    record_org_event(
        actor,
        org,
        "invitation.accepted",
        "invitation",
        invitation.id,
        before=before,
        after={
            **invitation.snapshot(),
            "user_id": membership.user_id,
            "role": membership.role,
        },
    )


def add_member(
    actor: Actor,
    org: Organization,
    *,
    email: str,
    role: str = Role.MEMBER,
    name: str | None = None,
) -> Membership:
    """Add a person directly: an invitation accepted at once, so the rules on inviting
    (external invites, the inviter's role) hold as well as those on joining. The org's word
    alone: a person of its own unless the org verified the address's domain."""
    orgs.check_permission(actor, Permission.MEMBERS_ADD)
    hold_role(org_roles(org), role)  # a role this org has, not deleted meanwhile
    orgs.check_role_authority(actor, org, None, role)
    email = validate_email(email)
    name = validate_person_name(name)
    orgs.lock_org(org.id)
    orgs.enforce_invitation_policy(org, Attempt(Action.INVITE, email=email, role=actor.role))
    claim = Claim(email, address_proof(org, email, Proof.ORG), name)
    membership, created = admit(actor, org, claim, role=role, source=MembershipSource.ADMIN)
    if not created:
        raise Conflict("already_member", "That person is already a member of this organization")
    record_org_event(
        actor,
        org,
        "member.added",
        "user",
        membership.user_id,
        after=orgs.member_snapshot(membership),
    )
    return membership


# --- proof arriving: linking to the workspace identity ---------------------------------


def _has_own_credential(membership: Membership) -> bool:
    """Whether the org's IdP can sign this member in: a subject it linked, or its directory's
    record (a login matches the directory's externalId)."""
    return bool(
        db.session.scalar(
            select(
                exists().where(ExternalIdentity.user_id == membership.user_id)
                | exists().where(DirectoryUser.membership_id == membership.id)
            )
        )
    )


def link_member(actor: Actor, org: Organization, membership: Membership, email: str) -> User:
    """The address of this org's person of its own is proven now: the membership becomes the
    workspace identity's (the person promoted, or merged into the identity that exists), and
    its sessions and tokens end. Audited as ``member.linked``."""
    local = db.session.get(User, membership.user_id)
    if local is None or is_workspace_person(local):
        return local  # type: ignore[return-value]
    key = normalize_email(email)
    target = db.session.scalar(
        select(User).where(User.workspace_id == org.workspace_id, User.email_normalized == key)
    )
    if target is None:  # the first proof of this address: this person becomes its identity
        local.email, local.email_normalized, local.email_verified = email, key, True
        db.session.flush()
        target = local
    elif orgs.find_membership(org.id, target.id) is not None:
        return local  # the identity is already a member under another address: merge by hand
    else:
        _move_person(org, membership, local, target)
    record_org_event(
        actor,
        org,
        "member.linked",
        "user",
        target.id,
        before={"user_id": local.id},
        after={"user_id": target.id, "email": email},
    )
    return target


def _hand_over(org: Organization, from_user_id: str, to_user_id: str, reason: str) -> None:
    """End ``from_user_id``'s access to ``org`` and give their IdP subjects to ``to_user_id``
    (a link or a merge of one person's memberships)."""
    cut_member_access(org.id, from_user_id, reason)
    db.session.execute(
        update(ExternalIdentity)
        .where(ExternalIdentity.user_id == from_user_id)
        .values(user_id=to_user_id)
        .execution_options(synchronize_session=False)
    )


def _move_person(org: Organization, membership: Membership, local: User, target: User) -> None:
    """Give ``local``'s membership of ``org`` (their only one) to ``target``."""
    _hand_over(org, local.id, target.id, "person_linked")
    membership.user_id = target.id
    membership.user = target
    db.session.flush()
    with workspace_wide():  # memberships in every org, whatever org the caller declared
        elsewhere = db.session.scalar(select(exists().where(Membership.user_id == local.id)))
    if not elsewhere:
        db.session.delete(local)  # their sessions, links and tokens go with them
        db.session.flush()


def prove_address(
    actor_for: Callable[[Organization], Actor], workspace_id: str, email: str
) -> User:
    """The person just proved control of ``email`` (an email link, an invitation's mail):
    their workspace identity, which takes up every membership an org made for this address
    on its own word alone (an admin's add, an invitation). Memberships an org's IdP or
    directory can sign in stay the org's until the person signs in there and proves the
    address in the same browser (``EmailProofRequired``): an IdP's word is not the mailbox's.

    ``actor_for(org)`` is the actor the link is audited under in each org.
    """
    key = normalize_email(email)
    candidates = db.session.scalars(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .join(Organization, Organization.id == Membership.org_id)
        .where(
            Organization.workspace_id == workspace_id,
            Organization.deleted_at.is_(None),
            Membership.email_key == key,
            User.email_normalized.is_(None),
        )
        .order_by(Membership.created_at, Membership.id)
    ).all()
    person: User | None = None
    for membership in candidates:
        if _has_own_credential(membership):
            continue
        org = db.session.get(Organization, membership.org_id)
        orgs.lock_org(org.id)
        person = link_member(actor_for(org), org, membership, email)
    if person is None or not is_workspace_person(person):
        person = workspace_person(workspace_id, email)
    elif not person.email_verified:
        person.email_verified = True
    return person


def invitation_signs_in(membership: Membership, *, address_proven: bool) -> bool:
    """Whether accepting an emailed invitation may also sign the browser in as the member:
    the workspace identity only when the mail proved the address; the org's own person only
    when no IdP of the org signs them in (then that IdP is how they sign in)."""
    user = membership.user
    if is_workspace_person(user):
        return address_proven
    return not _has_own_credential(membership)


# --- duplicates from earlier releases --------------------------------------------------


def _address(membership: Membership) -> str | None:
    address = membership.email or membership.user.email
    return normalize_email(address) if address else None


def list_duplicates(workspace_id: str, org_id: str | None = None) -> list[dict[str, Any]]:
    """Addresses held by several memberships of one org (an earlier release could do that),
    with the memberships, oldest first."""
    address = func.lower(func.trim(func.coalesce(Membership.email, User.email)))
    query = (
        select(Membership.org_id, address.label("address"))
        .join(User, User.id == Membership.user_id)
        .join(Organization, Organization.id == Membership.org_id)
        .where(Organization.workspace_id == workspace_id, Organization.deleted_at.is_(None))
        .group_by(Membership.org_id, address)
        .having(func.count() > 1)
    )
    if org_id is not None:
        query = query.where(Membership.org_id == org_id)
    found = []
    for dup_org, dup_address in db.session.execute(query).all():
        if not dup_address:
            continue
        org = db.session.get(Organization, dup_org)
        members = [
            m
            for m in db.session.scalars(
                select(Membership)
                .where(Membership.org_id == dup_org)
                .order_by(Membership.created_at, Membership.id)
            )
            if _address(m) == dup_address
        ]
        found.append(
            {
                "org": org.slug,
                "email": dup_address,
                "members": [
                    {
                        "user_id": m.user_id,
                        "role": m.role,
                        "status": m.status.value,
                        "source": m.source.value,
                        "joined_at": m.created_at.isoformat(),
                    }
                    for m in members
                ],
            }
        )
    return sorted(found, key=lambda d: (d["org"], d["email"]))


def merge_members(actor: Actor, org: Organization, user_ids: list[str]) -> Membership:
    """Merge several memberships of one person in ``org`` into the first (``user_ids[0]``).

    The kept membership takes the highest role any of them held by hand (never higher), is
    active only if one of them was, and takes their teams, IdP subjects and directory record;
    the others are removed, with their access. The last-owner rule holds.
    """
    orgs.check_permission(actor, Permission.MEMBERS_UPDATE)
    if len(set(user_ids)) < 2:
        raise BadRequest("nothing_to_merge", "Name at least two different members to merge")
    orgs.lock_org(org.id)
    kept, *others = [
        orgs.get_membership(org.id, uid, fresh=True) for uid in dict.fromkeys(user_ids)
    ]
    addresses = {_address(m) for m in [kept, *others]}
    if len(addresses) != 1 or None in addresses:
        raise Conflict("different_people", "Only memberships of one address can be merged")
    everyone = [kept, *others]
    for membership in everyone:
        orgs.check_role_authority(actor, org, membership.role)
    before = {
        "kept": orgs.member_snapshot(kept),
        "merged": [orgs.member_snapshot(m) for m in others],
    }
    book = org_roles(org)
    role = max((m.assigned_role or m.role for m in everyone), key=book.rank)
    active = any(m.status is MembershipStatus.ACTIVE for m in everyone)
    teams = set(
        db.session.scalars(select(TeamMember.team_id).where(TeamMember.membership_id == kept.id))
    )
    kept_record = db.session.get(DirectoryUser, kept.id)
    for other in others:
        for link in db.session.scalars(
            select(TeamMember).where(TeamMember.membership_id == other.id)
        ).all():
            if link.team_id not in teams:
                teams.add(link.team_id)
                db.session.add(
                    TeamMember(team_id=link.team_id, membership_id=kept.id, is_lead=link.is_lead)
                )
        record = db.session.get(DirectoryUser, other.id)
        if record is not None and kept_record is None:
            # The directory keeps addressing this person: its record follows the kept row.
            attributes = dict(
                user_name=record.user_name,
                user_name_key=record.user_name_key,
                external_id=record.external_id,
                attributes=record.attributes,
            )
            db.session.delete(record)
            db.session.flush()
            kept_record = DirectoryUser(membership_id=kept.id, org_id=org.id, **attributes)
            db.session.add(kept_record)
        _hand_over(org, other.user_id, kept.user_id, "member_merged")
        db.session.delete(other)
        db.session.flush()
    kept.role = kept.assigned_role = role
    kept.status = MembershipStatus.ACTIVE if active else MembershipStatus.SUSPENDED
    kept.email_key = next(iter(addresses))
    kept.email = kept.email or kept.user.email
    db.session.flush()
    if orgs.count_active_owners(org.id) < 1:
        raise Conflict("last_owner", "An organization must keep at least one owner")
    record_org_event(
        actor,
        org,
        "member.merged",
        "user",
        kept.user_id,
        before=before,
        after=orgs.member_snapshot(kept),
    )
    return kept
