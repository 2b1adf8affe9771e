"""Downloads every surface offers alike (the admin API and the console): never cached, named
for the org."""

from __future__ import annotations

import tempfile
from typing import Any

from flask import Response, send_file

from idp.audit.services import export_events
from idp.orgs.models import Organization

SPOOL_BYTES = 8 * 1024 * 1024  # kept in memory up to this, then on disk


def audit_export(org: Organization, *, format: str, **filters: Any) -> Response:
    """The org's audit events as a CSV or JSON-lines download: written out page by page
    (bounded memory, whatever the log's size), then sent as a file."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b")  # noqa: SIM115 - send_file closes it
    try:
        for line in export_events(org.workspace_id, org.id, format, **filters):
            spool.write(line.encode())
    except BaseException:
        spool.close()
        raise
    size = spool.tell()
    spool.seek(0)
    kind = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"{org.slug}-audit.{format}"
    if size <= SPOOL_BYTES:  # still in memory: sent as it is
        with spool:
            response = Response(spool.read(), mimetype=kind)
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    else:  # on disk: sent from the file, which is closed with the response
        response = send_file(spool, mimetype=kind, as_attachment=True, download_name=name)
    response.headers["Cache-Control"] = "no-store"
    return response
