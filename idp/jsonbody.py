"""JSON request bodies every surface reads the same way: strict JSON, storable text."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity (RFC 8259 §6)


def parse_json(raw: bytes) -> Any:
    """The parsed body; ``ValueError`` for anything that is not strict JSON or nests too deep."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nests too deeply") from None
    if _depth_exceeded(value, 0):
        raise ValueError("nests too deeply")
    return value


def _depth_exceeded(value: Any, depth: int) -> bool:
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_depth_exceeded(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_depth_exceeded(v, depth + 1) for v in value)
    return False


def has_unstorable_text(value: Any) -> bool:
    """Whether any text holds what no database takes: NUL, or a lone surrogate (``\\ud800``)."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(has_unstorable_text(k) or has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_unstorable_text(v) for v in value)
    return False
