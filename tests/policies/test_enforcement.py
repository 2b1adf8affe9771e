"""The one enforcement table, without a database: which keys apply to which action, each with
what passes and what is refused; and what counts as MFA."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from idp.connections.mfa import asserts_mfa
from idp.connections.models import Connection, ConnectionKind
from idp.db import utcnow
from idp.orgs.roles import Role
from idp.policies.enforcement import RULES, Action, Attempt, PolicyViolation, enforce, violation
from idp.policies.registry import KEYS, Policy

NOW = utcnow()
OLD = NOW - timedelta(hours=3)
ACME = frozenset({"acme.example"})  # the org's verified domains


def test_every_key_is_enforced_somewhere() -> None:
    assert set(RULES) | {"member_cap"} == set(KEYS)  # member_cap: counted under the org lock


@pytest.mark.parametrize(
    ("values", "allowed", "refused"),
    [
        (
            {"sso_required": True},
            Attempt(Action.SESSION, via_org_connection=True),
            Attempt(Action.SESSION, via_org_connection=False),
        ),
        (
            {"sso_required": True},
            Attempt(Action.SIGN_IN, via_org_connection=True),
            Attempt(Action.SIGN_IN),  # an email link
        ),
        ({"mfa_required": True}, Attempt(Action.SIGN_IN, mfa=True), Attempt(Action.SIGN_IN)),
        ({"mfa_required": True}, Attempt(Action.SESSION, mfa=True), Attempt(Action.SESSION)),
        (
            {"session_max_age": 4 * 3600},
            Attempt(Action.SESSION, now=NOW, started_at=OLD),
            Attempt(Action.SESSION, now=NOW, started_at=NOW - timedelta(hours=5)),
        ),
        (
            {"session_idle_timeout": 3600},
            Attempt(Action.SESSION, now=NOW, started_at=OLD, last_seen_at=NOW),
            Attempt(Action.SESSION, now=NOW, started_at=OLD, last_seen_at=OLD),
        ),
        (
            {"allowed_email_domains": frozenset({"acme.example"})},
            Attempt(Action.JOIN, email="Ann@ACME.example"),
            Attempt(Action.JOIN, email="ann@sub.acme.example"),
        ),
        (
            {"allowed_email_domains": frozenset({"acme.example"})},
            Attempt(Action.INVITE, email="ann@acme.example", role=Role.ADMIN),
            Attempt(Action.JOIN, email=None),  # no address to check is no pass
        ),
        (
            {"allowed_email_domains": frozenset({"acme.example"})},
            Attempt(Action.SIGN_IN, email="ann@acme.example"),
            Attempt(Action.SIGN_IN, email="ann@other.example"),  # a member since the narrowing
        ),
        (
            {"allowed_email_domains": frozenset({"acme.example"})},
            Attempt(Action.SESSION, email="ann@acme.example"),
            Attempt(Action.SESSION, email="ann@other.example"),
        ),
        ({"idp_initiated_login": False}, Attempt(Action.SIGN_IN), Attempt(Action.IDP_INITIATED)),
        ({"jit_provisioning": False}, Attempt(Action.SIGN_IN), Attempt(Action.JIT)),
        *(
            (
                {"external_invites": False},
                Attempt(action, email="a@acme.example", role=Role.ADMIN, org_domains=ACME),
                Attempt(action, email="a@other.example", role=Role.ADMIN, org_domains=ACME),
            )
            for action in (Action.INVITE, Action.LINK_ACCEPT)  # sent (or accepted); link used
        ),
        (
            {"invite_links": False},
            Attempt(Action.INVITE, email="a@acme.example", role=Role.ADMIN),
            Attempt(Action.LINK_ACCEPT, role=Role.ADMIN),
        ),
        (
            {"invite_link_max_age": 86400},
            Attempt(Action.INVITE_LINK, role=Role.ADMIN, ttl_seconds=86400),
            Attempt(Action.INVITE_LINK, role=Role.ADMIN, ttl_seconds=86401),
        ),
        (
            {"invite_link_max_age": 86400},
            Attempt(
                Action.LINK_ACCEPT,
                role=Role.ADMIN,
                now=NOW,
                link_created_at=NOW - timedelta(hours=23),
            ),
            Attempt(
                Action.LINK_ACCEPT,
                role=Role.ADMIN,
                now=NOW,
                link_created_at=NOW - timedelta(hours=25),
            ),
        ),
        (
            {"min_role_to_invite": Role.OWNER},
            Attempt(Action.INVITE_LINK, role=Role.OWNER),
            Attempt(Action.INVITE, email="a@acme.example", role=Role.ADMIN),
        ),
        (
            {"min_role_to_invite": Role.OWNER},
            Attempt(Action.LINK_ACCEPT, email="a@acme.example", role=Role.OWNER),
            Attempt(Action.LINK_ACCEPT, email="a@acme.example", role=Role.ADMIN),  # its maker's
        ),
    ],
)
def test_each_rule_allows_and_refuses(
    values: dict[str, Any], allowed: Attempt, refused: Attempt
) -> None:
    (key,) = values
    policy = Policy(values)
    assert violation(policy, allowed) is None
    assert violation(policy, refused) == key
    assert violation(Policy(), refused) is None  # the defaults allow it
    with pytest.raises(PolicyViolation) as raised:
        enforce(policy, refused)
    assert raised.value.status == 403
    assert raised.value.to_dict()["error"] == "policy_violation"
    assert raised.value.key == key


def test_the_default_policy_lets_admins_invite_and_members_not() -> None:
    invite = Attempt(Action.INVITE, email="a@x.example", role=Role.ADMIN)
    assert violation(Policy(), invite) is None
    member = Attempt(Action.INVITE, email="a@x.example", role=Role.MEMBER)
    assert violation(Policy(), member) == "min_role_to_invite"


def test_keys_apply_only_to_their_actions() -> None:
    strict = Policy({"sso_required": True, "mfa_required": True, "jit_provisioning": False})
    assert violation(strict, Attempt(Action.JOIN, email="a@x.example")) is None


def _connection(**settings: Any) -> Connection:
    return Connection(kind=ConnectionKind.OIDC, settings=settings)


@pytest.mark.parametrize(
    ("amr", "acr", "mfa"),
    [
        (["pwd"], None, False),
        (["pwd", "pin"], None, False),  # two things the person knows: one factor
        (["otp"], None, False),
        (["pwd", "otp"], None, True),
        (["hwk", "fpt"], None, True),
        (["mfa"], None, True),
        (["http://schemas.microsoft.com/claims/multipleauthn"], None, True),
        ([], "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport", False),
        ([], "https://refeds.org/profile/mfa", True),
        ([], "http://schemas.openid.net/pape/policies/2007/06/multi-factor", True),
        ([], "urn:okta:loa:2fa:any:ifpossible", False),
    ],
)
def test_what_counts_as_mfa(amr: list[str], acr: str | None, mfa: bool) -> None:
    assert asserts_mfa(_connection(), amr, acr) is mfa


def test_a_connection_may_name_its_idps_own_mfa_values() -> None:
    assert not asserts_mfa(_connection(), [], "urn:example:loa:3")
    assert asserts_mfa(_connection(mfa_values=["urn:example:loa:3"]), [], "urn:example:loa:3")
