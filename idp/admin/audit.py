"""The org's audit log."""

from __future__ import annotations

from typing import Any

from flask import Response

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.audit.models import AuditEvent
from idp.audit.services import list_events
from idp.downloads import audit_export
from idp.orgs.roles import Permission
from idp.pagination import Page


@operation(
    "/orgs/<slug>/audit-events",
    permission=Permission.AUDIT_READ,
    query=s.AuditQuery,
    response=s.AuditEventOut,
    paged=True,
)
def list_audit_events(ctx: Ctx, args: dict[str, Any]) -> Page[AuditEvent]:
    """Audit events, newest first, by ``action``, ``actor`` (id or label) and ``since``."""
    return list_events(ctx.org.workspace_id, ctx.org.id, **args)


@operation(
    "/orgs/<slug>/audit-events/export",
    permission=Permission.AUDIT_READ,
    query=s.AuditExportQuery,
    response={"type": "string", "description": "CSV with a header row, or JSON lines"},
    media_types=("text/csv", "application/x-ndjson"),
)
def export_audit_events(ctx: Ctx, args: dict[str, Any]) -> Response:
    """Every matching audit event, newest first, as ``csv`` or ``jsonl``, streamed."""
    return audit_export(ctx.org, **args)


@operation(
    "/workspace/audit-events",
    scope="workspace",
    query=s.AuditQuery,
    response=s.AuditEventOut,
    paged=True,
)
def list_workspace_audit_events(ctx: Ctx, args: dict[str, Any]) -> Page[AuditEvent]:
    """The workspace's own events (baseline policy changes), newest first."""
    return list_events(ctx.workspace_id, None, **args)
