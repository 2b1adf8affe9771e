"""Test sign-ins: before a connection is switched on, the customer's IT admin signs in through
it once; nobody is signed in, and each check of the IdP's answer is kept for them to read."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from idp.actors import Actor, ActorKind
from idp.audit.services import record_org_event
from idp.connections.mfa import requested_authn_contexts
from idp.connections.models import Connection, ConnectionKind, ConnectionTest
from idp.connections.services import connection_secret
from idp.crypto import DecryptionError, decrypt_secret, encrypt_secret, token_digest
from idp.db import db, new_id, utcnow
from idp.errors import Conflict, NotFound
from idp.orgs.models import Organization
from idp.orgs.roles import Permission
from idp.orgs.services import check_permission
from idp.sso import oidc, saml
from idp.sso.trace import trace_line

TEST_LIFETIME = timedelta(minutes=15)


def start_test(
    actor: Actor, org: Organization, connection: Connection, result_page: Callable[[str], str]
) -> tuple[ConnectionTest, str]:
    """Begin a test sign-in: the URL to open (the IdP's, with a fresh request: a signed
    AuthnRequest, or state, nonce and PKCE S256); the IdP's answer then goes to
    ``result_page(test id)``, a path of this site."""
    check_permission(actor, Permission.CONNECTIONS_WRITE)
    if connection.draft:
        raise Conflict("connection_draft", "Give the IdP's values before testing")
    data: dict[str, Any] = {}
    if connection.kind is ConnectionKind.SAML:
        key = connection_secret(connection)
        request_id, url = saml.redirect_login_url(
            connection, key, requested_authn_contexts(connection)
        )
    else:
        request_id, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        url = oidc.authorization_url(connection, request_id, nonce, verifier)
        data = {"nonce": nonce, "verifier": encrypt_secret(verifier, _verifier_context(request_id))}
    test = ConnectionTest(
        id=new_id("ctst"),
        connection_id=connection.id,
        request_id=request_id,
        started_by=actor.label,
        data=data,
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


def _verifier_context(request_id: str) -> str:
    """Binds a test's encrypted PKCE verifier to that test."""
    return f"connection_tests.verifier:{token_digest(request_id)}"


def pending_oidc_test(connection: Connection, state: str) -> ConnectionTest | None:
    """The waiting test an OIDC answer's ``state`` names, if it is one of this connection's."""
    if not state or len(state) > 128:
        return None
    return _pending(connection, state)


def finish_oidc_test(
    connection: Connection, test: ConnectionTest, code: str, error: str | None
) -> ConnectionTest:
    """Exchange the code and check the ID token, keeping the trace (once)."""
    try:
        nonce = str(test.data["nonce"])
        verifier = decrypt_secret(
            test.data["verifier"], _verifier_context(test.request_id)
        ).decode()
    except (KeyError, TypeError, DecryptionError):
        return _finish(
            connection,
            test,
            False,
            [trace_line("readable", "The test's request is intact", False)],
        )
    passed, checks = oidc.trace_callback(connection, code, verifier, nonce, error)
    return _finish(connection, test, passed, checks)


def pending_test(connection: Connection, saml_response_b64: str) -> ConnectionTest | None:
    """The waiting test a SAML response answers, if it answers one of this connection's."""
    in_response_to = saml.peek_in_response_to(saml_response_b64)
    return None if in_response_to is None else _pending(connection, in_response_to)


def _pending(connection: Connection, request_id: str) -> ConnectionTest | None:
    return db.session.scalar(
        select(ConnectionTest).where(
            ConnectionTest.connection_id == connection.id,
            ConnectionTest.request_id == request_id,
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
    """Check the IdP's SAML answer and keep the trace (once: the test is then finished)."""
    passed, checks = saml.trace_response(
        connection, saml_response_b64, request_data, test.request_id
    )
    return _finish(connection, test, passed, checks)


def _finish(
    connection: Connection, test: ConnectionTest, passed: bool, checks: list[dict[str, Any]]
) -> ConnectionTest:
    test.passed, test.checks, test.finished_at = passed, checks, utcnow()
    test.data = {}  # the nonce and verifier served their one use
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
