"""The few HTML pages of the browser flows: small, autoescaped, never cached."""

from __future__ import annotations

from typing import Any

from flask import Response, g, render_template_string
from markupsafe import Markup

_LAYOUT = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{{ title }}</title>
<body><main><h1>{{ title }}</h1>{{ body }}</main>
<footer><small>Request {{ request_id }}</small></footer></body></html>"""


def page(title: str, template: str, status: int = 200, **values: Any) -> Response:
    """A page: ``template`` (Jinja, autoescaped) inside the layout."""
    body = render_template_string(template, **values)
    inner = Markup(body)  # noqa: S704 - rendered autoescaped above
    html = render_template_string(
        _LAYOUT, title=title, body=inner, request_id=g.get("request_id", "")
    )
    response = Response(html, status=status, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response  # its CSP, framing and referrer headers: ``idp.edge``, as for every page
