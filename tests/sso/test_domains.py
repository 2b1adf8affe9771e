"""Org email domains: claim, verify against a real DNS server on loopback, remove, discover."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.config import ConfigError, load_settings, parse_nameservers
from idp.connections import domains
from idp.connections.domains import DnsUnavailable
from idp.connections.models import Domain, DomainStatus
from idp.db import db, utcnow
from idp.errors import BadRequest, Conflict, NotFound, Unprocessable
from idp.orgs.models import Organization
from idp.orgs.roles import Role
from tests.builders import auth, make_key, make_org, workspace
from tests.dns_server import DnsServer
from tests.orgs.test_races import ROUNDS, is_conflict, race, winners_and_losers

SYSTEM = system_actor()


def claim(org: Organization, name: str) -> Domain:
    domain = domains.claim_domain(SYSTEM, org, name)
    db.session.commit()
    return domain


def publish(dns: DnsServer, domain: Domain, at: str | None = None) -> None:
    """Publish the domain's verification record (at the domain, or at ``at``)."""
    dns.set_txt(at or domain.domain, domains.verification_record(domain)["value"])


def stored(domain_id: str) -> Domain | None:
    db.session.expire_all()
    return db.session.get(Domain, domain_id)


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


class Api:
    """The admin API as one org's key of a given role sees it."""

    def __init__(self, client: FlaskClient, org: Organization, role: Role = Role.ADMIN) -> None:
        self.client, self.slug = client, org.slug
        self.headers = auth(make_key(org, role))

    def __call__(self, method: str, rest: str = "", json: Any = None) -> Any:
        return self.client.open(
            f"/api/v1/orgs/{self.slug}/domains{rest}",
            method=method,
            json=json,
            headers=self.headers,
        )


# --- names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  Sub.Example.org  ", "sub.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example.", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2008: ß is kept, not folded to "ss"
        (
            "\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\uff0ecom",
            "example.com",
        ),  # full-width (UTS #46)
        ("a1-b.c2", "a1-b.c2"),
    ],
)
def test_domains_are_normalized(given: str, expected: str) -> None:
    assert domains.normalize_domain(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        ".",
        "localhost",
        "com",
        "1.2.3.4",
        "10.0.0.1.",
        "::1",
        "[2001:db8::1]",
        "*.x.com",
        "*",
        "a..b",
        ".example.com",
        "-x.example",
        "x-.example",
        "under_score.example",
        "exa mple.com",
        "ann@example.com",
        "https://example.com",
        "example.com/path",
        "xn--zz.example",  # not a valid A-label
        "a" * 64 + ".example",  # a label over 63
        ".".join(["a" * 63] * 4) + ".com",  # 260 characters
        "x" * 5000 + ".com",
    ],
)
def test_invalid_domains_are_refused(app: Flask, given: str) -> None:
    org = make_org("acme")
    with pytest.raises(BadRequest) as refused:
        domains.claim_domain(SYSTEM, org, given)
    assert refused.value.code == "invalid_domain"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Domain)) == 0


def test_the_longest_valid_domain_is_accepted(app: Flask) -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    assert len(name) == 253
    assert claim(make_org("acme"), name).domain == name


# --- claim -----------------------------------------------------------------------------


def test_claim_gives_a_pending_domain_and_its_txt_record(
    client: FlaskClient, dns: DnsServer
) -> None:
    org = make_org("acme")
    api = Api(client, org)

    created = api("POST", json={"domain": "Acme.Example."})

    assert created.status_code == 201, created.json
    body = created.json
    assert body["id"].startswith("dom_")
    assert (body["domain"], body["status"]) == ("acme.example", "pending")
    token = stored(body["id"]).verification_token
    assert len(token) >= 32
    assert body["verification"] == {
        "type": "TXT",
        "name": "acme.example",
        "value": f"gatehouse-verification={token}",
    }
    assert body["verified_at"] is None and body["created_at"]
    assert api("GET").json["data"] == [body]
    assert dns.queries == []  # claiming asks nothing of DNS


def test_each_claim_gets_its_own_token(app: Flask) -> None:
    first = claim(make_org("acme"), "shared.example")
    second = claim(make_org("globex"), "shared.example")
    assert first.verification_token != second.verification_token


