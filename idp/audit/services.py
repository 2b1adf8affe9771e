"""Recording and reading audit events."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import or_, select

from idp import telemetry
from idp.actors import Actor
from idp.audit.models import AuditEvent
from idp.db import db
from idp.errors import BadRequest
from idp.pagination import Page, paginate


def record_event(
    actor: Actor,
    action: str,
    *,
    workspace_id: str,
    org_id: str | None,
    target_type: str,
    target_id: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit event to the caller's transaction (committed or rolled back with it)."""
    event = AuditEvent(
        workspace_id=workspace_id,
        org_id=org_id,
        actor_type=actor.kind.value,
        actor_id=actor.user_id or actor.id,
        actor_label=actor.label,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
        request_id=actor.request_id,
    )
    db.session.add(event)
    telemetry.audit_recorded(
        db.session,
        action,
        org_id=org_id,
        actor=f"{actor.kind.value}:{actor.user_id or actor.id}",
        target_type=target_type,
        target_id=target_id,
        request_id=actor.request_id,
    )
    return event


class OrgLike(Protocol):
    id: str
    workspace_id: str


def record_org_event(
    actor: Actor,
    org: OrgLike,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record an event in ``org``'s audit log."""
    return record_event(
        actor,
        action,
        workspace_id=org.workspace_id,
        org_id=org.id,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )


def list_events(
    workspace_id: str,
    org_id: str | None,
    *,
    action: str | None = None,
    actor: str | None = None,
    actor_type: str | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[AuditEvent]:
    """An org's events, or with ``org_id`` None the workspace's own (its baseline
    policy, say), newest first."""
    query = select(AuditEvent).where(AuditEvent.workspace_id == workspace_id)
    if org_id is None:
        query = query.where(AuditEvent.org_id.is_(None))
    else:
        query = query.where(AuditEvent.org_id == org_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(or_(AuditEvent.actor_id == actor, AuditEvent.actor_label == actor))
    if actor_type:
        query = query.where(AuditEvent.actor_type == actor_type)
    if since:
        query = query.where(AuditEvent.created_at >= since)
    return paginate(query, AuditEvent.id, cursor=cursor, limit=limit, descending=True)


EXPORT_FORMATS = ("csv", "jsonl")
EXPORT_COLUMNS = (
    "id", "created_at", "action", "actor_type", "actor_id", "actor_label",
    "target_type", "target_id", "request_id", "before", "after",
)  # fmt: skip
_EXPORT_PAGE = 1000


def event_record(event: AuditEvent) -> dict[str, Any]:
    """One event as exports hold it (the same fields as the API's, flat)."""
    return {
        "id": event.id,
        "created_at": event.created_at.isoformat(),
        "action": event.action,
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "request_id": event.request_id,
        "before": event.before,
        "after": event.after,
    }


def export_events(
    workspace_id: str,
    org_id: str,
    fmt: str,
    *,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
) -> Iterator[str]:
    """The org's events, newest first, as CSV (a header, JSON in the before/after cells) or
    JSON lines: produced page by page, so an export of any size streams in bounded memory."""
    if fmt not in EXPORT_FORMATS:
        raise BadRequest("invalid_format", "format is csv or jsonl", field="format")
    if fmt == "csv":
        yield _csv_line(EXPORT_COLUMNS)
    cursor = None
    while True:
        page = list_events(
            workspace_id,
            org_id,
            action=action,
            actor=actor,
            since=since,
            cursor=cursor,
            limit=_EXPORT_PAGE,
        )
        for event in page.items:
            record = event_record(event)
            if fmt == "jsonl":
                yield json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
            else:
                yield _csv_line(
                    json.dumps(record[c], sort_keys=True)
                    if c in ("before", "after") and record[c] is not None
                    else record[c]
                    for c in EXPORT_COLUMNS
                )
        if not (cursor := page.next_cursor):
            return


def _csv_line(values: Iterable[Any]) -> str:
    """One CSV row; a cell that a spreadsheet would run as a formula is quoted as text."""
    buffer = io.StringIO()
    cells = ["" if v is None else str(v) for v in values]
    cells = ["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells]
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
