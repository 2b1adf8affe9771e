"""The session keys at every place a session is used: forward-auth, the OIDC provider
(authorize, token refresh, userinfo, introspection), ``/api/v1/me``, and the email-link and
invitation sign-ins, for sso_required, mfa_required, session_max_age, idle timeout and
allowed_email_domains (which binds members from before a narrowing too)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from idp.actors import system_actor
from idp.db import db, utcnow
from idp.orgs.invitations import invite_by_email
from idp.orgs.models import Membership, Organization
from idp.people.signin import admission
from idp.policies.enforcement import PolicyViolation
from idp.policies.services import set_org_policy, set_workspace_policy
from idp.sessions.models import Session, SessionMethod
from idp.sessions.services import issue_email_link, session_violation, start_session
from tests.builders import make_member, make_org, make_verified_domain, workspace
from tests.forms import form_post
from tests.login.test_forward_auth import check, cookie, make_connection, sso_session
from tests.oauth.conftest import (
    World,
    authorize,
    exchange,
    get_code,
    introspect,
    make_app,
    refresh,
    sign_in,
    tokens_for,
    userinfo,
)

HOUR = timedelta(hours=1)


def policy(org: Organization, **values: Any) -> None:
    set_org_policy(system_actor(), org, values)
    db.session.commit()


def age(session: Session, *, created: timedelta | None = None, idle: timedelta | None = None):
    """Move the session's sign-in (and last use) into the past."""
    now = utcnow()
    values: dict[str, Any] = {}
    if created is not None:
        values["created_at"] = now - created
        values["last_seen_at"] = now - created
    if idle is not None:
        values["last_seen_at"] = now - idle
    db.session.execute(update(Session).where(Session.id == session.id).values(**values))
    db.session.commit()


def email_session(client: FlaskClient, org: Organization, email: str) -> Session:
    membership = make_member(org, email)
    session, token = start_session(
        membership.user, org, method=SessionMethod.EMAIL_LINK, lifetime=12 * HOUR, amr=["email"]
    )
    db.session.commit()
    cookie(client, token)
    return session


# --- forward-auth ----------------------------------------------------------------------


