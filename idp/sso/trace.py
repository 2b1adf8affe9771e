"""A test sign-in's trace: one line per check, as the SAML and OIDC checks both write it."""

from __future__ import annotations

from typing import Any


def trace_line(
    key: str, label: str, passed: bool | None, expected: Any = None, received: Any = None
) -> dict[str, Any]:
    """One line of a test sign-in's trace; ``passed`` None: not checked (or not required)."""
    return {
        "key": key,
        "label": label,
        "passed": passed,
        "expected": expected,
        "received": received,
    }
