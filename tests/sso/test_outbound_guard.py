"""The outbound guard through the admin API: a connection's SAML metadata URL or OIDC issuer
that points inside is refused without a connection, every failure to read an IdP gets one
answer, and the allow-list reaches an on-premise IdP over verified https."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp import outbound
from idp.config import parse_outbound_allow
from idp.connections.models import Connection
from idp.db import db
from idp.orgs.models import Organization
from idp.sso.saml import new_sp_keypair
from tests.builders import auth, make_key, make_org
from tests.dns_server import DnsServer
from tests.outbound_peers import (
    ATTACK_SPELLINGS,
    DNS_ATTACKS,
    Pki,
    Server,
    http_answer,
    idp_metadata,
    twin_servers,
)

KINDS = ("saml", "oidc")


def create(client: FlaskClient, kind: str, url: str) -> TestResponse:
    """POST a connection whose metadata URL (SAML) or issuer (OIDC) is ``url``."""
    org = db.session.scalar(select(Organization).where(Organization.slug == "acme"))
    org = org or make_org("acme")
    body: dict[str, Any] = {"kind": kind, "name": "IdP"}
    if kind == "saml":
        body["metadata_url"] = url
    else:
        body.update(issuer=url, client_id="gh", client_secret="s")
    return client.post("/api/v1/orgs/acme/connections", json=body, headers=auth(make_key(org)))


def assert_not_allowed(response: TestResponse, kind: str, url: str) -> None:
    assert response.status_code == 400, response.json
    insecure = "insecure_metadata_url" if kind == "saml" else "insecure_idp_url"
    if url.startswith("http:"):  # plain http off (or without) the loopback setting
        assert response.json["error"] == insecure
    else:
        assert response.json["error"] == "destination_not_allowed"
        assert "not allowed" in response.json["message"]
    assert db.session.query(Connection).count() == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spelling", ATTACK_SPELLINGS)
def test_every_attack_spelling_is_refused_without_a_connection(
    client: FlaskClient, listener: Server, kind: str, spelling: str
) -> None:
    url = spelling.format(port=listener.port)
    assert_not_allowed(create(client, kind, url), kind, url)
    assert listener.accepted == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(DNS_ATTACKS))
def test_a_name_resolving_inside_is_refused_without_a_connection(
    client: FlaskClient, dns: DnsServer, listener: Server, kind: str, name: str
) -> None:
    dns.set_addresses(name, *DNS_ATTACKS[name])
    url = f"https://{name}:{listener.port}/"
    assert_not_allowed(create(client, kind, url), kind, url)
    assert listener.accepted == 0


class TestOneAnswerForEveryFailure:
    """Loopback allowed (as for a local IdP): whatever answers, or does not, on a port that
    is not an IdP, the client gets the same status, code and message."""

    @pytest.fixture
    def settings_overrides(self, dns: DnsServer) -> dict[str, Any]:
        return {"ALLOW_HTTP_LOOPBACK": True, "DNS_RESOLVER": dns.address, "DNS_TIMEOUT": 1}

    @pytest.mark.parametrize("kind", KINDS)
    def test_open_and_closed_ports_answer_alike(
        self, client: FlaskClient, listener: Server, kind: str
    ) -> None:
        internal = f"http://127.0.0.1:{listener.port}/"
        scripts: dict[str, Any] = {
            "open, silent": None,
            "garbage": lambda _: [b"SSH-2.0-OpenSSH_9.2\r\n"],
            "404": lambda _: http_answer(404, b"Not Found"),
            "500 with JSON": lambda _: http_answer(500, b'{"error": "x"}'),
            "HTML": lambda _: http_answer(200, b"<html>hello</html>"),
            "empty object": lambda _: http_answer(200, b"{}"),
            "array": lambda _: http_answer(200, b"[1, 2]"),
            "redirect inside": lambda _: http_answer(302, headers=[("Location", internal)]),
            "too large": lambda _: http_answer(200, b" " * 1_100_000),
        }
        answers: dict[str, tuple[int, str, str]] = {}
        with Server() as closed:
            closed_url = closed.url
        answer = create(client, kind, f"{closed_url}/metadata")
        answers["closed"] = (answer.status_code, answer.json["error"], answer.json["message"])
        for what, script in scripts.items():
            with Server(script) as server:
                answer = create(client, kind, f"{server.url}/metadata")
            answers[what] = (answer.status_code, answer.json["error"], answer.json["message"])
        code = "metadata_unreachable" if kind == "saml" else "idp_unavailable"
        assert set(answers.values()) == {(400, code, answers["closed"][2])}, answers
        assert listener.accepted == 0  # the redirect was not followed
        assert db.session.query(Connection).count() == 0

    def test_an_unknown_name_answers_like_a_closed_port(
        self, client: FlaskClient, dns: DnsServer
    ) -> None:
        with Server() as closed:
            port = closed.port
        unknown = create(client, "oidc", f"https://nowhere.attacker.test:{port}")
        refused = create(client, "oidc", f"http://127.0.0.1:{port}")
        assert unknown.json == refused.json and unknown.json["error"] == "idp_unavailable"


class TestAllowList:
    """GATEHOUSE_OUTBOUND_ALLOW admits an on-premise IdP: 127.0.0.2 stands in for its private
    address (no 10.x address can be bound here), over https with its own CA
    (GATEHOUSE_OUTBOUND_CA_FILE), loopback itself still refused."""

    @pytest.fixture
    def settings_overrides(self, dns: DnsServer, pki: Pki) -> dict[str, Any]:
        return {
            "DNS_RESOLVER": dns.address,
            "DNS_TIMEOUT": 1,
            "OUTBOUND_ALLOW": "127.0.0.2/32",
            "OUTBOUND_CA_FILE": str(pki.ca_file),
        }

    def test_saml_metadata_from_an_allowed_address_and_never_the_rebound_one(
        self, client: FlaskClient, dns: DnsServer, pki: Pki
    ) -> None:
        name = "adfs.corp.test"
        cert, _ = new_sp_keypair("adfs.corp.test")
        metadata = idp_metadata(f"https://{name}/adfs/services/trust", f"https://{name}/ls", cert)
        context = pki.server_context(name)
        adfs, loopback = twin_servers(
            lambda port: Server(
                lambda _: http_answer(200, metadata), host="127.0.0.2", port=port, tls=context
            ),
            lambda port: Server(host="127.0.0.1", port=port),
        )
        # Rebinding: the allowed address when checked, loopback on every later question.
        dns.set_addresses(name, ["127.0.0.2"], ["127.0.0.1"])
        with adfs, loopback:
            created = create(client, "saml", f"https://{name}:{adfs.port}/FederationMetadata.xml")
            assert created.status_code == 201, created.json
            assert (
                created.json["settings"]["idp_entity_id"] == f"https://{name}/adfs/services/trust"
            )
            again = create(client, "saml", f"https://{name}:{adfs.port}/FederationMetadata.xml")
            assert again.json["error"] == "destination_not_allowed"
            assert (adfs.accepted, loopback.accepted) == (1, 0)
            assert adfs.server_names == [name]

    def test_oidc_discovery_from_an_allowed_address(
        self, client: FlaskClient, dns: DnsServer, pki: Pki
    ) -> None:
        name = "idp.corp.test"
        dns.set_addresses(name, ["127.0.0.2"])
        context = pki.server_context(name)
        with Server(host="127.0.0.2", tls=context) as probe:
            port = probe.port
        issuer = f"https://{name}:{port}"
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        answer = http_answer(200, json.dumps(document).encode())
        with Server(lambda _: answer, host="127.0.0.2", port=port, tls=context) as idp:
            created = create(client, "oidc", issuer)
            assert created.status_code == 201, created.json
            assert idp.requests[0].startswith(b"GET /.well-known/openid-configuration HTTP/1.1")
        # The same IdP behind a name the list does not cover, on an address it does not cover.
        dns.set_addresses(name, ["10.0.0.5"])
        refused = create(client, "oidc", issuer)
        assert refused.json["error"] == "destination_not_allowed"

    def test_a_discovery_document_pointing_inside_is_refused(
        self, client: FlaskClient, dns: DnsServer, pki: Pki, listener: Server
    ) -> None:
        """An allowed IdP whose token endpoint or JWKS is an internal address."""
        name = "idp.corp.test"
        dns.set_addresses(name, ["127.0.0.2"])
        context = pki.server_context(name)
        with Server(host="127.0.0.2", tls=context) as probe:
            port = probe.port
        issuer = f"https://{name}:{port}"
        for key in ("token_endpoint", "jwks_uri"):
            document = {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
                key: f"https://169.254.169.254:{listener.port}/latest/meta-data/",
            }
            answer = http_answer(200, json.dumps(document).encode())
            with Server(lambda _, a=answer: a, host="127.0.0.2", port=port, tls=context):
                refused = create(client, "oidc", issuer)
            assert refused.status_code == 400
            assert refused.json["error"] == "destination_not_allowed"
            assert key in refused.json["message"]
        assert listener.accepted == 0


def test_the_allow_list_admits_a_private_address_for_its_host_only(dns: DnsServer) -> None:
    """A host name on the list may reach a private address; not loopback or link-local, and
    no other name may reach that private address."""
    hosts, networks = parse_outbound_allow("adfs.corp.test")
    policy = outbound.Policy(
        allowed_hosts=hosts, allowed_networks=networks, nameservers=(("127.0.0.1", dns.port),)
    )
    dns.set_addresses("adfs.corp.test", ["10.20.0.5"])
    dns.set_addresses("other.corp.test", ["10.20.0.5"])
    _, addresses = outbound.vet("https://adfs.corp.test/", policy)
    assert addresses == [ipaddress.ip_address("10.20.0.5")]
    with pytest.raises(outbound.NotAllowed):
        outbound.vet("https://other.corp.test/", policy)
    for inside in ("127.0.0.1", "169.254.169.254", "0.0.0.0"):  # noqa: S104 - a DNS answer
        dns.set_addresses("adfs.corp.test", [inside])
        with pytest.raises(outbound.NotAllowed):
            outbound.vet("https://adfs.corp.test/", policy)
