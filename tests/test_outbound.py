"""The outbound guard (idp/outbound.py): which destinations are refused, in every spelling,
before any connection; that the connection goes to the vetted address only, with TLS for the
URL's host; no redirects; size and time caps. Real servers on loopback, a real DNS server."""

from __future__ import annotations

import gzip
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from idp import outbound
from idp.config import ConfigError, load_settings, parse_outbound_allow
from tests.dns_server import DnsServer
from tests.outbound_peers import (
    ATTACK_SPELLINGS,
    DNS_ATTACKS,
    Pki,
    Server,
    http_answer,
    twin_servers,
)


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


def dns_policy(dns: DnsServer, **options: object) -> outbound.Policy:
    return outbound.Policy(nameservers=(("127.0.0.1", dns.port),), dns_timeout=1, **options)  # type: ignore[arg-type]


# --- refusals (no network needed: nothing is connected to) ------------------------------


@pytest.mark.parametrize("spelling", ATTACK_SPELLINGS)
def test_every_spelling_of_an_internal_address_is_refused(spelling: str) -> None:
    with pytest.raises(outbound.NotAllowed):
        outbound.vet(spelling.format(port=8443), outbound.Policy())


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/",
        "https://[2606:4700::1111]/",
        "https://[64:ff9b::808:808]/",  # NAT64 of a public address
        "https://[2002:808:808::1]/",  # 6to4 of a public address
        "https://134744072/",  # 8.8.8.8 as one number: spelling changes nothing
    ],
)
def test_public_addresses_pass(url: str) -> None:
    _, addresses = outbound.vet(url, outbound.Policy())
    assert len(addresses) == 1 and addresses[0].is_global


@pytest.mark.parametrize(
    "url",
    [
        "ftp://idp.example/",
        "file:///etc/passwd",
        "https://user:pw@idp.example/",
        "https://999.1/",
        "https://1.2.3.4.5/",
        "https://idp.example.0x10/",
        "https://%31%32%37.0.0.1/",
        "https://idp.example:0/",
        "https://idp.example:99999/",
        "https://idp example/",
        "https:///path",
    ],
)
def test_urls_that_are_not_callable_are_invalid(url: str) -> None:
    with pytest.raises(outbound.InvalidUrl):
        outbound.vet(url, outbound.Policy())


def test_allow_loopback_admits_loopback_only() -> None:
    policy = outbound.Policy(allow_loopback=True)
    for url in ("http://127.0.0.1/", "https://localhost/", "https://[::1]/", "http://127.1/"):
        outbound.vet(url, policy)
    for url in (
        "https://10.0.0.5/",
        "https://169.254.169.254/",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::7f00:1]/",  # a NAT64 gateway's own loopback is not ours
        "https://0.0.0.0/",
        "http://8.8.8.8/",  # plain http stays loopback-only
    ):
        with pytest.raises(outbound.NotAllowed):
            outbound.vet(url, policy)


def test_an_allowed_network_admits_exactly_its_addresses() -> None:
    hosts, networks = parse_outbound_allow("10.0.0.5/32, fd12::/16")
    policy = outbound.Policy(allowed_networks=networks, allowed_hosts=hosts)
    outbound.vet("https://10.0.0.5/", policy)
    outbound.vet("https://[fd12::7]/", policy)
    for url in ("https://10.0.0.6/", "https://127.0.0.1/", "http://10.0.0.5/"):
        with pytest.raises(outbound.NotAllowed):
            outbound.vet(url, policy)


def test_the_allow_list_setting_is_parsed_and_checked(tmp_path: Path) -> None:
    hosts, networks = parse_outbound_allow(" ADFS.Corp.Example. ,10.20.0.0/16,bücher.example")
    assert hosts == {"adfs.corp.example", "xn--bcher-kva.example"}
    assert networks == (ipaddress.ip_network("10.20.0.0/16"),)
    for bad in ("10.20.0.1/16", "not a host", "999.1", "*.corp.example"):
        with pytest.raises(ConfigError, match="OUTBOUND_ALLOW"):
            parse_outbound_allow(bad)
    base = {"ENV": "testing", "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x" * 32}
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOW"):
        load_settings({**base, "OUTBOUND_ALLOW": "10.0.0.1/8"})
    with pytest.raises(ConfigError, match="OUTBOUND_CA_FILE"):
        load_settings({**base, "OUTBOUND_CA_FILE": str(tmp_path / "missing.pem")})