def test_an_org_cannot_claim_a_domain_twice(client: FlaskClient) -> None:
    org = make_org("acme")
    api = Api(client, org)
    assert api("POST", json={"domain": "acme.example"}).status_code == 201

    again = api("POST", json={"domain": "ACME.example."})

    assert again.status_code == 409
    assert again.json["error"] == "domain_already_claimed"
    assert len(api("GET").json["data"]) == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "validation_error"),
        ({"domain": 7}, "validation_error"),
        ({"domain": "localhost"}, "invalid_domain"),
    ],
)
def test_claim_refusals_over_http(client: FlaskClient, body: dict[str, Any], error: str) -> None:
    response = Api(client, make_org("acme"))("POST", json=body)
    assert response.status_code == 400
    assert response.json["error"] == error


# --- verify ----------------------------------------------------------------------------


def test_verify_finds_the_record_at_the_domain(client: FlaskClient, dns: DnsServer) -> None:
    org = make_org("acme")
    api = Api(client, org)
    body = api("POST", json={"domain": "acme.example"}).json
    dns.set_txt("acme.example", "v=spf1 -all", body["verification"]["value"])

    verified = api("POST", f"/{body['id']}/verify")

    assert verified.status_code == 200, verified.json
    assert verified.json["status"] == "verified"
    assert verified.json["verified_at"] and verified.json["last_checked_at"]
    domain = stored(body["id"])
    assert domain.status is DomainStatus.VERIFIED and domain.verified_at <= utcnow()
    assert ("acme.example", "TXT", "udp") in dns.queries


def test_verify_accepts_the_record_under_the_challenge_name(
    client: FlaskClient, dns: DnsServer
) -> None:
    org = make_org("acme")
    api = Api(client, org)
    body = api("POST", json={"domain": "acme.example"}).json
    dns.set_txt("acme.example", "v=spf1 -all")
    dns.set_txt("_gatehouse-challenge.acme.example", body["verification"]["value"])

    verified = api("POST", f"/{body['id']}/verify")

    assert verified.status_code == 200, verified.json
    assert verified.json["status"] == "verified"
    assert [q[:2] for q in dns.queries] == [
        ("acme.example", "TXT"),
        ("_gatehouse-challenge.acme.example", "TXT"),
    ]


def test_a_record_split_into_several_strings_is_joined(app: Flask, dns: DnsServer) -> None:
    org = make_org("acme")
    domain = claim(org, "acme.example")
    value = domains.verification_record(domain)["value"]
    dns.set_txt("acme.example", [value[:10], value[10:25], value[25:]])

    assert domains.verify_domain(SYSTEM, org, domain.id).status is DomainStatus.VERIFIED


def test_a_large_answer_is_read_over_tcp(app: Flask, dns: DnsServer) -> None:
    """More TXT than fits a 512-byte UDP answer: truncated, and the resolver retries on TCP."""
    org = make_org("acme")
    domain = claim(org, "acme.example")
    noise = [f"{i}-" + "x" * 200 for i in range(8)]
    dns.set_txt("acme.example", *noise, domains.verification_record(domain)["value"])

    assert domains.verify_domain(SYSTEM, org, domain.id).status is DomainStatus.VERIFIED
    assert ("acme.example", "TXT", "tcp") in dns.queries


@pytest.mark.parametrize(
    "published",
    [
        "gatehouse-verification=wrong-token",
        "gatehouse-verification=",
        "GATEHOUSE-VERIFICATION={token}",
        "gatehouse-verification={token}x",
        "x gatehouse-verification={token}",
    ],
)
def test_a_wrong_record_fails_verification(
    client: FlaskClient, dns: DnsServer, published: str
) -> None:
    org = make_org("acme")
    api = Api(client, org)
    body = api("POST", json={"domain": "acme.example"}).json
    token = body["verification"]["value"].removeprefix("gatehouse-verification=")
    dns.set_txt("acme.example", published.format(token=token), "v=spf1 -all")

    failed = api("POST", f"/{body['id']}/verify")

    assert failed.status_code == 422, failed.json
    assert failed.json["error"] == "domain_verification_failed"
    message = failed.json["message"]
    assert body["verification"]["value"] in message
    assert "acme.example" in message and "_gatehouse-challenge.acme.example" in message
    assert "2 TXT records, none matching" in message and "no such name" in message
    assert failed.json["found"] == {"acme.example": 2, "_gatehouse-challenge.acme.example": 0}
    assert failed.json["expected"]["value"] == body["verification"]["value"]
    assert stored(body["id"]).status is DomainStatus.PENDING
    assert events("domain.verified") == []


