"""DNS TXT lookups through the configured resolver (``GATEHOUSE_DNS_RESOLVER``), never cached."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver


class Outcome(StrEnum):
    FOUND = "found"  # the name has TXT records
    NO_DATA = "no_data"  # the name exists without TXT records
    NXDOMAIN = "nxdomain"  # no such name
    TIMEOUT = "timeout"  # no answer within the lifetime
    UNAVAILABLE = "unavailable"  # every server failed (SERVFAIL, REFUSED, unreachable)


@dataclass(frozen=True)
class TxtAnswer:
    name: str
    outcome: Outcome
    # One entry per TXT record, its character-strings joined (RFC 1035 §3.3.14 allows several).
    texts: tuple[bytes, ...] = ()

    @property
    def is_unavailable(self) -> bool:
        return self.outcome in (Outcome.TIMEOUT, Outcome.UNAVAILABLE)


def lookup_txt(
    names: list[str], nameservers: list[tuple[str, int]], timeout: float
) -> list[TxtAnswer]:
    """The TXT records at each of ``names``, asked of ``nameservers`` (or the system's)."""
    try:
        resolver = _make_resolver(nameservers, timeout)
    except (dns.exception.DNSException, OSError):  # no usable system configuration
        return [TxtAnswer(name, Outcome.UNAVAILABLE) for name in names]
    return [_lookup(resolver, name) for name in names]


def _make_resolver(nameservers: list[tuple[str, int]], timeout: float) -> dns.resolver.Resolver:
    """A fresh resolver without a cache, so no answer outlives the request."""
    resolver = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in nameservers]
    resolver.cache = None
    resolver.timeout = resolver.lifetime = timeout
    return resolver


def _lookup(resolver: dns.resolver.Resolver, name: str) -> TxtAnswer:
    """The TXT records at the absolute ``name`` (no search list); never raises."""
    try:
        qname = dns.name.from_text(name)
    except dns.exception.DNSException:
        return TxtAnswer(name, Outcome.NXDOMAIN)  # too long a name to exist
    try:
        answer = resolver.resolve(qname, dns.rdatatype.TXT, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return TxtAnswer(name, Outcome.NXDOMAIN)
    except dns.exception.Timeout:
        return TxtAnswer(name, Outcome.TIMEOUT)
    except (dns.exception.DNSException, OSError):
        return TxtAnswer(name, Outcome.UNAVAILABLE)
    if answer.rrset is None:
        return TxtAnswer(name, Outcome.NO_DATA)
    return TxtAnswer(name, Outcome.FOUND, tuple(b"".join(r.strings) for r in answer.rrset))
