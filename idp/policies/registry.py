"""The typed policy registry: each key's type, default, and what "stricter" means.

Validation and inheritance are generic over the registry: a value is parsed by its key's
kind, an override is accepted only if it is at least as strict as what it inherits, and the
effective value along a chain (workspace baseline → parent orgs → org) is the strictest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from idp.connections.names import normalize_domain
from idp.errors import BadRequest, GatehouseError, Unprocessable
from idp.orgs.roles import Role

_DURATION = re.compile(r"^\s*([0-9]{1,9})\s*([smhd]?)\s*$", re.ASCII)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 366 * 86400
MAX_DOMAINS = 500
MAX_COUNT = 1_000_000


class Kind(StrEnum):
    """How a key's values compare; the name says which way is stricter."""

    REQUIRED_FLAG = "required_flag"  # bool; true is stricter
    ALLOWED_FLAG = "allowed_flag"  # bool; false is stricter
    MAX_DURATION = "max_duration"  # seconds or None (no limit); shorter is stricter
    DOMAIN_SET = "domain_set"  # None (any domain) or a set; a subset is stricter
    MAX_COUNT = "max_count"  # int; lower is stricter
    MIN_ROLE = "min_role"  # a role; higher is stricter


class PolicyLooserThanInherited(Unprocessable):
    """An override that would loosen what the org inherits."""

    def __init__(self, key: str, inherited: Any, requested: Any) -> None:
        super().__init__(
            "policy_looser_than_inherited",
            f"{key} may only be made stricter than what is inherited",
            key=key,
            inherited=inherited,
            requested=requested,
        )


@dataclass(frozen=True)
class PolicyKey:
    name: str
    kind: Kind
    default: Any
    description: str

    def parse(self, raw: Any) -> Any:
        """The value of ``raw`` (as JSON gives it) for this key, or ``invalid_policy_value``."""
        try:
            return _PARSERS[self.kind](raw)
        except (TypeError, ValueError, GatehouseError) as exc:
            reason = exc.message if isinstance(exc, GatehouseError) else str(exc)
            raise BadRequest(
                "invalid_policy_value", f"{self.name}: {reason}", key=self.name
            ) from None

    def at_least_as_strict(self, value: Any, than: Any) -> bool:
        """Whether ``value`` is as strict as ``than`` or stricter."""
        return self.strictest(value, than) == value

    def strictest(self, a: Any, b: Any) -> Any:
        kind = self.kind
        if kind is Kind.REQUIRED_FLAG:
            return a or b
        if kind is Kind.ALLOWED_FLAG:
            return a and b
        if kind is Kind.MAX_DURATION:
            return b if a is None else a if b is None else min(a, b)
        if kind is Kind.DOMAIN_SET:
            # None is "any domain"; an empty set (two lists with nothing in common) is "none".
            return b if a is None else a if b is None else a & b
        if kind is Kind.MAX_COUNT:
            return min(a, b)
        return a if a.rank >= b.rank else b

    def to_json(self, value: Any) -> Any:
        if self.kind is Kind.DOMAIN_SET:
            return None if value is None else sorted(value)
        if self.kind is Kind.MIN_ROLE:
            return value.value
        return value

    def from_json(self, stored: Any) -> Any:
        """The value of what ``to_json`` stored (already validated when it was written)."""
        if self.kind is Kind.DOMAIN_SET:
            return None if stored is None else frozenset(stored)
        if self.kind is Kind.MIN_ROLE:
            return Role(stored)
        return stored


def _bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise TypeError("must be true or false")
    return raw


def _duration(raw: Any) -> int | None:
    """Seconds, from a number of seconds or ``"30m"``/``"12h"``/``"7d"``; null: no limit."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise TypeError('must be a duration such as 3600, "30m", "12h" or "7d"')
    if isinstance(raw, int):
        seconds = raw
    elif isinstance(raw, str) and (match := _DURATION.match(raw)):
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError('must be a duration such as 3600, "30m", "12h" or "7d"')
    if not 60 <= seconds <= MAX_DURATION:
        raise ValueError("must be from 1 minute to 366 days")
    return seconds


def _domains(raw: Any) -> frozenset[str] | None:
    """A list of domains; an empty list or null means any domain."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
        raise TypeError("must be a list of domains")
    if len(raw) > MAX_DOMAINS:
        raise ValueError(f"at most {MAX_DOMAINS} domains")
    return frozenset(normalize_domain(d) for d in raw) or None


def _count(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError("must be a whole number")
    if not 1 <= raw <= MAX_COUNT:
        raise ValueError("must be from 1 to 1,000,000")
    return raw


def _role(raw: Any) -> Role:
    try:
        return Role(raw)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(r.value for r in Role)}") from None


_PARSERS = {
    Kind.REQUIRED_FLAG: _bool,
    Kind.ALLOWED_FLAG: _bool,
    Kind.MAX_DURATION: _duration,
    Kind.DOMAIN_SET: _domains,
    Kind.MAX_COUNT: _count,
    Kind.MIN_ROLE: _role,
}