def test_another_orgs_token_does_not_verify(app: Flask, dns: DnsServer) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    theirs, ours = claim(acme, "shared.example"), claim(globex, "shared.example")
    publish(dns, theirs)

    with pytest.raises(Unprocessable) as failed:
        domains.verify_domain(SYSTEM, globex, ours.id)
    assert failed.value.code == "domain_verification_failed"


def test_nxdomain_fails_verification(client: FlaskClient, dns: DnsServer) -> None:
    org = make_org("acme")
    api = Api(client, org)
    body = api("POST", json={"domain": "acme.example"}).json

    failed = api("POST", f"/{body['id']}/verify")

    assert failed.status_code == 422
    assert failed.json["error"] == "domain_verification_failed"
    assert failed.json["found"] == {"acme.example": 0, "_gatehouse-challenge.acme.example": 0}
    assert failed.json["message"].count("no such name") == 2


def test_a_name_without_txt_records_fails_verification(app: Flask, dns: DnsServer) -> None:
    org = make_org("acme")
    domain = claim(org, "acme.example")
    dns.set_txt("acme.example")  # the name exists, with no TXT records

    with pytest.raises(Unprocessable) as failed:
        domains.verify_domain(SYSTEM, org, domain.id)
    assert failed.value.code == "domain_verification_failed"
    assert "acme.example: 0 TXT records, none matching" in failed.value.message


def test_a_silent_dns_server_is_dns_unavailable(client: FlaskClient, dns: DnsServer) -> None:
    org = make_org("acme")
    api = Api(client, org)
    body = api("POST", json={"domain": "acme.example"}).json
    dns.mode = "silent"

    started = time.monotonic()
    failed = api("POST", f"/{body['id']}/verify")
    took = time.monotonic() - started

    assert failed.status_code == 503, failed.json
    assert failed.json["error"] == "dns_unavailable"
    assert "no answer in time" in failed.json["message"]
    assert took < 10  # DNS_TIMEOUT=1 per lookup, two lookups
    assert stored(body["id"]).status is DomainStatus.PENDING


def test_servfail_is_dns_unavailable(app: Flask, dns: DnsServer) -> None:
    org = make_org("acme")
    domain = claim(org, "acme.example")
    dns.mode = "servfail"

    with pytest.raises(DnsUnavailable) as failed:
        domains.verify_domain(SYSTEM, org, domain.id)
    assert (failed.value.status, failed.value.code) == (503, "dns_unavailable")


def test_a_record_found_despite_one_failing_name_verifies(app: Flask, dns: DnsServer) -> None:
    """What matters is that the record is found somewhere; the other name may be broken."""
    org = make_org("acme")
    domain = claim(org, "acme.example")
    dns.modes["acme.example"] = "silent"
    publish(dns, domain, at="_gatehouse-challenge.acme.example")

    assert domains.verify_domain(SYSTEM, org, domain.id).status is DomainStatus.VERIFIED


def test_verifying_a_verified_domain_changes_nothing(app: Flask, dns: DnsServer) -> None:
    org = make_org("acme")
    domain = claim(org, "acme.example")
    publish(dns, domain)
    domains.verify_domain(SYSTEM, org, domain.id)
    db.session.commit()
    dns.reset()  # the record may be taken down once verified

    again = domains.verify_domain(SYSTEM, org, domain.id)
    db.session.commit()

    assert again.status is DomainStatus.VERIFIED
    assert dns.queries == []
    assert len(events("domain.verified")) == 1


def test_a_domain_is_verified_by_one_org_only(client: FlaskClient, dns: DnsServer) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    first, second = Api(client, acme), Api(client, globex)
    ours = first("POST", json={"domain": "shared.example"}).json
    theirs = second("POST", json={"domain": "shared.example"}).json
    dns.set_txt("shared.example", ours["verification"]["value"], theirs["verification"]["value"])
    assert first("POST", f"/{ours['id']}/verify").status_code == 200
    dns.queries.clear()

    refused = second("POST", f"/{theirs['id']}/verify")

    assert refused.status_code == 409
    assert refused.json["error"] == "domain_already_verified"
    assert dns.queries == []  # refused before asking DNS
    assert stored(theirs["id"]).status is DomainStatus.PENDING
    # A new claim of a domain another org verified is refused too.
    third = Api(client, make_org("initech"))("POST", json={"domain": "SHARED.example"})
    assert third.status_code == 409 and third.json["error"] == "domain_already_verified"
    # Once the first org lets go, the second can verify.
    assert first("DELETE", f"/{ours['id']}").status_code == 204
    assert second("POST", f"/{theirs['id']}/verify").status_code == 200


