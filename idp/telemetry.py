"""What the domains and surfaces report: Prometheus counters and one structured log line per
sign-in and per audited change, emitted once the change is committed.

A hook module: it knows no request and no surface, so a domain may import it. The Flask
wiring (``/metrics``, request timing, the log format, tracing) is ``idp.observability``.

Labels are bounded sets only: routes (URL rules, never raw paths), status codes, methods,
stable error codes and policy keys. No user, org or free text is ever a label: a label value
per tenant would grow the series without bound.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

log = logging.getLogger("gatehouse.events")

HTTP_REQUESTS = Counter(
    "gatehouse_http_requests",
    "HTTP requests answered, by method, route (the URL rule) and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "gatehouse_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route (the URL rule)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SIGN_INS = Counter(
    "gatehouse_sign_ins",
    "Sign-ins by method (oidc, saml, email_link) and result (success, refused), "
    "with the refusal's stable code as reason",
    ["method", "result", "reason"],
)
SCIM_OPERATIONS = Counter(
    "gatehouse_scim_operations",
    "SCIM requests by resource (Users, Groups, ...), operation and result",
    ["resource", "operation", "result"],
)
POLICY_REFUSALS = Counter(
    "gatehouse_policy_refusals",
    "Attempts an org's policy refused, by policy key",
    ["policy"],
)

_CODE = re.compile(r"^[A-Za-z.][A-Za-z0-9_.]{0,63}$")
_PENDING = "gatehouse.after_commit"


def label(value: str | None, default: str = "other") -> str:
    """A label value from code (a stable error code, a policy key), or ``default``: whatever
    does not look like one of ours never becomes a series."""
    return value if value and _CODE.match(value) else default


# --- after commit -------------------------------------------------------------------------


def after_commit(session: Session | scoped_session[Any], report: Callable[[], None]) -> None:
    """Run ``report`` once ``session``'s transaction commits; a rollback (of the savepoint it
    was made in, or of everything) drops it, so nothing is reported that did not happen."""
    if isinstance(session, scoped_session):
        session = session()  # this thread's session, whose events fire
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((transaction, report))


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _report_committed(session: Session) -> None:
    for _transaction, report in session.info.pop(_PENDING, []):
        try:
            report()
        except Exception:  # a report must never turn a committed change into an error
            log.exception("reporting a committed change failed")


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if pending:
        pending[:] = [(t, report) for t, report in pending if not _within(t, previous)]


# --- what is reported -----------------------------------------------------------------------


def audit_recorded(
    session: Session | scoped_session[Any],
    action: str,
    *,
    org_id: str | None,
    actor: str,
    target_type: str,
    target_id: str | None,
    request_id: str | None,
) -> None:
    """One log line per audited change (admin, provisioning, sign-in), once committed.

    Only names and ids: the event's before/after stay in the audit log.
    """

    def report() -> None:
        log.info(
            "%s %s %s",
            action,
            target_type,
            target_id or "-",
            extra=_fields(
                event=action,
                org=org_id,
                actor=actor,
                target_type=target_type,
                target_id=target_id,
                request_id=request_id,
            ),
        )

    after_commit(session, report)


def sign_in_succeeded(
    session: Session | scoped_session[Any],
    method: str,
    *,
    org_id: str | None,
    user_id: str,
    session_id: str,
) -> None:
    """A session started: counted and logged once committed."""

    def report() -> None:
        SIGN_INS.labels(label(method), "success", "").inc()
        log.info(
            "sign-in succeeded (%s)",
            method,
            extra=_fields(
                event="sign_in",
                result="success",
                method=method,
                org=org_id,
                actor=f"user:{user_id}",
                session_id=session_id,
            ),
        )

    after_commit(session, report)


def sign_in_refused(method: str, reason: str, *, policy: str | None = None) -> None:
    """A sign-in refused (nothing to commit): counted and logged now, with its stable code
    (and the policy key, when a policy refused it)."""
    method, reason = label(method), label(reason)
    SIGN_INS.labels(method, "refused", reason).inc()
    log.info(
        "sign-in refused (%s): %s",
        method,
        reason,
        extra=_fields(
            event="sign_in",
            result="refused",
            method=method,
            reason=reason,
            policy=label(policy) if policy else None,
        ),
    )


def policy_refused(key: str) -> None:
    POLICY_REFUSALS.labels(label(key)).inc()


def scim_operation(resource: str, operation: str, status: int) -> None:
    result = "success" if status < 400 else "client_error" if status < 500 else "server_error"
    SCIM_OPERATIONS.labels(label(resource, "unknown"), operation, result).inc()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def _fields(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}
