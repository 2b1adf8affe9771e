"""Turning what an org's IdP asserted into a member and a session.

The account-takeover rule: a login through org B's connection is matched within org B's own
directory first (the subject seen before, the SCIM-provisioned user, a member with that
email). It proves the *workspace* identity of an email only when org B has verified the
email's domain; otherwise a new person is provisioned with the email kept for display but
not linked. Which orgs a session may then enter is decided by
``admission``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from idp.actors import Actor, ActorKind
from idp.audit.services import record_org_event
from idp.connections.domains import verified_org_for_email
from idp.connections.mfa import asserts_mfa
from idp.connections.models import Connection, ExternalIdentity
from idp.db import db, utcnow
from idp.directory.models import DirectoryUser
from idp.errors import Forbidden, GatehouseError
from idp.orgs import services as orgs
from idp.orgs.models import Membership, MembershipSource, MembershipStatus, Organization
from idp.orgs.roles import OWNER, Role
from idp.people import services as people
from idp.policies.chain import org_policy
from idp.policies.enforcement import Action, Attempt, enforce
from idp.sessions.models import Session, SessionMethod
from idp.sessions.services import session_violation, start_session
from idp.users.models import User
from idp.users.services import validate_email

MAX_GROUPS = 500  # groups kept from one assertion; more is an IdP misconfiguration


class LoginRefused(Forbidden):
    """An SSO response that Gatehouse will not turn into a session; the code says why."""


@dataclass(frozen=True)
class IdpAssertion:
    """What the IdP said about the person, after the protocol checks and the claim mapping."""

    subject: str  # OIDC ``sub``, SAML NameID
    email: str | None = None
    name: str | None = None
    groups: Sequence[str] = field(default_factory=tuple)
    amr: Sequence[str] = field(default_factory=tuple)
    acr: str | None = None
    auth_time: datetime | None = None
    # The IdP's id of the person as its SCIM feed sends it (Entra ``oid``); default: subject.
    external_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON form, to finish the sign-in once the address is proven (no signature kept)."""
        return {
            "subject": self.subject,
            "email": self.email,
            "name": self.name,
            "groups": list(self.groups),
            "amr": list(self.amr),
            "acr": self.acr,
            "auth_time": self.auth_time.isoformat() if self.auth_time else None,
            "external_id": self.external_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IdpAssertion:
        auth_time = data.get("auth_time")
        return cls(
            subject=data["subject"],
            email=data.get("email"),
            name=data.get("name"),
            groups=tuple(data.get("groups") or ()),
            amr=tuple(data.get("amr") or ()),
            acr=data.get("acr"),
            auth_time=datetime.fromisoformat(auth_time) if auth_time else None,
            external_id=data.get("external_id"),
        )


def actor_for_connection(connection: Connection, request_id: str | None = None) -> Actor:
    """The org's IdP speaks for the org's directory: owner authority there, like its SCIM feed."""
    return Actor(
        ActorKind.CONNECTION,
        connection.id,
        f"connection:{connection.name}",
        role=OWNER,
        org_id=connection.org_id,
        request_id=request_id,
        workspace_id=connection.workspace_id,
    )


def sign_in(
    connection: Connection,
    assertion: IdpAssertion,
    *,
    lifetime: timedelta,
    request_id: str | None = None,
    unsolicited: bool = False,
    address_proven: bool = False,
) -> tuple[Session, str]:
    """Find (or provision just in time) the member, apply their groups, start a session.

    Who the person is follows ``idp.people``: the subject this connection linked before, the
    org's directory record, or the org's member for the asserted address, which the sign-in
    takes over only when the address counts as proven for the org (a verified domain, a
    ``trust_email`` connection, or ``address_proven``: the person also used an email link in
    this browser); otherwise ``EmailProofRequired``.

    The org's policy is asked before anything is written: IdP-initiated sign-in
    (``unsolicited``), MFA as the IdP asserted it, the email domain of whoever signs in
    (existing members too), and just-in-time provisioning before a new member is created.
    """
    org = db.session.get(Organization, connection.org_id)
    if org is None or org.deleted_at is not None or not connection.enabled:
        raise LoginRefused("connection_disabled", "This sign-in connection is not available")
    if not assertion.subject or len(assertion.subject) > 512:
        raise LoginRefused("invalid_subject", "The identity provider sent no usable subject")
    policy = org_policy(org)
    if unsolicited:
        enforce(policy, Attempt(Action.IDP_INITIATED))
    mfa = asserts_mfa(connection, assertion.amr, assertion.acr)
    email = _valid_email(assertion.email)
    actor = actor_for_connection(connection, request_id)
    if address_proven:
        vouched = people.Proof.ADDRESS
    elif connection.settings.get("trust_email"):
        vouched = people.Proof.ORG
    else:
        vouched = people.Proof.ASSERTED
    claim = people.Claim(
        email, people.address_proof(org, email, vouched), people.safe_asserted_name(assertion.name)
    )
    identity = _known_subject(connection, assertion.subject)
    membership = _member_of(org, identity, assertion, claim)
    # The member's own address, or the asserted one that a new member would get.
    who = (membership.email or membership.user.email) if membership else email
    enforce(policy, Attempt(Action.SIGN_IN, email=who, via_org_connection=True, mfa=mfa))
    if membership is None:
        if not connection.settings.get("jit", True):
            raise LoginRefused(
                "not_provisioned", "You are not a member of this organization; ask its admin"
            )
        enforce(policy, Attempt(Action.JIT))
        person = identity.user if identity else None
        membership, created = people.admit(
            actor, org, claim, role=Role.MEMBER, source=MembershipSource.JIT, person=person
        )
        if not created:  # a concurrent route named the address first
            if claim.proof is people.Proof.ASSERTED:
                raise people.EmailProofRequired(email or "")
        else:
            record_org_event(
                actor,
                org,
                "member.jit_provisioned",
                "user",
                membership.user_id,
                after={**orgs.member_snapshot(membership), "connection_id": connection.id},
            )
    if membership.status is not MembershipStatus.ACTIVE:
        raise LoginRefused("member_suspended", "Your membership of this organization is suspended")
    user = membership.user
    if claim.proof is people.Proof.ADDRESS and email and not people.is_workspace_person(user):
        user = people.link_member(actor, org, membership, email)  # the proof has arrived
    _remember_subject(connection, identity, assertion.subject, user)
    groups = sorted({str(g)[:200] for g in assertion.groups if g})[:MAX_GROUPS]
    if membership.sso_groups != groups:
        membership.sso_groups = groups
        db.session.flush()
    if membership.role != membership.assigned_role or orgs.has_role_mappings(org.id):
        orgs.recompute_roles(actor, org, [membership.id])
    session, token = start_session(
        user,
        org,
        method=SessionMethod(connection.kind.value),
        lifetime=lifetime,
        connection_id=connection.id,
        amr=[str(a) for a in assertion.amr][:20],
        acr=assertion.acr[:200] if assertion.acr else None,
        auth_time=assertion.auth_time,
        mfa=mfa,
    )
    record_org_event(
        actor,
        org,
        "session.started",
        "user",
        user.id,
        after={
            "session_id": session.id,
            "connection_id": connection.id,
            "amr": session.amr,
            "mfa": mfa,
        },
    )
    return session, token


def _valid_email(email: str | None) -> str | None:
    if not email:
        return None
    try:
        return validate_email(email)
    except GatehouseError:  # an unusable email is simply not linked
        return None


def _known_subject(connection: Connection, subject: str) -> ExternalIdentity | None:
    """The person this connection's subject signed in as before, if any."""
    return db.session.scalar(
        select(ExternalIdentity)
        .options(joinedload(ExternalIdentity.user))
        .where(ExternalIdentity.connection_id == connection.id, ExternalIdentity.subject == subject)
    )


def _member_of(
    org: Organization,
    identity: ExternalIdentity | None,
    assertion: IdpAssertion,
    claim: people.Claim,
) -> Membership | None:
    """The org's membership this sign-in names: the subject's person, the org's directory
    record (externalId or userName), or the member for the address (only when the address
    counts as proven for the org)."""
    if identity is not None:
        found = orgs.find_membership(org.id, identity.user_id)
        if found is not None:
            return found
    keys = {assertion.subject.lower()}
    if claim.email:
        keys.add(claim.email.lower())
    external_ids = {assertion.subject, assertion.external_id or assertion.subject}
    provisioned = db.session.scalar(
        select(Membership)
        .join(DirectoryUser, DirectoryUser.membership_id == Membership.id)
        .where(
            DirectoryUser.org_id == org.id,
            or_(
                DirectoryUser.external_id.in_(external_ids),
                DirectoryUser.user_name_key.in_(keys),
            ),
        )
        .order_by(DirectoryUser.external_id.in_(external_ids).desc())
        .limit(1)
    )
    if provisioned is not None:
        return provisioned
    by_address = people.find_member_by_email(org.id, claim.email)
    if by_address is not None and claim.proof is people.Proof.ASSERTED:
        raise people.EmailProofRequired(claim.email or "")
    return by_address


def _remember_subject(
    connection: Connection, identity: ExternalIdentity | None, subject: str, user: User
) -> None:
    if identity is None:
        identity = ExternalIdentity(connection_id=connection.id, subject=subject, user_id=user.id)
        db.session.add(identity)
    identity.user_id = user.id
    identity.last_login_at = utcnow()
    db.session.flush()


def admission(session: Session, org_id: str) -> str | None:
    """Whether ``org_id`` accepts this session: ``None`` if it does, else the reason it does
    not (``needs_org_sso``, or ``policy:<key>`` for the org's policy).

    Accepted: the org's own connection; an email link (the person proved the address); or
    another org's connection when that org has verified the email's domain, so its IdP is
    the authority for that address. Then the org's effective policy must admit the session
    (``idp.policies.enforcement``: its own IdP only, MFA, age, idle time, email domains).
    """
    reason = _source_admission(session, org_id)
    if reason is not None:
        return reason
    org = db.session.get(Organization, org_id)
    if org is None:
        return "org_not_found"
    key = session_violation(session, org)
    return f"policy:{key}" if key else None


def _source_admission(session: Session, org_id: str) -> str | None:
    return (
        None
        if _speaks_for(session)(org_id)
        else ("unknown_method" if session.connection_id is None else "needs_org_sso")
    )


def _speaks_for(session: Session) -> Callable[[str], bool]:
    """Which orgs the way this session signed in speaks for: every org for an email link
    (the address is proven), else the connection's own org, and every org when that org
    verified the person's email domain (its IdP is the authority for the address)."""
    if session.connection_id is None:
        admitted = session.method is SessionMethod.EMAIL_LINK
        return lambda _org_id: admitted
    connection_org = db.session.scalar(
        select(Connection.org_id).where(Connection.id == session.connection_id)
    )
    email = session.user.email_normalized
    if email and verified_org_for_email(session.workspace_id, email) == connection_org:
        return lambda _org_id: True
    return lambda org_id: org_id == connection_org


def reachable_memberships(session: Session) -> list[tuple[Organization, Membership]]:
    """The person's active memberships in the orgs this session's sign-in speaks for: what
    ``/api/v1/me``, email links and the app's org chooser offer. An org that the sign-in does
    not speak for is not listed, so a sign-in through one org's IdP shows nothing of the
    person's other orgs."""
    speaks_for = _speaks_for(session)
    return [(o, m) for o, m in orgs.active_memberships(session.user_id) if speaks_for(o.id)]