def test_the_partial_unique_index_holds_without_the_service(app: Flask) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    for org in (acme, globex):
        db.session.add(
            Domain(
                workspace_id=org.workspace_id,
                org_id=org.id,
                domain="shared.example",
                verification_token="t",
                status=DomainStatus.VERIFIED,
            )
        )
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_concurrent_verifications_by_two_orgs_leave_one_winner(app: Flask, dns: DnsServer) -> None:
    for round_ in range(ROUNDS):
        name = f"race-{round_}.example"
        acme, globex = make_org(f"acme-{round_}"), make_org(f"globex-{round_}")
        claims = [claim(acme, name), claim(globex, name)]
        dns.set_txt(name, *(domains.verification_record(c)["value"] for c in claims))
        ids = [(c.org_id, c.id) for c in claims]

        outcomes = race(
            app,
            [org_id for org_id, _ in ids],
            [
                (lambda org, domain_id=domain_id: domains.verify_domain(SYSTEM, org, domain_id).id)
                for _, domain_id in ids
            ],
        )

        winners, losers = winners_and_losers(outcomes, is_conflict("domain_already_verified"))
        assert (len(winners), len(losers)) == (1, 1), f"round {round_}: {outcomes}"
        verified = db.session.scalars(
            select(Domain.id).where(Domain.domain == name, Domain.status == DomainStatus.VERIFIED)
        ).all()
        assert verified == winners, f"round {round_}"


# --- remove ----------------------------------------------------------------------------


def test_remove_a_domain(client: FlaskClient, dns: DnsServer) -> None:
    org = make_org("acme")
    api = Api(client, org)
    body = api("POST", json={"domain": "acme.example"}).json
    dns.set_txt("acme.example", body["verification"]["value"])
    api("POST", f"/{body['id']}/verify")

    assert api("DELETE", f"/{body['id']}").status_code == 204

    assert stored(body["id"]) is None
    assert api("GET").json["data"] == []
    assert domains.verified_org_for_email(workspace().id, "ann@acme.example") is None
    gone = api("DELETE", f"/{body['id']}")
    assert gone.status_code == 404 and gone.json["error"] == "domain_not_found"


# --- access ----------------------------------------------------------------------------


def test_members_cannot_read_or_manage_domains(client: FlaskClient, dns: DnsServer) -> None:
    org = make_org("acme")
    domain = claim(org, "acme.example")
    publish(dns, domain)
    member = Api(client, org, Role.MEMBER)

    for method, rest, body in [
        ("GET", "", None),
        ("POST", "", {"domain": "other.example"}),
        ("POST", f"/{domain.id}/verify", None),
        ("DELETE", f"/{domain.id}", None),
    ]:
        response = member(method, rest, body)
        assert response.status_code == 403, (method, rest, response.json)
        assert response.json["error"] == "forbidden"
    assert stored(domain.id).status is DomainStatus.PENDING
    assert db.session.scalar(select(func.count()).select_from(Domain)) == 1


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_admins_and_owners_manage_domains(client: FlaskClient, dns: DnsServer, role: Role) -> None:
    org = make_org("acme")
    api = Api(client, org, role)
    body = api("POST", json={"domain": "acme.example"}).json
    dns.set_txt("acme.example", body["verification"]["value"])

    assert api("POST", f"/{body['id']}/verify").json["status"] == "verified"
    assert api("GET").json["data"][0]["status"] == "verified"
    assert api("DELETE", f"/{body['id']}").status_code == 204


