"""Forward-auth (``/auth/check``): who passes, which org a request belongs to, the login URL,
deprovisioning on the very next request, the one-query hot path, the SQL admission rule
against the Python one, and nginx in front of an app for real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, update
from werkzeug.test import TestResponse

from idp.actors import system_actor
from idp.config import ConfigError, load_settings
from idp.connections.models import Connection, ConnectionKind
from idp.connections.services import create_connection
from idp.credentials.services import create_scim_token
from idp.crypto import token_digest
from idp.db import db, utcnow
from idp.login.cookies import SESSION_COOKIE, signed_session_cookie
from idp.login.forward_auth import _STATEMENTS
from idp.orgs.models import Membership, MembershipStatus, Organization
from idp.orgs.roles import Role
from idp.orgs.services import delete_org
from idp.people.signin import IdpAssertion, admission, sign_in
from idp.sessions.models import Session, SessionMethod
from idp.sessions.services import revoke_session, start_session
from idp.users.models import User
from tests.builders import auth, make_key, make_member, make_org, make_verified_domain
from tests.proxies import (
    DOCS,
    echo_upstream,
    free_port,
    render_nginx_site,
    run_nginx,
    serve_app,
)
from tests.scim.conftest import DEACTIVATE, scim_for

HOUR = timedelta(hours=1)
APP_ORIGIN = "http://app.gatehouse.test"
HOSTS = "app.gatehouse.test=acme,acme.local:8080=acme"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The shared parent domain: the issuer is gatehouse.test, the app one of its hosts.
    return {
        "FORWARD_AUTH_HOSTS": HOSTS,
        "RETURN_ORIGINS": APP_ORIGIN,
        "COOKIE_DOMAIN": "gatehouse.test",
    }


# --- builders ------------------------------------------------------------------------------


def make_connection(org: Organization, name: str = "idp") -> Connection:
    connection = create_connection(
        system_actor(), org, kind=ConnectionKind.OIDC, name=name, settings={}, secret="s"
    )
    db.session.commit()
    return connection


def sso_session(
    connection: Connection, *, address_proven: bool = False, **claims: Any
) -> tuple[Session, str]:
    session, token = sign_in(
        connection, IdpAssertion(**claims), lifetime=HOUR, address_proven=address_proven
    )
    db.session.commit()
    return session, token


def session_for(
    user: User,
    org: Organization,
    method: SessionMethod = SessionMethod.EMAIL_LINK,
    connection: Connection | None = None,
) -> tuple[Session, str]:
    session, token = start_session(
        user, org, method=method, lifetime=HOUR, connection_id=connection.id if connection else None
    )
    db.session.commit()
    return session, token


def cookie(client: FlaskClient, token: str) -> None:
    client.set_cookie(SESSION_COOKIE, signed_session_cookie(token))


def check(client: FlaskClient, **headers: str) -> TestResponse:
    return client.get("/auth/check", headers={k.replace("_", "-"): v for k, v in headers.items()})


def login_query(response: TestResponse) -> dict[str, list[str]]:
    url = urlsplit(response.headers["X-Gatehouse-Login-URL"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://gatehouse.test/login"
    return parse_qs(url.query)


# --- who passes ------------------------------------------------------------------------------


def test_a_live_session_passes_with_who_and_where(app: Flask, client: FlaskClient) -> None:
    org = make_org("beta")
    session, token = sso_session(make_connection(org), subject="s", email="Ann@Beta.example")
    cookie(client, token)
    response = check(client)
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["X-Gatehouse-User"] == session.user_id
    assert response.headers["X-Gatehouse-Email"] == "Ann@Beta.example"
    assert response.headers["X-Gatehouse-Org"] == "beta"
    assert response.headers["X-Gatehouse-Role"] == "member"
    assert response.headers["Cache-Control"] == "no-store"
    # nginx's auth_request keeps the browser's method.
    assert client.post("/auth/check").status_code == 200


def _revoked(token: str) -> str:
    session = db.session.scalar(select(Session).where(Session.token_digest == token_digest(token)))
    revoke_session(session, "logout")
    db.session.commit()
    return token


def _expired(token: str) -> str:
    db.session.execute(
        update(Session)
        .where(Session.token_digest == token_digest(token))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    return token


@pytest.mark.parametrize("kind", ["none", "garbage", "unsigned", "unknown", "revoked", "expired"])
def test_anything_but_a_live_session_is_401_with_the_login_url(
    app: Flask, client: FlaskClient, kind: str
) -> None:
    org = make_org("acme")
    _, token = sso_session(make_connection(org), subject="s", email="a@acme.example")
    if kind == "garbage":
        client.set_cookie(SESSION_COOKIE, "not-a-cookie")
    elif kind == "unsigned":
        client.set_cookie(SESSION_COOKIE, token)
    elif kind == "unknown":
        cookie(client, "ghc_" + "A" * 43)
    elif kind == "revoked":
        cookie(client, _revoked(token))
    elif kind == "expired":
        cookie(client, _expired(token))
    response = check(client, X_Original_URL=f"{APP_ORIGIN}/reports?q=1")
    assert response.status_code == 401
    assert response.data == b""
    assert response.headers["Cache-Control"] == "no-store"
    assert "X-Gatehouse-User" not in response.headers
    assert login_query(response) == {"org": ["acme"], "next": [f"{APP_ORIGIN}/reports?q=1"]}


def test_the_login_url_returns_only_to_allowed_origins(app: Flask, client: FlaskClient) -> None:
    response = check(
        client,
        X_Forwarded_Proto="https",
        X_Forwarded_Host="evil.example",
        X_Forwarded_Uri="/steal",
    )
    assert response.status_code == 401
    assert login_query(response) == {}  # neither a mapped org nor an allowed origin
    response = check(
        client,
        X_Forwarded_Proto="http",
        X_Forwarded_Host="app.gatehouse.test",
        X_Forwarded_Uri="/x",
    )
    assert login_query(response) == {"org": ["acme"], "next": [f"{APP_ORIGIN}/x"]}
    response = check(client, X_Original_URL="/\\evil.example", X_Gatehouse_Org="beta")
    assert login_query(response) == {"org": ["beta"]}


# --- which org --------------------------------------------------------------------------------


@pytest.fixture
def two_orgs(app: Flask) -> tuple[str, User]:
    """Ann: owner of acme, member of beta, signed in by email link, currently in beta."""
    acme, beta = make_org("acme"), make_org("beta")
    ann = make_member(acme, "ann@example.com", Role.OWNER).user
    make_member(beta, "ann@example.com", Role.MEMBER)
    make_org("gamma")
    _, token = session_for(ann, beta)
    return token, ann


def test_the_host_mapping_names_the_org(client: FlaskClient, two_orgs: tuple[str, User]) -> None:
    token, _ = two_orgs
    cookie(client, token)
    assert check(client).headers["X-Gatehouse-Org"] == "beta"  # the session's current org
    mapped = check(client, X_Original_URL=f"{APP_ORIGIN}/")
    assert (mapped.headers["X-Gatehouse-Org"], mapped.headers["X-Gatehouse-Role"]) == (
        "acme",
        "owner",
    )
    with_port = check(client, X_Forwarded_Host="acme.local:8080", X_Forwarded_Uri="/")
    assert with_port.headers["X-Gatehouse-Org"] == "acme"
    # Another port is another site: not mapped, so the session's org.
    other_port = check(client, X_Forwarded_Host="acme.local:9090", X_Forwarded_Uri="/")
    assert other_port.headers["X-Gatehouse-Org"] == "beta"
    # The mapping wins over the header.
    both = check(client, X_Original_URL=f"{APP_ORIGIN}/", X_Gatehouse_Org="beta")
    assert both.headers["X-Gatehouse-Org"] == "acme"


def test_the_org_header_names_the_org(client: FlaskClient, two_orgs: tuple[str, User]) -> None:
    token, _ = two_orgs
    cookie(client, token)
    assert check(client, X_Gatehouse_Org="acme").headers["X-Gatehouse-Role"] == "owner"
    for slug in ("gamma", "no-such-org"):  # not a member / not there: 401, never 403
        response = check(client, X_Gatehouse_Org=slug)
        assert response.status_code == 401
        assert login_query(response) == {"org": [slug]}
    for junk in ("acme\x00", "a" * 64, "../acme", "ACME Corp"):  # no org is named so
        response = check(client, X_Gatehouse_Org=junk)
        assert response.status_code == 401
        assert login_query(response) == {}


def test_a_deleted_org_is_not_entered(
    client: FlaskClient, two_orgs: tuple[str, User], app: Flask
) -> None:
    token, _ = two_orgs
    cookie(client, token)
    delete_org(system_actor(), _org("acme"))
    db.session.commit()
    assert check(client, X_Gatehouse_Org="acme").status_code == 401


def _org(slug: str) -> Organization:
    return db.session.scalars(select(Organization).where(Organization.slug == slug)).one()


def test_another_orgs_idp_enters_only_where_its_org_verified_the_domain(app: Flask) -> None:
    client = app.test_client()
    alpha, beta = make_org("alpha"), make_org("beta")
    ann = make_member(alpha, "ann@b.example").user
    make_member(beta, "ann@b.example")
    beta_idp = make_connection(beta, "b-idp")
    _, token = session_for(ann, beta, SessionMethod.OIDC, beta_idp)
    cookie(client, token)
    assert check(client).headers["X-Gatehouse-Org"] == "beta"
    refused = check(client, X_Gatehouse_Org="alpha")
    assert refused.status_code == 401
    assert login_query(refused) == {"org": ["alpha"]}

    make_verified_domain(beta, "b.example")
    assert check(client, X_Gatehouse_Org="alpha").headers["X-Gatehouse-Org"] == "alpha"


# --- deprovisioning ----------------------------------------------------------------------------


def test_scim_deactivation_is_401_on_the_next_check(app: Flask, client: FlaskClient) -> None:
    org = make_org("beta")
    make_member(org, "owner@beta.example", Role.OWNER)
    scim = scim_for(client, org)
    created = scim("POST", "/Users", {"userName": "ann@beta.example", "externalId": "00u1"})
    assert created.status_code == 201
    _, token = sso_session(make_connection(org), subject="00u1", email="ann@beta.example")
    cookie(client, token)
    assert check(client).status_code == 200

    assert scim("PATCH", f"/Users/{created.json['id']}", DEACTIVATE).status_code == 200
    assert check(client).status_code == 401


@pytest.mark.parametrize("how", ["removed", "suspended"])
def test_admin_removal_or_suspension_is_401_on_the_next_check(
    app: Flask, client: FlaskClient, how: str
) -> None:
    org = make_org("beta")
    ann = make_member(org, "ann@beta.example")
    _, token = session_for(ann.user, org)
    cookie(client, token)
    assert check(client).status_code == 200
    url = f"/api/v1/orgs/beta/members/{ann.user_id}"
    key = auth(make_key(org, Role.ADMIN))
    if how == "removed":
        assert client.delete(url, headers=key).status_code == 204
    else:
        assert client.patch(url, json={"status": "suspended"}, headers=key).status_code == 200
    assert check(client).status_code == 401


def test_a_suspended_membership_elsewhere_is_401_even_with_a_live_session(
    client: FlaskClient, two_orgs: tuple[str, User]
) -> None:
    """The membership is checked on every request, not only through session revocation."""
    token, ann = two_orgs
    cookie(client, token)
    db.session.execute(
        update(Membership)
        .where(Membership.user_id == ann.id)
        .values(status=MembershipStatus.SUSPENDED)
    )
    db.session.commit()
    assert check(client, X_Gatehouse_Org="acme").status_code == 401


# --- the hot path -------------------------------------------------------------------------------


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_the_hot_path_is_one_select_and_no_writes(
    client: FlaskClient, two_orgs: tuple[str, User], statements: list[str], is_postgres: bool
) -> None:
    token, _ = two_orgs
    cookie(client, token)
    for headers in ({}, {"X_Gatehouse_Org": "acme"}, {"X_Gatehouse_Org": "gamma"}):
        check(client, **headers)  # the org's roles are read once per process and change
        statements.clear()
        check(client, **headers)
        # PostgreSQL: the transaction's row-level security declaration comes first.
        assert len(statements) == (2 if is_postgres else 1), statements
        if is_postgres:
            assert "set_config('gatehouse.org_id'" in statements.pop(0)
        assert statements[0].lstrip().upper().startswith("SELECT")
    statements.clear()
    client.delete_cookie(SESSION_COOKIE)
    assert check(client).status_code == 401
    assert statements == []  # no cookie, no query


# --- the SQL rule agrees with admission() --------------------------------------------------------


def test_the_sql_admission_rule_agrees_with_the_python_one(app: Flask) -> None:
    alpha, beta, gone = make_org("alpha"), make_org("beta"), make_org("gone")
    alpha_idp, beta_idp, gone_idp = (make_connection(o) for o in (alpha, beta, gone))
    make_verified_domain(beta, "verified.example")
    make_verified_domain(gone, "gone.example")
    people = {}
    for email in ("ann@verified.example", "bob@other.example", "cyd@gone.example"):
        user = make_member(alpha, email).user
        for org in (beta, gone):
            make_member(org, email)
        people[email] = user
    delete_org(system_actor(), gone)
    db.session.commit()
    # gone's sessions are still evaluated: its deleted-ness must be what refuses them.
    cases = {
        "own-connection": (people["bob@other.example"], SessionMethod.OIDC, alpha_idp, True),
        "email-link": (people["bob@other.example"], SessionMethod.EMAIL_LINK, None, True),
        "other-org-verified": (people["ann@verified.example"], SessionMethod.OIDC, beta_idp, True),
        "other-org-unverified": (people["bob@other.example"], SessionMethod.SAML, beta_idp, False),
        "other-org-deleted": (people["cyd@gone.example"], SessionMethod.OIDC, gone_idp, False),
        "no-connection-not-email": (people["bob@other.example"], SessionMethod.OIDC, None, False),
    }
    dialect = db.engine.dialect.name
    for name, (user, method, connection, expected) in cases.items():
        session, token = session_for(user, beta, method, connection)
        python = admission(session, alpha.id) is None
        row = db.session.execute(
            _STATEMENTS[(dialect, True)],
            {"digest": token_digest(token), "now": utcnow(), "slug": "alpha"},
        ).one()
        assert (python, bool(row.admitted)) == (expected, expected), name


def test_invalid_host_mappings_stop_start_up() -> None:
    for bad in (
        "app.example",
        "app.example=",
        "=acme",
        "app.example:0=acme",
        "a_b.example=x",
        "app.example=Acme Corp",
        "a.example=x,a.example=y",
    ):
        with pytest.raises(ConfigError, match="FORWARD_AUTH_HOSTS"):
            load_settings({"ENV": "testing", "FORWARD_AUTH_HOSTS": bad}, environ={})
    settings = load_settings({"ENV": "testing", "FORWARD_AUTH_HOSTS": HOSTS}, environ={})
    assert settings.forward_auth_hosts == HOSTS


def test_the_traefik_example_names_the_check_and_its_headers() -> None:
    text = (DOCS / "traefik.yml").read_text()
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:  # PyYAML is not a dependency: check the text
        assert "forwardAuth:" in text and "/auth/check?redirect=1" in text
        for header in ("User", "Email", "Org", "Role", "Permissions"):
            assert f'"X-Gatehouse-{header}"' in text
        assert 'path: "/auth/callback"' in text and "Path(`/_gatehouse/callback`)" in text
        return
    config = yaml.safe_load(text)["http"]
    middleware = config["middlewares"]["gatehouse"]["forwardAuth"]
    assert middleware["address"].endswith("/auth/check?redirect=1")
    assert len(middleware["authResponseHeaders"]) == 5
    assert config["middlewares"]["gatehouse-callback"]["replacePath"]["path"] == "/auth/callback"
    assert "/_gatehouse/callback" in config["routers"]["app-gatehouse-callback"]["rule"]


# --- nginx, for real ------------------------------------------------------------------------------


@pytest.fixture
def nginx(app: Flask, nginx_binary: str, tmp_path: Path) -> Iterator[Any]:
    """nginx (docs/proxies/nginx.conf) → Gatehouse over HTTP, and → the echoing app."""
    with serve_app(app) as gatehouse, echo_upstream() as upstream:
        port = free_port()
        site = render_nginx_site(port, gatehouse, upstream)
        with run_nginx(nginx_binary, tmp_path / "nginx", site, port) as server:
            yield server


def test_nginx_lets_a_session_through_and_sends_others_to_sign_in(
    app: Flask, client: FlaskClient, nginx: Any
) -> None:
    org = make_org("acme")
    make_member(org, "owner@acme.example", Role.OWNER)
    _, scim_token = create_scim_token(system_actor(), org, name="idp")
    db.session.commit()
    scim = {"Authorization": f"Bearer {scim_token}"}
    created = client.post(
        "/scim/v2/acme/Users",
        data=json.dumps({"userName": "ann@acme.example", "externalId": "00u1"}),
        content_type="application/scim+json",
        headers=scim,
    )
    assert created.status_code == 201
    session, token = sso_session(make_connection(org), subject="00u1", email="ann@acme.example")
    host = {"Host": "app.gatehouse.test"}

    anonymous = nginx.get("/reports?q=1", host)
    assert anonymous.status == 302, nginx.error_log()
    location = urlsplit(anonymous.getheader("Location"))
    assert location.netloc == "gatehouse.test"
    assert parse_qs(location.query) == {"org": ["acme"], "next": [f"{APP_ORIGIN}/reports?q=1"]}

    browser = {**host, "Cookie": f"{SESSION_COOKIE}={signed_session_cookie(token)}"}
    forged = {
        **browser,
        "X-Gatehouse-Role": "owner",
        "X-Gatehouse-Org": "evil",
        "X-Gatehouse-Permissions": "org:delete",
    }
    passed = nginx.get("/reports", forged)
    assert passed.status == 200, nginx.error_log()
    assert json.loads(passed.body)["headers"] == {
        "X-Gatehouse-User": session.user_id,
        "X-Gatehouse-Email": "ann@acme.example",
        "X-Gatehouse-Org": "acme",
        "X-Gatehouse-Role": "member",
        "X-Gatehouse-Permissions": "membership:leave org:read profile:read teams:read",
    }

    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }
    deactivated = client.patch(
        f"/scim/v2/acme/Users/{created.json['id']}",
        data=json.dumps(patch),
        content_type="application/scim+json",
        headers=scim,
    )
    assert deactivated.status_code == 200
    assert nginx.get("/reports", browser).status == 302
