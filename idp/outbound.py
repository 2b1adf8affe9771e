"""Outbound HTTP with a destination guard: every call Gatehouse makes to a URL someone else
chose (IdP metadata, discovery, JWKS, token endpoints; later webhooks and back-channel
logouts) goes through ``fetch``.

The host is resolved once; the request is refused before any connection if ANY of its
addresses is loopback, link-local, private, CGNAT, multicast, unspecified, reserved or
documentation space (the IANA special-purpose registries, RFC 6890 and successors), or an
IPv6 form wrapping one (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo). The connection
then goes to that vetted address and no other (no DNS rebinding between check and
connect), with SNI and certificate verification for the host name of the URL. Redirects are
never followed; the body is capped in size and the whole exchange in time.

Every failure to reach or read the peer is one ``Unreachable`` without detail, so a caller's
answer cannot tell an open port from a closed one; the reason is logged (host only, since a
URL's path or query may carry a key).
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import math
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import certifi
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import idna

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_BYTES = 1_000_000


class OutboundError(Exception):
    """A call that was not made, or did not complete."""


class InvalidUrl(OutboundError):
    """The URL cannot be called: not http(s), no host, userinfo, a bad port or host."""


class NotAllowed(OutboundError):
    """The destination is one Gatehouse does not call; nothing was connected to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # for logs only: which rule refused


class Unreachable(OutboundError):
    """The peer could not be reached or read: one error for every cause, on purpose."""

    def __init__(self, reason: str = "") -> None:
        super().__init__("unreachable")
        self.reason = reason  # for logs only


# --- which addresses -----------------------------------------------------------------------