def test_another_orgs_domain_is_not_found(client: FlaskClient, dns: DnsServer) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    domain = claim(acme, "acme.example")
    publish(dns, domain)
    intruder = Api(client, globex, Role.OWNER)

    for method, rest in [("POST", f"/{domain.id}/verify"), ("DELETE", f"/{domain.id}")]:
        response = intruder(method, rest)
        assert response.status_code == 404, response.json
        assert response.json["error"] == "domain_not_found"
        assert "acme" not in response.get_data(as_text=True)
    assert intruder("GET").json["data"] == []
    with pytest.raises(NotFound):
        domains.verify_domain(SYSTEM, globex, domain.id)
    with pytest.raises(NotFound):
        domains.remove_domain(SYSTEM, globex, domain.id)
    db.session.rollback()
    assert stored(domain.id).status is DomainStatus.PENDING
    assert dns.queries == []


# --- audit -----------------------------------------------------------------------------


def test_each_action_writes_one_audit_event_without_the_token(
    client: FlaskClient, dns: DnsServer
) -> None:
    org = make_org("acme")
    api = Api(client, org)
    body = api("POST", json={"domain": "acme.example"}).json
    dns.set_txt("acme.example", body["verification"]["value"])
    api("POST", f"/{body['id']}/verify")
    api("DELETE", f"/{body['id']}")

    trail = [
        (e.action, e.target_type, e.target_id, e.org_id, e.before, e.after)
        for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("domain.%")).order_by(AuditEvent.id)
        )
    ]
    pending = {"domain": "acme.example", "status": "pending"}
    verified = {"domain": "acme.example", "status": "verified"}
    assert trail == [
        ("domain.claimed", "domain", body["id"], org.id, None, pending),
        ("domain.verified", "domain", body["id"], org.id, pending, verified),
        ("domain.removed", "domain", body["id"], org.id, verified, None),
    ]
    token = body["verification"]["value"].removeprefix("gatehouse-verification=")
    assert all(token not in repr(row) for row in trail)


def test_refusals_write_no_audit_event(client: FlaskClient, dns: DnsServer) -> None:
    org = make_org("acme")
    api = Api(client, org)
    body = api("POST", json={"domain": "acme.example"}).json
    api("POST", json={"domain": "acme.example"})  # already claimed
    api("POST", f"/{body['id']}/verify")  # no record
    trail = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("domain.%")))
    assert trail.all() == ["domain.claimed"]


# --- home-realm discovery --------------------------------------------------------------


def test_verified_org_for_email(app: Flask, dns: DnsServer) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    verified = claim(acme, "acme.example")
    claim(globex, "globex.example")  # pending only
    claim(globex, "acme.example")  # a rival claim, pending
    publish(dns, verified)
    domains.verify_domain(SYSTEM, acme, verified.id)
    db.session.commit()
    ws = workspace().id

    assert domains.verified_org_for_email(ws, "ann@acme.example") == acme.id
    assert domains.verified_org_for_email(ws, "  Ann@ACME.Example ") == acme.id
    assert domains.verified_org_for_email(ws, "ann@acme.example.") == acme.id
    assert domains.verified_org_for_email(ws, "bob@globex.example") is None  # pending
    assert domains.verified_org_for_email(ws, "ann@sub.acme.example") is None  # exact match
    assert domains.verified_org_for_email(ws, "ann@example") is None
    assert domains.verified_org_for_email(ws, "acme.example") is None
    assert domains.verified_org_for_email(ws, "") is None
    assert domains.verified_org_for_email(ws, "ann@[1.2.3.4]") is None
    assert domains.verified_org_for_email("wsp_other", "ann@acme.example") is None


def test_verified_org_for_an_idn_email(app: Flask, dns: DnsServer) -> None:
    org = make_org("acme")
    domain = claim(org, "bücher.example")
    publish(dns, domain)
    domains.verify_domain(SYSTEM, org, domain.id)
    db.session.commit()

    assert domain.domain == "xn--bcher-kva.example"
    assert domains.verified_org_for_email(workspace().id, "ann@Bücher.example") == org.id
    assert domains.verified_org_for_email(workspace().id, "ann@xn--bcher-kva.example") == org.id


def test_a_deleted_org_is_not_discovered(app: Flask, dns: DnsServer) -> None:
    org = make_org("acme")
    domain = claim(org, "acme.example")
    publish(dns, domain)
    domains.verify_domain(SYSTEM, org, domain.id)
    db.session.commit()
    org.deleted_at = utcnow()
    db.session.commit()

    assert domains.verified_org_for_email(workspace().id, "ann@acme.example") is None


