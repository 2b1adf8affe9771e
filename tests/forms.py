"""Posting a browser form as the browser would: with the page's CSRF token (Flask-WTF's,
bound to this client's own cookie) and nothing cross-site about it."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_token(client: FlaskClient, page: str = "/login") -> str:
    """The CSRF token this client's pages carry (the sign-in page's, by default)."""
    found = TOKEN.search(client.get(page).text)
    assert found, f"no CSRF token on {page}"
    return found.group(1)


def form_post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    """``client.post`` of a form from one of our pages (its token added)."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client)}, **kw)
