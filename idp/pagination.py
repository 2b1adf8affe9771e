"""Keyset pagination over time-ordered ids, with opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from idp.db import db
from idp.errors import BadRequest

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadRequest("invalid_cursor", "The cursor is not one this API returned") from None
    if not isinstance(value, str):
        raise BadRequest("invalid_cursor", "The cursor is not one this API returned")
    return value


def paginate(
    query: Select[Any],
    id_column: InstrumentedAttribute[str],
    *,
    cursor: str | None,
    limit: int,
    descending: bool = False,
) -> Page[Any]:
    """One page of ``query`` ordered by ``id_column``; fetches one extra row to know if more."""
    if cursor:
        after = decode_cursor(cursor)
        query = query.where(id_column < after if descending else id_column > after)
    order = id_column.desc() if descending else id_column.asc()
    rows = list(db.session.scalars(query.order_by(order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(getattr(rows[-1], id_column.key)) if more and rows else None
    return Page(rows, next_cursor)
