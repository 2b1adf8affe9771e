"""PostgreSQL row-level security, the second wall behind the services' ``org_id`` filters:
a query that forgets its filter sees the declared org's rows only."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import ProgrammingError

from idp.actors import system_actor
from idp.db import (
    db,
    declare_nothing,
    declare_org,
    declare_workspace_wide,
    declared_org,
    workspace_wide,
)
from idp.orgs.models import Membership, Organization, Team
from idp.orgs.roles import Role
from idp.people.services import add_member
from tests.builders import make_member, make_org
from tests.forms import form_post
from tests.scim.conftest import scim_for
from tests.test_mail import Inbox

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A test that takes the inbox mails to it as deployed: on the courier's own thread."""
    if "inbox" not in request.fixturenames:
        return {}
    port = request.getfixturevalue("inbox").port
    return {"SMTP_URL": f"smtp://127.0.0.1:{port}", "MAIL_DELIVERY": "background"}


@pytest.fixture(autouse=True)
def _postgres(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("row-level security is PostgreSQL's; SQLite keeps the service layer's wall")


@pytest.fixture
def two_orgs(app: Flask) -> tuple[Organization, Organization]:
    alpha, beta = make_org("alpha"), make_org("beta")
    for org in (alpha, beta):
        make_member(org, f"owner@{org.slug}.example", Role.OWNER)
        make_member(org, f"member@{org.slug}.example")
    return alpha, beta


def _orgs_of_memberships() -> set[str]:
    """Every membership row the transaction can see: a query with no org filter at all."""
    return set(db.session.scalars(select(Membership.org_id)))


def test_the_app_role_is_bound_by_row_level_security(app: Flask) -> None:
    role = db.session.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    assert (role.rolsuper, role.rolbypassrls) == (False, False)
    forced = db.session.execute(
        text(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'memberships'"
        )
    ).one()
    assert tuple(forced) == (True, True)  # FORCE: the owning role is bound too


def test_an_unfiltered_query_sees_the_declared_org_only(
    two_orgs: tuple[Organization, Organization],
) -> None:
    alpha, beta = two_orgs
    db.session.commit()
    declare_org(alpha.id)
    assert _orgs_of_memberships() == {alpha.id}
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 2
    declare_org(beta.id)  # within the same transaction, the new declaration applies at once
    assert _orgs_of_memberships() == {beta.id}
    db.session.commit()
    assert _orgs_of_memberships() == {beta.id}  # and the next transaction declares it again


def test_nothing_declared_sees_nothing_and_workspace_wide_sees_all(
    two_orgs: tuple[Organization, Organization],
) -> None:
    alpha, beta = two_orgs
    db.session.commit()
    declare_nothing()
    assert _orgs_of_memberships() == set()
    assert db.session.scalars(select(Team)).all() == []
    declare_workspace_wide()
    assert _orgs_of_memberships() == {alpha.id, beta.id}


def test_a_workspace_wide_look_up_inside_org_work_ends_with_it(
    two_orgs: tuple[Organization, Organization],
) -> None:
    alpha, beta = two_orgs
    declare_org(alpha.id)
    with workspace_wide():
        assert _orgs_of_memberships() == {alpha.id, beta.id}
    assert declared_org() == alpha.id
    assert _orgs_of_memberships() == {alpha.id}


def test_a_row_of_another_org_cannot_be_written(
    two_orgs: tuple[Organization, Organization],
) -> None:
    alpha, beta = two_orgs
    db.session.commit()
    declare_org(alpha.id)
    db.session.add(Team(org_id=beta.id, name="Intruders"))
    with pytest.raises(ProgrammingError, match="row-level security"):
        db.session.flush()
    db.session.rollback()
    # Nor moved there: an alpha row given beta's org is refused by the same check.
    membership = db.session.scalars(select(Membership)).first()
    membership.org_id = beta.id
    with pytest.raises(ProgrammingError, match="row-level security"):
        db.session.flush()
    db.session.rollback()
    # And another org's rows are out of reach of an UPDATE or DELETE that forgets the filter.
    assert db.session.execute(Membership.__table__.delete()).rowcount == 2
    db.session.rollback()
    declare_workspace_wide()
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 4


def test_a_scim_request_cannot_read_another_org_even_unfiltered(
    app: Flask, client: FlaskClient, two_orgs: tuple[Organization, Organization]
) -> None:
    alpha, beta = two_orgs
    seen: list[set[str]] = []

    @app.after_request
    def forgetful_query(response: Response) -> Response:
        # Runs after SCIM committed its request's transaction: the query starts a new one,
        # which must be bound to the token's org again, with no org filter of its own.
        seen.append(_orgs_of_memberships())
        return response

    scim = scim_for(client, alpha)
    beta_scim = scim_for(client, beta)
    created = beta_scim("POST", "/Users", {"userName": "ann@beta.example", "active": True})
    assert created.status_code == 201
    seen.clear()
    response = scim("GET", "/Users")
    assert response.status_code == 200
    assert response.json["totalResults"] == 0  # beta's provisioned user is not alpha's
    assert seen == [{alpha.id}]
    assert scim("GET", f"/Users/{created.json['id']}").status_code == 404
    # The test's own (workspace-wide) declaration is back after the request.
    assert _orgs_of_memberships() == {alpha.id, beta.id}


def test_a_request_starts_with_nothing_declared(
    app: Flask, client: FlaskClient, two_orgs: tuple[Organization, Organization]
) -> None:
    declared: list[Any] = []

    @app.before_request
    def record() -> None:
        declared.append(declared_org())

    assert declared_org() == "*"  # the test's own
    client.get("/healthz")
    assert declared == [None]


def test_work_deferred_by_a_request_runs_under_its_declaration_on_the_courier_thread(
    app: Flask, client: FlaskClient, inbox: Inbox
) -> None:
    """The sign-in mail is decided on the courier's thread, which inherits no declaration;
    it runs under the request's (the login surface's, workspace-wide), so an address known
    only through an org's membership row still gets its link."""
    org = make_org("alpha")
    named = add_member(system_actor(), org, email="named@alpha.example")
    db.session.commit()
    assert named.user.email_normalized is None  # known through the membership only

    answer = form_post(client, "/login", data={"email": "named@alpha.example"})

    assert answer.status_code == 200 and "Check your email" in answer.text
    assert app.extensions["gatehouse.courier"].drain(30)
    assert [m.rcpt_tos for m in inbox.messages] == [["named@alpha.example"]]
    assert "/login/email?token=" in inbox.messages[0].body