def test_claims_are_conflicts_not_crashes_when_verified_elsewhere(
    app: Flask, dns: DnsServer
) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    domain = claim(acme, "acme.example")
    publish(dns, domain)
    domains.verify_domain(SYSTEM, acme, domain.id)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        domains.claim_domain(SYSTEM, globex, "acme.example")
    assert refused.value.code == "domain_already_verified"


# --- configuration ---------------------------------------------------------------------


def test_dns_resolver_setting() -> None:
    assert parse_nameservers("") == []
    assert parse_nameservers("127.0.0.1:5353, 10.0.0.1 ,[::1]:5300,::1,[2001:db8::2]") == [
        ("127.0.0.1", 5353),
        ("10.0.0.1", 53),
        ("::1", 5300),
        ("::1", 53),
        ("2001:db8::2", 53),
    ]


def base_settings(tmp_path: Path) -> dict[str, str]:
    return {
        "ENV": "testing",
        "SECRET_KEY": "s" * 32,
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "INSTANCE_PATH": str(tmp_path),
    }


@pytest.mark.parametrize(
    "value", ["dns.google", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x", "[::1]x", "1.2.3"]
)
def test_a_bad_dns_resolver_stops_start_up(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="DNS_RESOLVER"):
        load_settings({**base_settings(tmp_path), "DNS_RESOLVER": value}, environ={})


def test_a_dns_timeout_below_one_second_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DNS_TIMEOUT"):
        load_settings({**base_settings(tmp_path), "DNS_TIMEOUT": "0"}, environ={})


def test_the_dns_settings_default_to_the_system_resolver(tmp_path: Path) -> None:
    settings = load_settings(base_settings(tmp_path), environ={})
    assert (settings.dns_resolver, settings.dns_timeout) == ("", 3)


# --- CLI -------------------------------------------------------------------------------


def ok(runner: FlaskCliRunner, *args: str) -> Result:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def fails(runner: FlaskCliRunner, *args: str) -> Result:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    return result


def test_cli_domain_lifecycle(runner: FlaskCliRunner, dns: DnsServer) -> None:
    make_org("acme")

    added = ok(runner, "domain", "add", "acme", "Acme.Example")

    name, kind, value = added.stdout.strip().split("\t")
    token = db.session.scalar(select(Domain.verification_token))
    assert (name, kind, value) == ("acme.example", "TXT", f"gatehouse-verification={token}")
    assert "_gatehouse-challenge.acme.example" in added.stderr
    assert "gatehouse domain verify acme acme.example" in added.stderr
    assert ok(runner, "domain", "list", "acme").stdout == f"acme.example\tpending\t{value}\n"

    failed = fails(runner, "domain", "verify", "acme", "acme.example")
    assert "error: domain_verification_failed:" in failed.stderr
    assert value in failed.stderr

    dns.set_txt("acme.example", value)
    assert ok(runner, "domain", "verify", "acme", "ACME.example.").stdout == (
        "acme.example\tverified\n"
    )
    assert ok(runner, "domain", "list", "acme").stdout == f"acme.example\tverified\t{value}\n"
    assert (
        db.session.scalar(
            select(AuditEvent.actor_label).where(AuditEvent.action == "domain.verified")
        )
        == "cli"
    )

    ok(runner, "domain", "remove", "acme", "acme.example")
    assert ok(runner, "domain", "list", "acme").stdout == ""
    assert [e.action for e in events("domain.removed")] == ["domain.removed"]


def test_cli_domain_refusals(runner: FlaskCliRunner, dns: DnsServer) -> None:
    make_org("acme")
    assert "org_not_found" in fails(runner, "domain", "add", "nope", "acme.example").stderr
    assert "invalid_domain" in fails(runner, "domain", "add", "acme", "localhost").stderr
    ok(runner, "domain", "add", "acme", "acme.example")
    assert "domain_already_claimed" in fails(runner, "domain", "add", "acme", "acme.example").stderr
    assert "domain_not_found" in fails(runner, "domain", "verify", "acme", "other.example").stderr
    assert "domain_not_found" in fails(runner, "domain", "remove", "acme", "other.example").stderr
    dns.mode = "silent"
    assert "dns_unavailable" in fails(runner, "domain", "verify", "acme", "acme.example").stderr
    assert db.session.scalar(select(func.count()).select_from(Domain)) == 1