# What "private" means for the allow-list's host names: the ranges an on-premise IdP uses.
_PRIVATE_USE = "private"
# IANA IPv4 / IPv6 Special-Purpose Address Registries (RFC 6890 §2.2, with later additions);
# the first match names the rule that refused an address.
_SPECIAL: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), name)
    for net, name in (
        ("0.0.0.0/8", "unspecified"),  # RFC 791 "this network", 0.0.0.0 included
        ("10.0.0.0/8", _PRIVATE_USE),  # RFC 1918
        ("100.64.0.0/10", _PRIVATE_USE),  # RFC 6598 shared address space (CGNAT)
        ("127.0.0.0/8", "loopback"),  # RFC 1122 §3.2.1.3
        ("169.254.0.0/16", "link-local"),  # RFC 3927; cloud metadata services live here
        ("172.16.0.0/12", _PRIVATE_USE),  # RFC 1918
        ("192.0.0.0/24", "reserved"),  # RFC 6890 IETF protocol assignments
        ("192.0.2.0/24", "documentation"),  # RFC 5737
        ("192.88.99.0/24", "reserved"),  # RFC 7526 deprecated 6to4 relay anycast
        ("192.168.0.0/16", _PRIVATE_USE),  # RFC 1918
        ("198.18.0.0/15", "reserved"),  # RFC 2544 benchmarking
        ("198.51.100.0/24", "documentation"),  # RFC 5737
        ("203.0.113.0/24", "documentation"),  # RFC 5737
        ("224.0.0.0/4", "multicast"),  # RFC 5771
        ("255.255.255.255/32", "broadcast"),  # RFC 919
        ("240.0.0.0/4", "reserved"),  # RFC 1112 §4
        ("::1/128", "loopback"),  # RFC 4291 §2.5.3
        ("::/128", "unspecified"),  # RFC 4291 §2.5.2
        ("::ffff:0:0/96", "ipv4-mapped"),  # RFC 4291 §2.5.5.2: never on the wire
        ("::/8", "reserved"),  # RFC 4291: IPv4-compatible (deprecated) and unassigned
        ("100::/64", "reserved"),  # RFC 6666 discard-only
        ("2001::/32", "teredo"),  # RFC 4380: hides an IPv4 address, not an IdP's
        ("2001::/23", "reserved"),  # RFC 2928 IETF protocol assignments
        ("2001:db8::/32", "documentation"),  # RFC 3849
        ("3fff::/20", "documentation"),  # RFC 9637
        ("5f00::/16", "reserved"),  # RFC 9602 SRv6 SIDs
        ("fc00::/7", _PRIVATE_USE),  # RFC 4193 unique local
        ("fe80::/10", "link-local"),  # RFC 4291 §2.5.6
        ("fec0::/10", "reserved"),  # RFC 3879 deprecated site-local
        ("ff00::/8", "multicast"),  # RFC 4291 §2.7
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 §2.1 well-known prefix


@dataclass(frozen=True)
class Policy:
    """Where ``fetch`` may go, beyond the public internet."""

    # GATEHOUSE_ALLOW_HTTP_LOOPBACK: 127.0.0.0/8 and ::1 (over http or https); nothing else.
    allow_loopback: bool = False
    # GATEHOUSE_OUTBOUND_ALLOW: a CIDR admits every address in it; a host name may reach
    # private-use addresses (RFC 1918, RFC 6598, RFC 4193) only.
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    # GATEHOUSE_DNS_RESOLVER: resolve through these servers (dnspython) instead of the system.
    nameservers: tuple[tuple[str, int], ...] = ()
    dns_timeout: float = 3.0
    # GATEHOUSE_OUTBOUND_CA_FILE: more CAs trusted for https (an on-premise AD FS's own CA).
    ca_file: str = ""


def policy_from_settings(settings: Any) -> Policy:
    """The policy the running configuration sets (``idp.config.Settings``)."""
    from idp.config import parse_nameservers, parse_outbound_allow

    hosts, networks = parse_outbound_allow(settings.outbound_allow)
    return Policy(
        allow_loopback=settings.allow_http_loopback,
        allowed_networks=networks,
        allowed_hosts=hosts,
        nameservers=tuple(parse_nameservers(settings.dns_resolver)),
        dns_timeout=float(settings.dns_timeout),
        ca_file=settings.outbound_ca_file,
    )


def is_loopback(address: IPAddress) -> bool:
    """127.0.0.0/8 or ::1 as such (not an IPv6 form wrapping an IPv4 loopback address)."""
    return address.is_loopback and (address.version == 4 or address == ipaddress.IPv6Address(1))


def refusal(address: IPAddress, host: str, policy: Policy) -> str | None:
    """Why ``address`` (an answer for ``host``) may not be called, or None if it may."""
    if any(address in network for network in policy.allowed_networks):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        # NAT64 and 6to4 carry an IPv4 address a gateway would reach: judge that one, and
        # never as loopback (it would be the gateway's own).
        embedded = None
        if address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.sixtofour is not None:
            embedded = address.sixtofour
        if embedded is not None:
            inner = refusal(embedded, host, Policy(allowed_hosts=policy.allowed_hosts))
            return None if inner is None else f"{inner} (embedded in {address})"
    if policy.allow_loopback and is_loopback(address):
        return None
    for network, name in _SPECIAL:
        if address in network:
            if name == _PRIVATE_USE and host in policy.allowed_hosts:
                return None
            return name
    # Belt and braces: whatever else Python's copy of the registries calls non-global.
    return None if address.is_global else "not global"


# --- which host ----------------------------------------------------------------------------

_NUMBER = r"(?:0x[0-9a-f]*|[0-9]+)"
_IPV4_NUMERIC = re.compile(rf"{_NUMBER}(?:\.{_NUMBER}){{0,3}}")
_LAST_LABEL_NUMERIC = re.compile(rf"(?:^|\.){_NUMBER}$")


@dataclass(frozen=True)
class Target:
    """A URL taken apart: what is resolved, what is connected to, what the request says."""

    scheme: str
    host: str  # ASCII, lowercase, no trailing dot; an IP address in its canonical form
    port: int
    path: str  # path and query, as sent in the request line
    literal: IPAddress | None  # the host, if it is an IP address in any spelling

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


def parse_url(url: str) -> Target:
    """The target of ``url``; every spelling of an IP address reduced to that address."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, TypeError, AttributeError):
        raise InvalidUrl("not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidUrl("not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidUrl("userinfo in URL")
    if port == 0 or re.search(r"[\s\\]", url):
        raise InvalidUrl("bad port or whitespace")
    host, literal = normalize_host(parts.hostname)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path, literal
    )


def normalize_host(raw: str) -> tuple[str, IPAddress | None]:
    """(ASCII host, its IP address if it is one): IDNA (UTS #46) for names, and the IPv4
    spellings the resolver would accept (``127.1``, ``2130706433``, ``0x7f000001``,
    ``0177.0.0.1``) read as the addresses they are, as the URL Standard's host parser does."""
    if ":" in raw:  # urlsplit strips the brackets of an IPv6 literal
        try:
            address = ipaddress.IPv6Address(raw)
        except ValueError:
            raise InvalidUrl("bad IPv6 literal") from None
        return str(address), address
    try:
        host = idna.encode(raw.rstrip("."), uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        raise InvalidUrl("bad host name") from None
    if _LAST_LABEL_NUMERIC.search(host):
        # URL Standard §3.5: a host whose last label is a number is an IPv4 address or
        # invalid; inet_aton reads decimal, octal and hex parts and the short forms.
        if not _IPV4_NUMERIC.fullmatch(host):
            raise InvalidUrl("bad IPv4 address")
        try:
            v4 = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise InvalidUrl("bad IPv4 address") from None
        return str(v4), v4
    return host, None


# --- resolution ----------------------------------------------------------------------------


def resolve(target: Target, policy: Policy, timeout: float) -> list[IPAddress]:
    """Every address of the target's host (an IP literal is its own)."""
    if target.literal is not None:
        return [target.literal]
    if target.host == "localhost" or target.host.endswith(".localhost"):
        # RFC 6761 §6.3: loopback, whatever any DNS server says.
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    if policy.nameservers:
        return _resolve_dns(target.host, policy, min(timeout, policy.dns_timeout))
    return _resolve_system(target.host, target.port, timeout)


def _resolve_dns(host: str, policy: Policy, timeout: float) -> list[IPAddress]:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, p) for ip, p in policy.nameservers]
    resolver.cache = None
    resolver.timeout = resolver.lifetime = timeout
    addresses: list[IPAddress] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            answer = resolver.resolve(f"{host}.", rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            break
        except (dns.exception.DNSException, OSError) as exc:
            raise Unreachable(f"DNS: {type(exc).__name__}") from None
        addresses += [ipaddress.ip_address(r.address) for r in answer.rrset or ()]
    return addresses


def _resolve_system(host: str, port: int, timeout: float) -> list[IPAddress]:
    """getaddrinfo, bounded in time: it has no timeout of its own."""
    found: list[Any] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            found.append(exc)

    worker = threading.Thread(target=lookup, name="outbound-resolve", daemon=True)
    worker.start()
    worker.join(timeout)
    if not found or isinstance(found[0], BaseException):
        raise Unreachable("DNS: no answer")
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in found[0]:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    return addresses


def vet(url: str, policy: Policy, timeout: float = 5.0) -> tuple[Target, list[IPAddress]]:
    """The target and its addresses, if every one of them may be called; connects nowhere."""
    target = parse_url(url)
    addresses = resolve(target, policy, timeout)
    if not addresses:
        raise Unreachable(f"{target.host}: DNS gave no address")
    for address in addresses:
        reason = refusal(address, target.host, policy)
        if reason is not None:
            raise NotAllowed(f"{target.host}: {reason}")
    if target.scheme == "http" and not (
        policy.allow_loopback and all(is_loopback(a) for a in addresses)
    ):
        # The deployment contract: plain http only to a local IdP when allowed.
        raise NotAllowed(f"{target.host}: plain http off loopback")
    return target, addresses


# --- the connection ------------------------------------------------------------------------


class _Deadline:
    """Each socket operation waits no longer than the read timeout, nor past the deadline."""

    _deadline = math.inf
    _io_timeout = math.inf

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.settimeout(min(self._io_timeout, remaining))  # type: ignore[attr-defined]


class _DeadlineSocket(_Deadline, socket.socket):
    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return super().recv_into(buffer, nbytes, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        super().sendall(data, flags)


class _DeadlineSSLSocket(_Deadline, ssl.SSLSocket):
    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        self._arm()
        return super().recv_into(buffer, nbytes, flags)  # type: ignore[arg-type]

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        super().sendall(data, flags)


@lru_cache(maxsize=8)
def _tls_context(ca_file: str) -> ssl.SSLContext:
    """Verification on: the system's CAs, Mozilla's (certifi, as requests used), and ours."""
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    if ca_file:
        context.load_verify_locations(ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = _DeadlineSSLSocket
    return context


class _PinnedConnection(http.client.HTTPConnection):
    """http.client, connected to one vetted address; TLS names the URL's host (SNI) and
    verifies the certificate against it, whatever the address."""

    def __init__(
        self,
        target: Target,
        address: IPAddress,
        *,
        connect_timeout: float,
        read_timeout: float,
        deadline: float,
        context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(target.host, target.port, timeout=read_timeout)
        self._target, self._address, self._context = target, address, context
        self._connect_timeout, self._read_timeout, self._deadline = (
            connect_timeout,
            read_timeout,
            deadline,
        )

    def connect(self) -> None:
        family = socket.AF_INET6 if self._address.version == 6 else socket.AF_INET
        sock = _DeadlineSocket(family, socket.SOCK_STREAM)
        try:
            sock._deadline, sock._io_timeout = self._deadline, self._connect_timeout
            sock._arm()
            sock.connect((str(self._address), self._target.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock._arm()  # the handshake as a whole is bounded by this timeout
                tls = self._context.wrap_socket(sock, server_hostname=self._target.host)
                tls._deadline, tls._io_timeout = self._deadline, self._read_timeout
                self.sock = tls
            else:
                sock._io_timeout = self._read_timeout
                self.sock = sock
        except BaseException:
            sock.close()
            raise


@dataclass(frozen=True)
class Response:
    """What the peer answered; a redirect is an answer like any other, never followed."""

    status: int
    headers: Mapping[str, str]  # names lowercased
    body: bytes


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    connect_timeout: float = 5.0,
    read_timeout: float = 5.0,
    deadline: float = 10.0,
    policy: Policy | None = None,
) -> Response:
    """One request to ``url`` through the guard: vetted, pinned, unredirected, bounded.

    Raises ``InvalidUrl`` or ``NotAllowed`` before connecting anywhere, ``Unreachable`` for
    every failure after (DNS, connect, TLS, HTTP, a body over ``max_bytes``, a peer slower
    than ``read_timeout`` per read or ``deadline`` seconds in all).
    """
    if policy is None:
        from idp.config import current_settings

        policy = policy_from_settings(current_settings())
    end = time.monotonic() + deadline
    try:
        target, addresses = vet(url, policy, timeout=min(connect_timeout, deadline))
    except Unreachable as failure:
        log.info("outbound: %s %s", method, failure.reason)
        raise
    try:
        return _exchange(
            target,
            addresses,
            method,
            {**headers} if headers else {},
            body,
            max_bytes=max_bytes,
            end=end,
            policy=policy,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
    except (OSError, http.client.HTTPException, zlib.error, ValueError) as exc:
        log.info("outbound: %s %s failed: %s", method, target.host, type(exc).__name__)
        raise Unreachable(type(exc).__name__) from None


def _exchange(
    target: Target,
    addresses: Iterable[IPAddress],
    method: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    max_bytes: int,
    end: float,
    policy: Policy,
    connect_timeout: float,
    read_timeout: float,
) -> Response:
    context = _tls_context(policy.ca_file) if target.scheme == "https" else None
    request_headers = {
        "Host": target.host_header,
        "User-Agent": "Gatehouse",
        "Accept-Encoding": "identity",
        "Connection": "close",
        **headers,
    }
    last: BaseException = OSError("no address")
    for address in addresses:
        connection = _PinnedConnection(
            target,
            address,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            deadline=end,
            context=context,
        )
        try:
            try:
                connection.connect()
            except (ssl.SSLError, ssl.CertificateError):
                raise  # a certificate is about the host, not this one address
            except OSError as exc:
                last = exc
                continue  # the next address of the same host, within the same deadline
            connection.request(method, target.path, body=body, headers=request_headers)
            response = connection.getresponse()
            data = _read_body(response, max_bytes)
            return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            connection.close()
    raise last


def _read_body(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    """The body, decoded if the peer compressed it anyway, never more than ``max_bytes``."""
    data = bytearray()
    while chunk := response.read1(min(65536, max_bytes + 1 - len(data))):
        data += chunk
        if len(data) > max_bytes:
            raise ValueError("body over the limit")
    if response.length:  # read1 ends quietly at EOF; a body shorter than announced is cut
        raise http.client.IncompleteRead(bytes(data), response.length)
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding == "identity":
        return bytes(data)
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ValueError("unknown content coding")
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    decoded = inflater.decompress(bytes(data), max_bytes + 1)
    if len(decoded) > max_bytes or inflater.unconsumed_tail:
        raise ValueError("decoded body over the limit")
    return decoded
