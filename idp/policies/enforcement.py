"""The one answer to "does this action (or this session) satisfy the org's effective policy".

Every entry point describes what is being attempted as an :class:`Attempt` and asks
:func:`violation` (or :func:`enforce`, which raises). Which keys apply to which actions is the
table :data:`RULES`, not checks scattered over the views: sign-in (SSO callback, SAML ACS,
email links), a session entering or staying in an org (forward-auth, OIDC authorize, token
refresh, introspection, userinfo, ``/api/v1/me``), joins (invitations, SCIM, JIT, admins),
invitations (sent, resent, accepted, and an admin's direct add, which is one accepted at once),
links and IdP-initiated SAML.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from idp import telemetry
from idp.connections.names import email_domain
from idp.errors import Forbidden
from idp.orgs.roles import Role, RoleDef
from idp.policies.registry import Policy


class Action(StrEnum):
    SIGN_IN = "sign_in"  # a new sign-in into the org (SSO, email link, emailed invitation)
    SESSION = "session"  # a session entering or staying in the org
    JOIN = "join"  # a person becoming an active or suspended member
    JIT = "jit"  # a first SSO login creating the member
    INVITE = "invite"  # an email invitation sent, resent or accepted; an admin's direct add
    INVITE_LINK = "invite_link"  # a shareable link created
    LINK_ACCEPT = "link_accept"  # a shareable link used (its maker's role, who joins)
    IDP_INITIATED = "idp_initiated"  # an unsolicited SAML response


@dataclass(frozen=True)
class Attempt:
    """What is being tried in the org, with the facts the rules need (unset: not known)."""

    action: Action
    now: datetime | None = None
    email: str | None = None
    # Who invites (at acceptance: who invited, or made the link): the role they act with.
    role: RoleDef | None = None
    # For external invitations: the org's verified email domains.
    org_domains: frozenset[str] = frozenset()
    # Invitation links: the lifetime asked for (seconds), or the link's creation time.
    ttl_seconds: int | None = None
    link_created_at: datetime | None = None
    # Sessions and sign-ins: authenticated by the org's own connection? with MFA? when?
    via_org_connection: bool = False
    mfa: bool = False
    started_at: datetime | None = None
    last_seen_at: datetime | None = None


class PolicyViolation(Forbidden):
    """The org's effective policy does not allow this (403 ``policy_violation``)."""

    def __init__(self, key: str, message: str) -> None:
        # The key in the text too: SCIM errors and sign-in pages carry only the message.
        super().__init__("policy_violation", f"{message} (policy: {key})", key=key)

    @property
    def key(self) -> str:
        return self.details["key"]


Check = Callable[[Any, Attempt], str | None]  # (the key's value, the attempt) → refusal or None


def _sso_required(required: bool, a: Attempt) -> str | None:
    if required and not a.via_org_connection:
        return "This organization requires signing in through its own identity provider"
    return None


def _mfa_required(required: bool, a: Attempt) -> str | None:
    if required and not a.mfa:
        return "This organization requires multi-factor authentication at its identity provider"
    return None


def _age(limit: int | None, since: datetime | None, now: datetime | None) -> bool:
    return (
        limit is not None
        and since is not None
        and now is not None
        and ((now - since).total_seconds() > limit)
    )


def _session_max_age(limit: int | None, a: Attempt) -> str | None:
    if _age(limit, a.started_at, a.now):
        return "This session is older than the organization allows: sign in again"
    return None


def _session_idle(limit: int | None, a: Attempt) -> str | None:
    if _age(limit, a.last_seen_at or a.started_at, a.now):
        return "This session was idle longer than the organization allows: sign in again"
    return None


def _allowed_domains(allowed: frozenset[str] | None, a: Attempt) -> str | None:
    if allowed is None:
        return None
    domain = email_domain(a.email)
    if domain is None or domain not in allowed:
        return "This organization accepts members with email addresses of its allowed domains only"
    return None


def _external_invites(allowed: bool, a: Attempt) -> str | None:
    if not allowed and email_domain(a.email) not in a.org_domains:
        return "This organization invites addresses of its own verified domains only"
    return None


def _flag(message: str) -> Check:
    return lambda allowed, _a: None if allowed else message


def _invite_link_max_age(limit: int | None, a: Attempt) -> str | None:
    if limit is not None and a.ttl_seconds is not None and a.ttl_seconds > limit:
        return f"Invitation links of this organization last at most {limit} seconds"
    if _age(limit, a.link_created_at, a.now):
        return "This invitation link is older than the organization allows"
    return None


def _min_role_to_invite(minimum: Role, a: Attempt) -> str | None:
    if a.role is None or a.role.rank < minimum.rank:
        return f"In this organization only {minimum.value}s and above may invite"
    return None


RULES: dict[str, tuple[frozenset[Action], Check]] = {
    "sso_required": (frozenset({Action.SIGN_IN, Action.SESSION}), _sso_required),
    "mfa_required": (frozenset({Action.SIGN_IN, Action.SESSION}), _mfa_required),
    "session_max_age": (frozenset({Action.SESSION}), _session_max_age),
    "session_idle_timeout": (frozenset({Action.SESSION}), _session_idle),
    # Sign-ins and sessions too: members from before a narrowing lose access with it.
    "allowed_email_domains": (
        frozenset({Action.JOIN, Action.INVITE, Action.SIGN_IN, Action.SESSION}),
        _allowed_domains,
    ),
    "idp_initiated_login": (
        frozenset({Action.IDP_INITIATED}),
        _flag("This organization does not accept sign-ins started at the identity provider"),
    ),
    "jit_provisioning": (
        frozenset({Action.JIT}),
        _flag("This organization does not create members at first sign-in; ask its admin"),
    ),
    "external_invites": (frozenset({Action.INVITE, Action.LINK_ACCEPT}), _external_invites),
    "invite_links": (
        frozenset({Action.INVITE_LINK, Action.LINK_ACCEPT}),
        _flag("This organization does not use invitation links"),
    ),
    "invite_link_max_age": (
        frozenset({Action.INVITE_LINK, Action.LINK_ACCEPT}),
        _invite_link_max_age,
    ),
    "min_role_to_invite": (
        frozenset({Action.INVITE, Action.INVITE_LINK, Action.LINK_ACCEPT}),
        _min_role_to_invite,
    ),
    # member_cap needs a count under the org lock: orgs.services._refuse_if_full reads it.
}


def violations(policy: Policy, attempt: Attempt) -> list[tuple[str, str]]:
    """Every (key, message) the attempt breaks, in registry order; empty if it is allowed."""
    found = []
    for key, (actions, check) in RULES.items():
        if attempt.action in actions and (message := check(policy[key], attempt)) is not None:
            found.append((key, message))
    return found


def violation(policy: Policy, attempt: Attempt) -> str | None:
    """The first key the attempt breaks, or ``None`` if the policy allows it."""
    found = violations(policy, attempt)
    return found[0][0] if found else None


def enforce(policy: Policy, attempt: Attempt) -> None:
    """Raise :class:`PolicyViolation` naming the first key the attempt breaks."""
    found = violations(policy, attempt)
    if found:
        telemetry.policy_refused(found[0][0])
        raise PolicyViolation(*found[0])
