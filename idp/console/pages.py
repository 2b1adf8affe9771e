"""What every page shares: one layout, a nonce per response for the CSP (no inline script
without it; the headers themselves are set for every page in ``idp.edge``), errors as pages
with the request id, and one commit per request."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, flash, g, render_template
from flask_wtf import FlaskForm

from idp.db import db, declare_workspace_wide, finish_request
from idp.edge import csp_nonce
from idp.errors import GatehouseError, NotFound

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console/static",
)


@bp.before_request
def start_workspace_wide() -> None:
    """Row-level security: finding the signed-in person and their orgs spans orgs; an org's
    page then declares that org (``Visit``), the setup portal its link's org (``Portal``)."""
    declare_workspace_wide()


def render(template: str, status: int = 200, **values: Any) -> Response:
    """A page from ``template`` (extending ``base.html``), autoescaped."""
    html = render_template(
        template, csp_nonce=csp_nonce(), request_id=g.get("request_id"), **values
    )
    return Response(html, status=status, content_type="text/html; charset=utf-8")


@bp.errorhandler(GatehouseError)
def error(exc: GatehouseError) -> Response:
    """A page naming what went wrong (never an exception's text) and the request id."""
    db.session.rollback()
    status = exc.status if exc.status < 500 else 500
    message = exc.message if status < 500 else "Something went wrong on our side"
    response = render("error.html", status, code=exc.code, message=message)
    response.headers["X-Gatehouse-Error"] = exc.code
    return response


def render_error_page(status: int, message: str) -> Response:
    """An HTTP error (unknown URL, wrong method) under these pages, as a page."""
    return render("error.html", status, code=str(status), message=message)


@bp.after_request
def commit(response: Response) -> Response:
    return finish_request(
        response,
        lambda: render(
            "error.html", 409, code="conflict", message="A concurrent change conflicts; try again"
        ),
    )


@bp.app_template_global()
def field_attributes(field: Any, hint: str | None, autocomplete: str | None) -> dict[str, str]:
    """A field's accessibility attributes: its hint and error described, invalid marked."""
    described = [f"{field.id}-hint"] if hint else []
    attributes: dict[str, str] = {}
    if field.errors:
        described.append(f"{field.id}-error")
        attributes["aria-invalid"] = "true"
    if described:
        attributes["aria-describedby"] = " ".join(described)
    if autocomplete:
        attributes["autocomplete"] = autocomplete
    return attributes


def flash_refusal(refused: GatehouseError) -> None:
    """A button's action refused: said on the page it returns to, nothing of it kept. A
    missing target or our own failure is an error page instead."""
    if refused.status >= 500 or isinstance(refused, NotFound):
        raise refused
    db.session.rollback()
    flash(refused.message)


def refuse_into(form: FlaskForm, exc: GatehouseError, default: str) -> None:
    """A service's refusal shown beside the field it names (``default`` when it names none)."""
    name = exc.details.get("field") or default
    field = getattr(form, name, None) or getattr(form, default)
    field.errors = [*field.errors, exc.message]


def policy_value(raw: str) -> Any:
    """What was typed: JSON when it reads as JSON (true, 3600, ["a.example"]), else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def run_policy_form(
    form: FlaskForm, apply: Callable[[dict[str, Any], bool], dict[str, Any]]
) -> tuple[bool, dict[str, Any] | None]:
    """A policy form's two steps: ``apply(change, dry_run)`` first as a dry run (its answer
    shown, the form then asking for confirmation), then, confirmed, for real. Returns (made,
    the dry run to show); a refusal is shown beside the value."""
    if not (form.is_submitted() and form.validate()):
        return False, None
    confirmed = form.confirmed.data == "yes"
    try:
        result = apply({form.key.data: policy_value(form.value.data)}, not confirmed)
    except GatehouseError as refused:
        refuse_into(form, refused, "value")
        return False, None
    if confirmed:
        return True, None
    form.confirmed.data = "yes"
    return False, result