# --- against real listeners -------------------------------------------------------------


@pytest.mark.parametrize("spelling", ATTACK_SPELLINGS)
def test_a_refused_destination_is_never_connected_to(spelling: str, listener: Server) -> None:
    with pytest.raises(outbound.NotAllowed):
        outbound.fetch(spelling.format(port=listener.port), policy=outbound.Policy())
    assert listener.accepted == 0


@pytest.mark.parametrize("name", sorted(DNS_ATTACKS))
def test_a_name_with_any_internal_address_is_refused(
    name: str, dns: DnsServer, listener: Server
) -> None:
    dns.set_addresses(name, *DNS_ATTACKS[name])
    with pytest.raises(outbound.NotAllowed):
        outbound.fetch(f"https://{name}:{listener.port}/", policy=dns_policy(dns))
    assert listener.accepted == 0


def test_an_unknown_name_is_unreachable_like_a_closed_port(dns: DnsServer) -> None:
    with pytest.raises(outbound.Unreachable) as unknown:
        outbound.fetch("https://nowhere.attacker.test/", policy=dns_policy(dns))
    with Server() as closed:
        port = closed.port
    with pytest.raises(outbound.Unreachable) as refused:
        outbound.fetch(f"http://127.0.0.1:{port}/", policy=outbound.Policy(allow_loopback=True))
    assert str(unknown.value) == str(refused.value)


def test_the_connection_goes_to_the_checked_address_only(dns: DnsServer, pki: Pki) -> None:
    """DNS rebinding: the name answers an admitted address (127.0.0.2, allow-listed here as a
    stand-in for a public one) when checked and loopback after; the connection goes to the
    first answer, with SNI and the certificate for the name, and the second is refused."""
    name = "rebind.attacker.test"
    context = pki.server_context(name)
    good, bad = twin_servers(
        lambda port: Server(
            lambda _: http_answer(200, b"from the checked address"),
            host="127.0.0.2",
            port=port,
            tls=context,
        ),
        lambda port: Server(host="127.0.0.1", port=port),
    )
    policy = dns_policy(
        dns, allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),), ca_file=str(pki.ca_file)
    )
    dns.set_addresses(name, ["127.0.0.2"], ["127.0.0.1"])
    with good, bad:
        response = outbound.fetch(f"https://{name}:{good.port}/metadata", policy=policy)
        assert (response.status, response.body) == (200, b"from the checked address")
        assert dns.address_queries(name) == 2  # one A and one AAAA question: resolved once
        assert good.server_names == [name]
        assert f"Host: {name}:{good.port}".encode() in good.requests[0]
        with pytest.raises(outbound.NotAllowed):
            outbound.fetch(f"https://{name}:{good.port}/metadata", policy=policy)
        assert (good.accepted, bad.accepted) == (1, 0)


def test_the_certificate_must_name_the_host(dns: DnsServer, pki: Pki) -> None:
    dns.set_addresses("idp.attacker.test", ["127.0.0.2"])
    policy = dns_policy(
        dns, allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),), ca_file=str(pki.ca_file)
    )
    answer = lambda _: http_answer(200, b"{}")  # noqa: E731
    with Server(answer, host="127.0.0.2", tls=pki.server_context("other.example")) as wrong:
        with pytest.raises(outbound.Unreachable):
            outbound.fetch(f"https://idp.attacker.test:{wrong.port}/", policy=policy)
        assert wrong.requests == []
    with Server(answer, host="127.0.0.2", tls=pki.server_context("idp.attacker.test")) as right:
        outbound.fetch(f"https://idp.attacker.test:{right.port}/", policy=policy)
        # The same server without our CA: an unknown issuer is refused.
        with pytest.raises(outbound.Unreachable):
            outbound.fetch(
                f"https://idp.attacker.test:{right.port}/",
                policy=dns_policy(dns, **{"allowed_networks": policy.allowed_networks}),
            )


