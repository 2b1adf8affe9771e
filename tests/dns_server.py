"""A small authoritative DNS server on loopback, for tests that verify domains for real.

It answers over UDP and TCP on one port of 127.0.0.1 (a resolver retries over TCP when the
UDP answer is truncated, RFC 1035 §4.2.1), serving the TXT records a test sets and NXDOMAIN
for every other name; A and AAAA records too, optionally a different answer on each query
(DNS rebinding). ``mode`` makes it fail: ``silent`` never answers (timeouts),
``servfail`` answers SERVFAIL; ``modes`` does the same for single names.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import threading
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT

UDP_LIMIT = 512  # without EDNS (RFC 1035 §2.3.4); dnspython's resolver sends none by default
TTL = 60


class DnsServer:
    def __init__(self) -> None:
        # name (lowercase, no trailing dot) → its TXT records, each a list of character-strings;
        # a name with an empty list exists without TXT records.
        self.records: dict[str, list[list[bytes]]] = {}
        # name → its address answers in turn: the n-th A (or AAAA) query gets the n-th set,
        # the last set repeated once they run out.
        self.addresses: dict[str, list[list[str]]] = {}
        self._served: dict[tuple[str, int], int] = {}
        self.mode = "answer"
        self.modes: dict[str, str] = {}  # name → mode, over ``mode``
        self.queries: list[tuple[str, str, str]] = []  # (name, type, "udp" or "tcp")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._udp, self._tcp = _bind_pair()
        self.port = self._udp.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="dns-server", daemon=True)

    @property
    def address(self) -> str:
        """The ``GATEHOUSE_DNS_RESOLVER`` value pointing at this server."""
        return f"127.0.0.1:{self.port}"

    def set_txt(self, name: str, *records: str | list[str]) -> None:
        """Publish TXT records at ``name``; a list is one record made of several strings."""
        with self._lock:
            self.records[name.lower().rstrip(".")] = [
                [part.encode() for part in ([r] if isinstance(r, str) else r)] for r in records
            ]

    def set_addresses(self, name: str, *answers: list[str]) -> None:
        """Publish A/AAAA records at ``name``: one list of addresses per answer, in turn."""
        key = name.lower().rstrip(".")
        with self._lock:
            self.addresses[key] = [list(a) for a in answers]
            self._served = {k: v for k, v in self._served.items() if k[0] != key}

    def address_queries(self, name: str) -> int:
        """How many A and AAAA questions were asked about ``name``."""
        with self._lock:
            return sum(1 for n, t, _ in self.queries if n == name and t in ("A", "AAAA"))

    def reset(self) -> None:
        with self._lock:
            self.addresses.clear()
            self._served.clear()
            self.records.clear()
            self.queries.clear()
            self.modes.clear()
            self.mode = "answer"

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._udp.close()
        self._tcp.close()

    # --- serving ----------------------------------------------------------------------------

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ)
            selector.register(self._tcp, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    if key.fileobj is self._udp:
                        self._serve_udp()
                    else:
                        self._serve_tcp()

    def _serve_udp(self) -> None:
        try:
            data, peer = self._udp.recvfrom(65535)
        except OSError:
            return
        wire = self._answer(data, "udp")
        if wire is not None:
            with contextlib.suppress(OSError):
                self._udp.sendto(wire, peer)

    def _serve_tcp(self) -> None:
        try:
            conn, _ = self._tcp.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(2)
            try:
                length = int.from_bytes(_read_exactly(conn, 2), "big")
                wire = self._answer(_read_exactly(conn, length), "tcp")
                if wire is not None:
                    conn.sendall(len(wire).to_bytes(2, "big") + wire)
            except OSError:
                return

    def _answer(self, data: bytes, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        with self._lock:
            self.queries.append((name, dns.rdatatype.to_text(question.rdtype), transport))
            mode, records = self.modes.get(name, self.mode), self.records.get(name)
            records = None if records is None else [list(r) for r in records]
            addresses: list[str] | None = None
            if name in self.addresses:
                records = records or []  # the name exists
                if question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    answers = self.addresses[name]
                    served = self._served.get((name, question.rdtype), 0)
                    self._served[(name, question.rdtype)] = served + 1
                    addresses = answers[min(served, len(answers) - 1)] if answers else []
        if mode == "silent":
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and records:
            rrset = response.find_rrset(
                response.answer,
                question.name,
                dns.rdataclass.IN,
                dns.rdatatype.TXT,
                create=True,
            )
            for strings in records:
                rrset.add(TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings), TTL)
        elif addresses:
            version = 4 if question.rdtype == dns.rdatatype.A else 6
            wanted = [a for a in addresses if ipaddress.ip_address(a).version == version]
            if wanted:
                rdtype = dns.rdatatype.to_text(question.rdtype)
                response.answer.append(
                    dns.rrset.from_text_list(question.name, TTL, "IN", rdtype, wanted)
                )
        limit = 65535 if transport == "tcp" else max(UDP_LIMIT, query.payload or 0)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on the same free loopback port."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp
    raise RuntimeError("no free port for both UDP and TCP on 127.0.0.1")
