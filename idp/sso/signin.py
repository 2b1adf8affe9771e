"""Turning what an org's IdP asserted into a member and a session.

The account-takeover rule: a login through org B's connection is matched within org B's own
directory first (the subject seen before, the SCIM-provisioned user, a member with that
email). It proves the *workspace* identity of an email only when org B has verified the
email's domain; otherwise a new person is provisioned with the email kept for display but
not linked. Which orgs a session may then enter is decided by
``admission``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from idp.actors import Actor, ActorKind
from idp.audit.services import record_org_event
from idp.connections.domains import verified_org_for_email
from idp.connections.models import Connection, ExternalIdentity
from idp.db import db, new_id, utcnow
from idp.directory.models import DirectoryUser
from idp.errors import GatehouseError
from idp.orgs import services as orgs
from idp.orgs.models import Membership, MembershipSource, MembershipStatus, Organization
from idp.orgs.roles import Role
from idp.policies.chain import org_policy
from idp.policies.enforcement import Action, Attempt, enforce
from idp.sessions.models import Session, SessionMethod
from idp.sessions.services import session_violation, start_session
from idp.sso.mfa import asserts_mfa
from idp.sso.states import LoginRefused
from idp.users.models import User, normalize_email
from idp.users.services import get_or_create_user, validate_email

MAX_GROUPS = 500  # groups kept from one assertion; more is an IdP misconfiguration


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


def actor_for_connection(connection: Connection, request_id: str | None = None) -> Actor:
    """The org's IdP speaks for the org's directory: owner authority there, like its SCIM feed."""
    return Actor(
        ActorKind.CONNECTION,
        connection.id,
        f"connection:{connection.name}",
        role=Role.OWNER,
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
) -> tuple[Session, str]:
    """Find (or provision just in time) the member, apply their groups, start a session.

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
    identity = _known_subject(connection, assertion.subject)
    user = identity.user if identity else _directory_match(org, assertion, email)
    # The member's own address, or the asserted one that a new member would get.
    who = user.email if user else email
    enforce(policy, Attempt(Action.SIGN_IN, email=who, via_org_connection=True, mfa=mfa))
    membership = orgs.find_membership(org.id, user.id) if user else None
    if membership is None:
        if not connection.settings.get("jit", True):
            raise LoginRefused(
                "not_provisioned", "You are not a member of this organization; ask its admin"
            )
        enforce(policy, Attempt(Action.JIT))
        user = user or _new_person(org, email, assertion.name)
        membership = orgs.join_org(org, user, role=Role.MEMBER, source=MembershipSource.JIT)
        record_org_event(
            actor,
            org,
            "member.jit_provisioned",
            "user",
            user.id,
            after={**orgs.member_snapshot(membership), "connection_id": connection.id},
        )
    if membership.status is not MembershipStatus.ACTIVE:
        raise LoginRefused("member_suspended", "Your membership of this organization is suspended")
    _remember_subject(connection, identity, assertion.subject, user)
    groups = sorted({str(g)[:200] for g in assertion.groups if g})[:MAX_GROUPS]
    if membership.sso_groups != groups:
        membership.sso_groups = groups
        db.session.flush()
    if membership.role is not membership.assigned_role or orgs.has_role_mappings(org.id):
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


def _directory_match(org: Organization, assertion: IdpAssertion, email: str | None) -> User | None:
    """The person this assertion names in the org's own directory (SCIM, members), if any."""
    keys = {assertion.subject.lower()}
    if email:
        keys.add(email.lower())
    external_ids = {assertion.subject, assertion.external_id or assertion.subject}
    provisioned = db.session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
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
    if provisioned is not None or email is None:
        return provisioned
    return db.session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org.id, User.email_normalized == normalize_email(email))
    )


def _new_person(org: Organization, email: str | None, name: str | None) -> User:
    """A person new to the org: the workspace identity of the email only if the org verified
    the email's domain; otherwise a new, unlinked person (email shown, never matched on)."""
    name = name[:200] if name else None
    if email and verified_org_for_email(org.workspace_id, email) == org.id:
        return get_or_create_user(org.workspace_id, email, name)
    user = User(id=new_id("usr"), workspace_id=org.workspace_id, email=email, name=name)
    db.session.add(user)
    db.session.flush()
    return user


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
    if session.connection_id is None:
        return None if session.method is SessionMethod.EMAIL_LINK else "unknown_method"
    connection_org = db.session.scalar(
        select(Connection.org_id).where(Connection.id == session.connection_id)
    )
    if connection_org == org_id:
        return None
    email = session.user.email_normalized
    if email and verified_org_for_email(session.workspace_id, email) == connection_org:
        return None
    return "needs_org_sso"