KEYS: dict[str, PolicyKey] = {
    key.name: key
    for key in (
        PolicyKey(
            "sso_required",
            Kind.REQUIRED_FLAG,
            False,
            "members sign in through the org's connection only",
        ),
        PolicyKey(
            "mfa_required",
            Kind.REQUIRED_FLAG,
            False,
            "the IdP must assert multi-factor authentication",
        ),
        PolicyKey(
            "session_max_age",
            Kind.MAX_DURATION,
            None,  # no limit but the session's own lifetime (GATEHOUSE_SESSION_HOURS)
            "a session ends this long after sign-in",
        ),
        PolicyKey(
            "session_idle_timeout", Kind.MAX_DURATION, None, "a session ends after this long unused"
        ),
        PolicyKey(
            "allowed_email_domains", Kind.DOMAIN_SET, None, "members' email domains (empty: any)"
        ),
        PolicyKey(
            "idp_initiated_login", Kind.ALLOWED_FLAG, True, "unsolicited SAML responses may sign in"
        ),
        PolicyKey(
            "jit_provisioning", Kind.ALLOWED_FLAG, True, "a first SSO login may create the member"
        ),
        PolicyKey(
            "external_invites",
            Kind.ALLOWED_FLAG,
            True,
            "invitations to addresses outside the org's domains",
        ),
        PolicyKey("invite_links", Kind.ALLOWED_FLAG, True, "shareable invitation links"),
        PolicyKey(
            "invite_link_max_age",
            Kind.MAX_DURATION,
            90 * 86400,  # what invitations could always last (orgs.invitations.MAX_TTL)
            "the longest an invitation link may last",
        ),
        # A ceiling over every org's own member_cap (500 unless set): none by default.
        PolicyKey("member_cap", Kind.MAX_COUNT, MAX_COUNT, "the most active members"),
        PolicyKey(
            "min_role_to_invite", Kind.MIN_ROLE, Role.ADMIN, "the lowest role that may invite"
        ),
    )
}


def policy_key(name: str) -> PolicyKey:
    key = KEYS.get(name)
    if key is None:
        raise BadRequest("unknown_policy_key", f"No policy key {name!r}", key=name)
    return key


def parse_policy(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A policy document (key → JSON value) parsed and validated, key by key."""
    return {name: policy_key(name).parse(value) for name, value in raw.items()}


def load_stored(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored document (JSON form) as values; keys no longer in the registry are ignored."""
    return {name: KEYS[name].from_json(v) for name, v in (stored or {}).items() if name in KEYS}


def dump_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values in their stored (JSON) form."""
    return {name: KEYS[name].to_json(value) for name, value in values.items()}


class Policy(Mapping[str, Any]):
    """Every key's value, defaults filled in; ``policy.session_max_age`` reads one key."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        given = values or {}
        self._values = {name: given.get(name, key.default) for name, key in KEYS.items()}

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> Policy:
        return cls(load_stored(stored))

    def to_json(self) -> dict[str, Any]:
        return dump_values(self._values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class Level:
    """One link of the chain: who sets it (``workspace`` or an org slug) and its overrides.
    The baseline's values replace the registry's defaults (which are only what the baseline
    holds until it says otherwise); every other level can only tighten what it inherits."""

    source: str
    values: Mapping[str, Any]  # parsed
    baseline: bool = False


@dataclass(frozen=True)
class Explained:
    """A key's effective value, where it came from, and the overrides it supersedes."""

    value: Any
    source: str
    superseded: tuple[str, ...] = ()


def effective(chain: Iterable[Level]) -> dict[str, Explained]:
    """The strictest value of every key along ``chain`` (the baseline first, the org last).
    A level whose value is not (wholly) in force is reported as superseded: looser than what
    it inherits, or a domain list of which only the part also inherited holds."""
    levels = list(chain)
    result: dict[str, Explained] = {}
    for name, key in KEYS.items():
        current = Explained(key.default, "default")
        for level in levels:
            if name not in level.values:
                continue
            value = level.values[name]
            if level.baseline and current.source == "default":
                current = Explained(value, level.source)
                continue
            merged = key.strictest(current.value, value)
            if merged == value == current.value:
                # Restating what it inherits (or the default): the value is the level's own.
                source = level.source if current.source == "default" else current.source
                current = Explained(merged, source, current.superseded)
            elif merged == current.value:
                current = Explained(merged, current.source, (*current.superseded, level.source))
            elif merged == value:
                current = Explained(merged, level.source, current.superseded)
            else:  # two domain lists: only their common part is in force
                current = Explained(merged, level.source, (*current.superseded, level.source))
        result[name] = current
    return result


def check_override(name: str, inherited: Any, requested: Any) -> None:
    """Refuse an override looser than what it inherits (422 ``policy_looser_than_inherited``)."""
    key = policy_key(name)
    if not key.at_least_as_strict(requested, inherited):
        raise PolicyLooserThanInherited(name, key.to_json(inherited), key.to_json(requested))
