"""SSO fixtures: a real DNS server on loopback, and apps that resolve through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.dns_server import DnsServer


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def dns(dns_server: DnsServer) -> Iterator[DnsServer]:
    """The loopback DNS server, emptied before and after the test."""
    dns_server.reset()
    yield dns_server
    dns_server.reset()


@pytest.fixture
def settings_overrides(dns: DnsServer) -> dict[str, Any]:
    # One second per lookup keeps the timeout tests short.
    return {"DNS_RESOLVER": dns.address, "DNS_TIMEOUT": 1}
