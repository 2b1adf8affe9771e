"""Recording and reading audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import or_, select

from idp.actors import Actor
from idp.audit.models import AuditEvent
from idp.db import db
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
    if since:
        query = query.where(AuditEvent.created_at >= since)
    return paginate(query, AuditEvent.id, cursor=cursor, limit=limit, descending=True)