def test_redirects_are_not_followed(listener: Server) -> None:
    target = f"http://127.0.0.1:{listener.port}/internal"
    with Server(lambda _: http_answer(302, headers=[("Location", target)])) as redirecting:
        response = outbound.fetch(redirecting.url, policy=outbound.Policy(allow_loopback=True))
    assert response.status == 302 and response.headers["location"] == target
    assert listener.accepted == 0


@pytest.mark.parametrize(
    "script",
    [
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", b"x" * 2_000_000],
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", *[b"x" * 65536] * 40],  # no length
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            *[b"10000\r\n" + b"x" * 65536 + b"\r\n"] * 40,
            b"0\r\n\r\n",
        ],
        http_answer(200, gzip.compress(b"\0" * 5_000_000), [("Content-Encoding", "gzip")]),
    ],
    ids=["content-length", "until-close", "chunked", "gzip-bomb"],
)
def test_a_body_over_the_cap_is_cut_off(script: list[bytes | float]) -> None:
    with Server(lambda _: script) as big, pytest.raises(outbound.Unreachable):
        outbound.fetch(big.url, max_bytes=1_000_000, policy=outbound.Policy(allow_loopback=True))


def test_a_body_within_the_cap_is_read_whole_even_if_compressed() -> None:
    body = b"<EntityDescriptor/>" * 1000
    script = http_answer(200, gzip.compress(body), [("Content-Encoding", "gzip")])
    with Server(lambda _: script) as server:
        response = outbound.fetch(server.url, policy=outbound.Policy(allow_loopback=True))
    assert response.body == body


@pytest.mark.parametrize("where", ["headers", "body", "tls body"])
def test_a_slow_peer_is_cut_off_at_the_deadline(where: str, pki: Pki) -> None:
    """One byte every 0.2 s never trips the 1 s read timeout; the 1.5 s deadline cuts it."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    drip: list[bytes | float] = [part for _ in range(300) for part in (b"x", 0.2)]
    script = [*drip] if where == "headers" else [head, *drip]
    tls = pki.server_context("127.0.0.2") if where == "tls body" else None
    policy = outbound.Policy(
        allow_loopback=True,
        allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),),
        ca_file=str(pki.ca_file),
    )
    with Server(lambda _: script, host="127.0.0.2", tls=tls) as slow:
        started = time.monotonic()
        with pytest.raises(outbound.Unreachable):
            outbound.fetch(slow.url, read_timeout=1.0, deadline=1.5, policy=policy)
        elapsed = time.monotonic() - started
    assert elapsed < 5  # the drip would last 60 s; the deadline (plus one read) ends it
    assert slow.requests  # it was the pace that failed, not the connection


@pytest.mark.parametrize(
    "script",
    [
        None,  # open, answers nothing
        [b"SSH-2.0-OpenSSH_9.2\r\n"],  # not HTTP
        [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],  # truncated
    ],
    ids=["silent", "garbage", "truncated"],
)
def test_every_failure_to_read_is_the_same_error(script: list[bytes] | None) -> None:
    policy = outbound.Policy(allow_loopback=True)
    answer = None if script is None else (lambda _: script)
    with Server(answer) as server, pytest.raises(outbound.Unreachable) as failed:
        outbound.fetch(server.url, policy=policy)
    with Server() as closed:
        port = closed.port
    with pytest.raises(outbound.Unreachable) as refused:
        outbound.fetch(f"http://127.0.0.1:{port}/", policy=policy)
    assert (type(failed.value), str(failed.value)) == (type(refused.value), str(refused.value))


def test_the_host_header_and_post_body_are_sent() -> None:
    with Server(lambda _: http_answer(200, b"ok")) as server:
        outbound.fetch(
            f"http://LocalHost:{server.port}/token?x=1",
            method="POST",
            body=b"grant_type=authorization_code",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            policy=outbound.Policy(allow_loopback=True),
        )
    request = server.requests[0]
    assert request.startswith(b"POST /token?x=1 HTTP/1.1\r\n")
    assert f"Host: localhost:{server.port}\r\n".encode() in request
    assert request.endswith(b"\r\n\r\ngrant_type=authorization_code")
