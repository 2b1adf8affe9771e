"""Test sign-ins: before a connection is switched on, the customer's IT admin signs in through
it once; nobody is signed in, and each check of the IdP's answer is kept for them to read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from idp.actors import Actor, ActorKind
from idp.audit.services import record_org_event
from idp.connections.mfa import requested_authn_contexts
from idp.connections.models import Connection, ConnectionKind, ConnectionTest
from idp.connections.services import connection_secret
from idp.db import db, new_id, utcnow
from idp.errors import BadRequest, Conflict, NotFound
from idp.orgs.models import Organization
from idp.orgs.roles import Permission
from idp.orgs.services import check_permission
from idp.sso import saml

TEST_LIFETIME = timedelta(minutes=15)


def start_test(
    actor: Actor, org: Organization, connection: Connection, result_page: Callable[[str], str]
) -> tuple[ConnectionTest, str]:
    """Begin a test sign-in: the URL to open (the IdP's, with a fresh signed request); the
    IdP's answer then goes to ``result_page(test id)``, a path of this site."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    if connection.kind is not ConnectionKind.SAML:
        raise BadRequest("test_not_offered", "Test sign-ins are offered for SAML connections")
    if connection.draft:
        raise Conflict("connection_draft", "Give the IdP's values before testing")
    key = connection_secret(connection)
    request_id, url = saml.redirect_login_url(connection, key, requested_authn_contexts(connection))
    test = ConnectionTest(
        id=new_id("ctst"),
        connection_id=connection.id,
        request_id=request_id,
        started_by=actor.label,
    )
    test.return_to = result_page(test.id)
    db.session.add(test)
    db.session.flush()
    record_org_event(
        actor,
        org,
        "connection.test_started",
        "connection",
        connection.id,
        after={"test_id": test.id},
    )
    return test, url


def pending_test(connection: Connection, saml_response_b64: str) -> ConnectionTest | None:
    """The waiting test a response answers, if it answers one of this connection's."""
    in_response_to = saml.peek_in_response_to(saml_response_b64)
    if in_response_to is None:
        return None
    return db.session.scalar(
        select(ConnectionTest).where(
            ConnectionTest.connection_id == connection.id,
            ConnectionTest.request_id == in_response_to,
            ConnectionTest.passed.is_(None),
            ConnectionTest.created_at > utcnow() - TEST_LIFETIME,
        )
    )


def finish_test(
    connection: Connection,
    test: ConnectionTest,
    saml_response_b64: str,
    request_data: dict[str, Any],
) -> ConnectionTest:
    """Check the IdP's answer and keep the trace (once: the test is then finished)."""
    passed, checks = saml.trace_response(
        connection, saml_response_b64, request_data, test.request_id
    )
    test.passed, test.checks, test.finished_at = passed, checks, utcnow()
    db.session.flush()
    org = db.session.get(Organization, connection.org_id)
    actor = Actor(
        ActorKind.CONNECTION, connection.id, f"connection:{connection.name}", org_id=org.id
    )
    failed = [c["key"] for c in checks if c["passed"] is False]
    record_org_event(
        actor,
        org,
        "connection.tested",
        "connection",
        connection.id,
        after={"test_id": test.id, "passed": passed, "failed": failed},
    )
    return test


def get_test(connection: Connection, test_id: str) -> ConnectionTest:
    found = db.session.scalar(
        select(ConnectionTest).where(
            ConnectionTest.connection_id == connection.id, ConnectionTest.id == test_id
        )
    )
    if found is None:
        raise NotFound("test_not_found", "No such test sign-in of this connection")
    return found


def has_passed_test(connection: Connection) -> bool:
    """Whether a test sign-in passed since the connection was last changed."""
    found = db.session.scalar(
        select(ConnectionTest.id)
        .where(
            ConnectionTest.connection_id == connection.id,
            ConnectionTest.passed.is_(True),
            ConnectionTest.finished_at >= connection.updated_at,
        )
        .limit(1)
    )
    return found is not None


def latest_test(connection: Connection) -> ConnectionTest | None:
    return db.session.scalar(
        select(ConnectionTest)
        .where(ConnectionTest.connection_id == connection.id)
        .order_by(ConnectionTest.created_at.desc(), ConnectionTest.id.desc())
        .limit(1)
    )
