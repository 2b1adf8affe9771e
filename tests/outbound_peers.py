"""Real servers on loopback for the outbound guard's tests: a listener that counts what it
accepts, and an HTTP(S) server whose answers a test scripts (status, size, pace, garbage).
Certificates come from a throwaway CA made here."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Every spelling of an internal destination; {port} is a real listener on 127.0.0.1.
ATTACK_SPELLINGS = [
    "https://127.0.0.1:{port}/",
    "https://localhost:{port}/",
    "https://LOCALHOST:{port}/",
    "https://localhost.:{port}/",
    "https://idp.localhost:{port}/",
    "https://[::1]:{port}/",
    "https://[0:0:0:0:0:0:0:1]:{port}/",
    "https://127.1:{port}/",
    "https://127.0.1:{port}/",
    "https://2130706433:{port}/",
    "https://0x7f000001:{port}/",
    "https://0X7F000001:{port}/",
    "https://0x7f.1:{port}/",
    "https://0177.0.0.1:{port}/",
    "https://017700000001:{port}/",
    "https://127.0.0.1.:{port}/",
    "https://127.0.0.2:{port}/",
    # Fullwidth digits: IDNA (UTS #46) maps them to ASCII.
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/",
    "https://[::ffff:127.0.0.1]:{port}/",
    "https://[::ffff:7f00:1]:{port}/",
    "https://[::127.0.0.1]:{port}/",  # IPv4-compatible (deprecated)
    "https://[64:ff9b::127.0.0.1]:{port}/",  # NAT64
    "https://[2002:7f00:1::1]:{port}/",  # 6to4
    "https://0.0.0.0:{port}/",
    "https://0:{port}/",
    "https://[::]:{port}/",
    "https://169.254.169.254:{port}/",
    "https://[::ffff:169.254.169.254]:{port}/",
    "https://[fe80::1]:{port}/",
    "https://10.0.0.5:{port}/",
    "https://172.16.0.1:{port}/",
    "https://192.168.1.1:{port}/",
    "https://012.0.0.5:{port}/",  # octal 10.0.0.5
    "https://100.64.0.1:{port}/",
    "https://[fd00::1]:{port}/",
    "https://[fc00::1]:{port}/",
    "https://224.0.0.1:{port}/",
    "https://[ff02::1]:{port}/",
    "https://255.255.255.255:{port}/",
    "https://240.0.0.1:{port}/",
    "https://192.0.2.1:{port}/",
    "https://198.51.100.1:{port}/",
    "https://203.0.113.1:{port}/",
    "https://[2001:db8::1]:{port}/",
    "https://198.18.0.1:{port}/",
    "https://[2001::1]:{port}/",  # Teredo
    "https://[fec0::1]:{port}/",
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
]
# Host names whose DNS answers are internal (resolved through the test DNS server).
DNS_ATTACKS = {
    "loopback.attacker.test": [["127.0.0.1"]],
    "v6-loopback.attacker.test": [["::1"]],
    "mapped.attacker.test": [["::ffff:127.0.0.1"]],
    "metadata.attacker.test": [["169.254.169.254"]],
    "private.attacker.test": [["10.0.0.5"]],
    "one-bad-of-two.attacker.test": [["8.8.8.8", "127.0.0.1"]],
    "nat64.attacker.test": [["64:ff9b::a00:5"]],
    "Mixed-Case.Attacker.Test": [["127.0.0.1"]],
}


# What a server sends: bytes, or a float meaning "wait this many seconds".
Script = Iterable[bytes | float]
Responder = Callable[[bytes], Script]


def http_answer(
    status: int = 200, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
) -> list[bytes | float]:
    """A whole HTTP/1.1 answer with a Content-Length."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return [("\r\n".join(lines) + "\r\n\r\n").encode() + body]


class Server:
    """A TCP server on ``host``; with no responder it accepts and closes (a port that is
    open but speaks nothing), counting every connection."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.responder, self.host, self.tls = responder, host, tls
        self.accepted = 0
        self.requests: list[bytes] = []  # the request heads and bodies, as received
        self.server_names: list[str | None] = []  # SNI of each TLS handshake
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        if tls is not None:
            tls.sni_callback = self._record_sni
        self._thread = threading.Thread(target=self._serve, name="outbound-peer", daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        with self._lock:
            self.server_names.append(name)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            if self.responder is None:
                return
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            request = _read_request(conn)
            with self._lock:
                self.requests.append(request)
            for part in self.responder(request):
                if isinstance(part, float):
                    if self._stop.wait(part):
                        return
                else:
                    conn.sendall(part)
        except OSError:
            return  # the client went away, or refused our certificate
        finally:
            conn.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def twin_servers(
    first: Callable[[int], Server], second: Callable[[int], Server]
) -> tuple[Server, Server]:
    """Two servers on the same port of two addresses (``first`` picks the port)."""
    for _ in range(20):
        one = first(0)
        try:
            return one, second(one.port)
        except OSError:
            one._sock.close()
    raise RuntimeError("no port free on both addresses")


# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    _ca_key: ec.EllipticCurvePrivateKey
    _ca_cert: x509.Certificate
    directory: Path

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for ``names`` from this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                critical=False,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        stem = self.directory / f"server-{x509.random_serial_number()}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


def make_pki(directory: Path) -> Pki:
    """A throwaway CA; its certificate in ``directory/ca.pem``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gatehouse test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Pki(ca_file, key, cert, directory)


def idp_metadata(entity_id: str, sso_url: str, cert_pem: str) -> bytes:
    """A minimal SAML 2.0 IdP metadata document (SAML Metadata §2.4.3)."""
    body = "".join(cert_pem.strip().splitlines()[1:-1])
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{body}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="{sso_url}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
""".encode()