def test_forward_auth_refuses_a_session_older_than_session_max_age(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    session = email_session(client, org, "ann@acme.example")
    policy(org, session_max_age="2h")
    age(session, created=timedelta(minutes=119))
    assert check(client).status_code == 200
    age(session, created=timedelta(minutes=121))
    denied = check(client)
    assert denied.status_code == 401
    assert parse_qs(urlsplit(denied.headers["X-Gatehouse-Login-URL"]).query)["org"] == ["acme"]


def test_a_tightened_baseline_ends_old_sessions_on_the_next_request(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    session = email_session(client, org, "ann@acme.example")
    age(session, created=3 * HOUR)
    assert check(client).status_code == 200
    set_workspace_policy(system_actor(), workspace(), {"session_max_age": "2h"})
    db.session.commit()
    assert check(client).status_code == 401


def test_an_org_whose_effective_policy_is_not_computed_yet_gets_its_chains(
    app: Flask, client: FlaskClient
) -> None:
    # An older release, during an upgrade, inserts orgs with the column's empty default.
    org = make_org("acme")
    session = email_session(client, org, "ann@acme.example")
    age(session, created=3 * HOUR)
    set_workspace_policy(system_actor(), workspace(), {"session_max_age": "2h"})
    not_computed = update(Organization).where(Organization.id == org.id)
    db.session.execute(not_computed.values(effective_policy={}))
    db.session.commit()
    assert check(client).status_code == 401
    assert session_violation(db.session.get(Session, session.id), org) == "session_max_age"


def test_forward_auth_enforces_the_idle_timeout_and_records_use_once_a_minute(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    session = email_session(client, org, "ann@acme.example")
    policy(org, session_idle_timeout="10m")
    age(session, idle=timedelta(minutes=9))
    assert check(client).status_code == 200
    db.session.rollback()
    seen = db.session.get(Session, session.id).last_seen_at
    assert utcnow() - seen < timedelta(seconds=30)  # the use was recorded
    age(session, idle=timedelta(seconds=20))
    before = db.session.get(Session, session.id).last_seen_at
    assert check(client).status_code == 200
    db.session.rollback()
    assert db.session.get(Session, session.id).last_seen_at == before  # no write this minute
    age(session, idle=timedelta(minutes=11))
    assert check(client).status_code == 401


def test_forward_auth_writes_nothing_without_an_idle_timeout(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    session = email_session(client, org, "ann@acme.example")
    age(session, idle=timedelta(hours=2))
    before = db.session.get(Session, session.id).last_seen_at
    assert check(client).status_code == 200
    db.session.rollback()
    assert db.session.get(Session, session.id).last_seen_at == before


def test_sso_required_admits_only_the_orgs_own_connection(app: Flask, client: FlaskClient) -> None:
    org = make_org("acme")
    connection = make_connection(org)
    email_session(client, org, "ann@acme.example")
    assert check(client).status_code == 200
    policy(org, sso_required=True)
    assert check(client).status_code == 401  # an email link is not the org's IdP
    # The org did not verify acme.example: its IdP links to the member once the person
    # proved the address in the same browser (idp.people).
    _session, token = sso_session(
        connection, subject="ann-1", email="ann@acme.example", address_proven=True
    )
    cookie(client, token)
    assert check(client).status_code == 200


def test_sso_required_refuses_a_session_from_another_orgs_connection(
    app: Flask, client: FlaskClient
) -> None:
    home, acme = make_org("home"), make_org("acme")
    make_verified_domain(home, "home.example")
    session, token = sso_session(make_connection(home), subject="x", email="ann@home.example")
    make_member(acme, "ann@home.example")
    cookie(client, token)
    assert admission(session, acme.id) is None  # the home org's IdP speaks for the address
    assert check(client, X_Gatehouse_Org="acme").status_code == 200
    policy(acme, sso_required=True)
    assert admission(session, acme.id) == "policy:sso_required"
    assert check(client, X_Gatehouse_Org="acme").status_code == 401
    assert check(client, X_Gatehouse_Org="home").status_code == 200


def test_mfa_required_refuses_sessions_without_mfa(app: Flask, client: FlaskClient) -> None:
    org = make_org("acme")
    connection = make_connection(org)
    _s, without = sso_session(connection, subject="a", email="a@acme.example", amr=("pwd",))
    _s, with_otp = sso_session(connection, subject="b", email="b@acme.example", amr=("pwd", "otp"))
    policy(org, mfa_required=True)
    cookie(client, without)
    assert check(client).status_code == 401
    cookie(client, with_otp)
    assert check(client).status_code == 200


# --- the OIDC provider -----------------------------------------------------------------


@pytest.fixture
def world(app: Flask) -> World:
    org, other = make_org("acme", "Acme Corp"), make_org("beta", "Beta Inc")
    return World(org, other, make_member(org, "ann@acme.example"), make_app())


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def test_refresh_userinfo_and_introspection_stop_at_session_max_age(
    browser: FlaskClient, world: World
) -> None:
    tokens = tokens_for(browser, world)
    policy(world.org, session_max_age="1h")
    session = db.session.scalars(select(Session)).one()
    age(session, created=timedelta(minutes=50))
    renewed = refresh(browser, world.app, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    age(session, created=timedelta(minutes=61))
    refused = refresh(browser, world.app, renewed.json["refresh_token"])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    assert userinfo(browser, renewed.json["access_token"]).status_code == 401
    assert introspect(browser, world.app, renewed.json["access_token"]) == {"active": False}


def test_a_code_is_not_exchanged_once_the_policy_refuses_its_session(
    browser: FlaskClient, world: World
) -> None:
    sign_in(browser, world.member)
    code = get_code(browser, world.app)
    policy(world.org, mfa_required=True)  # the email-link session has no MFA
    response = exchange(browser, world.app, code)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_refresh_counts_as_use_for_the_idle_timeout(browser: FlaskClient, world: World) -> None:
    tokens = tokens_for(browser, world)
    policy(world.org, session_idle_timeout="15m")
    session = db.session.scalars(select(Session)).one()
    age(session, idle=timedelta(minutes=14))
    renewed = refresh(browser, world.app, tokens["refresh_token"])
    assert renewed.status_code == 200
    db.session.rollback()
    assert utcnow() - db.session.get(Session, session.id).last_seen_at < timedelta(minutes=1)
    age(session, idle=timedelta(minutes=16))
    assert refresh(browser, world.app, renewed.json["refresh_token"]).status_code == 400


def test_authorize_sends_an_email_link_session_to_the_orgs_sso(
    browser: FlaskClient, world: World
) -> None:
    sign_in(browser, world.member)
    assert get_code(browser, world.app)  # allowed before the policy
    policy(world.org, sso_required=True)
    response = authorize(browser, world.app)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["org"] == ["acme"]
    silent = authorize(browser, world.app, prompt="none")
    assert parse_qs(urlsplit(silent.headers["Location"]).query)["error"] == ["login_required"]


def test_authorize_asks_for_a_new_sign_in_past_session_max_age(
    browser: FlaskClient, world: World
) -> None:
    session = sign_in(browser, world.member)
    policy(world.org, session_max_age="1h")
    age(session, created=2 * HOUR)
    response = authorize(browser, world.app)
    assert urlsplit(response.headers["Location"]).path == "/login"


# --- /api/v1/me, email links and invitations -------------------------------------------


def test_me_is_401_for_a_session_the_policy_no_longer_admits(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    session = email_session(client, org, "ann@acme.example")
    assert client.get("/api/v1/me").status_code == 200
    policy(org, session_max_age="1h")
    age(session, created=2 * HOUR)
    response = client.get("/api/v1/me")
    assert response.status_code == 401 and response.json["error"] == "session_not_admitted"


def _use_email_link(client: FlaskClient, membership: Membership) -> Any:
    _link, token = issue_email_link(membership.user.email)
    db.session.commit()
    return form_post(client, "/login/email", query_string={"token": token})


@pytest.mark.parametrize("key", ["sso_required", "mfa_required"])
def test_an_email_link_cannot_enter_an_org_that_requires_sso_or_mfa(
    app: Flask, client: FlaskClient, key: str
) -> None:
    org = make_org("acme")
    membership = make_member(org, "ann@acme.example")
    policy(org, **{key: True})
    response = _use_email_link(client, membership)
    assert response.status_code == 403
    assert response.headers["X-Gatehouse-Error"] == "policy_violation"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Session)) == 0


def test_an_email_link_enters_the_first_org_that_admits_it(app: Flask, client: FlaskClient) -> None:
    strict, lenient = make_org("aaa-strict"), make_org("zzz-lenient")
    membership = make_member(strict, "ann@acme.example")
    make_member(lenient, "ann@acme.example")
    policy(strict, sso_required=True)
    response = _use_email_link(client, membership)
    assert response.status_code == 303
    db.session.rollback()
    assert db.session.scalars(select(Session.org_id)).one() == lenient.id


def test_the_login_page_of_an_sso_only_org_without_a_connection_offers_no_email_link(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    policy(org, sso_required=True)
    response = client.get("/login", query_string={"org": "acme"})
    assert response.status_code == 403
    assert 'name="email"' not in response.text
    assert 'name="email"' in client.get("/login").text


def test_an_emailed_invitation_to_an_sso_only_org_joins_but_signs_in_at_its_idp(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    make_connection(org)
    _invitation, token = invite_by_email(system_actor(), org, email="new@acme.example")
    db.session.commit()
    policy(org, sso_required=True)
    response = form_post(client, "/invitations/accept", data={"token": token, "answer": "accept"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?org=acme"
    assert "gatehouse_session=" not in response.headers.get("Set-Cookie", "")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 1
    assert db.session.scalar(select(func.count()).select_from(Session)) == 0


# --- allowed_email_domains: members from before the narrowing ---------------------------


def test_forward_auth_refuses_a_member_outside_the_narrowed_domains(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    outside = app.test_client()
    email_session(client, org, "ann@acme.example")
    email_session(outside, org, "bob@other.example")
    assert check(outside).status_code == 200
    policy(org, allowed_email_domains=["acme.example"])
    assert check(outside).status_code == 401
    assert check(client).status_code == 200


def test_me_is_401_for_a_member_outside_the_narrowed_domains(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    email_session(client, org, "bob@other.example")
    assert client.get("/api/v1/me").status_code == 200
    policy(org, allowed_email_domains=["acme.example"])
    response = client.get("/api/v1/me")
    assert response.status_code == 401 and response.json["error"] == "session_not_admitted"
    assert "allowed_email_domains" in response.json["message"]


def test_refresh_and_userinfo_stop_once_the_member_is_outside_the_domains(
    browser: FlaskClient, world: World
) -> None:
    tokens = tokens_for(browser, world)  # ann@acme.example
    policy(world.org, allowed_email_domains=["acme.example"])
    renewed = refresh(browser, world.app, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    policy(world.org, allowed_email_domains=["globex.example"])
    refused = refresh(browser, world.app, renewed.json["refresh_token"])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    assert userinfo(browser, renewed.json["access_token"]).status_code == 401


def test_an_email_link_cannot_sign_in_a_member_outside_the_domains(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    outside = make_member(org, "bob@other.example")
    policy(org, allowed_email_domains=["acme.example"])
    response = _use_email_link(client, outside)
    assert response.status_code == 403
    assert response.headers["X-Gatehouse-Error"] == "policy_violation"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Session)) == 0
    inside = make_member(org, "ann@acme.example")
    assert _use_email_link(client, inside).status_code == 303


def test_the_login_page_of_an_org_with_allowed_domains_still_offers_email_links(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    policy(org, allowed_email_domains=["acme.example"])  # who signs in is asked at the link
    response = client.get("/login", query_string={"org": "acme"})
    assert response.status_code == 200 and 'name="email"' in response.text


def test_sso_sign_in_refuses_a_member_outside_the_narrowed_domains(app: Flask) -> None:
    org = make_org("acme")
    connection = make_connection(org)
    sso_session(connection, subject="bob-1", email="bob@other.example")  # JIT, before
    policy(org, allowed_email_domains=["acme.example"])
    with pytest.raises(PolicyViolation) as raised:
        sso_session(connection, subject="bob-1", email="bob@other.example")
    assert raised.value.key == "allowed_email_domains"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Session)) == 1  # the first one
    sso_session(connection, subject="ann-1", email="ann@acme.example")


def test_a_dry_run_lists_the_sessions_a_narrowing_would_end(
    app: Flask, client: FlaskClient
) -> None:
    org = make_org("acme")
    email_session(client, org, "ann@acme.example")
    outside = email_session(app.test_client(), org, "bob@other.example")
    report = set_org_policy(
        system_actor(), org, {"allowed_email_domains": ["acme.example"]}, dry_run=True
    )
    (impact,) = report["orgs"]
    assert impact["sessions"] == {
        "count": 1,
        "sample": [
            {
                "session_id": outside.id,
                "user_id": outside.user_id,
                "keys": ["allowed_email_domains"],
            }
        ],
    }
