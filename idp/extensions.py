"""Extensions created unbound; ``create_app`` binds them with ``init_app``."""

from __future__ import annotations

from typing import Any

from flask_migrate import Migrate

from idp.db import UTCDateTime

migrate = Migrate()


def render_migration_item(type_: str, obj: Any, _context: Any) -> str | bool:
    """Write app-specific column types as plain SQLAlchemy ones, so migrations stand alone."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False
