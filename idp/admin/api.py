"""The admin API's plumbing: bearer auth, the permission gate, parsing, serializing, errors.

Each view is declared with :func:`operation`, which records what the OpenAPI document needs,
authenticates the API key, resolves the org in the URL and asks the one permission decision
(``roles.decide``) before the view runs. Another org's resource is always 404, never 403.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from marshmallow import Schema, ValidationError
from sqlalchemy.exc import IntegrityError

from idp.actors import Actor, anonymous_actor
from idp.credentials.services import actor_for_key, authenticate_api_key
from idp.db import db, declare_org, declare_workspace_wide, finish_request
from idp.errors import BadRequest, Forbidden, GatehouseError, NotFound, Unauthorized
from idp.jsonbody import has_unstorable_text, parse_json
from idp.orgs.models import Organization
from idp.orgs.roles import Permission, decide
from idp.orgs.services import get_org
from idp.pagination import Page
from idp.ratelimit import Credential, check_credential, fail_credential

bp = Blueprint("admin", __name__, url_prefix="/api/v1")


@dataclass(frozen=True)
class Ctx:
    """What a view gets: who is calling, with which authority, in which workspace and org."""

    actor: Actor
    workspace_id: str = ""  # the caller's workspace; set for every authenticated view
    org: Organization = None  # type: ignore[assignment]  # set for every scope="org" view


@dataclass
class Operation:
    rule: str
    method: str
    endpoint: str
    summary: str
    scope: str
    permission: Permission | None
    body: type[Schema] | None
    query: type[Schema] | None
    response: type[Schema] | dict[str, Any] | None
    status: int
    paged: bool
    many: bool = False
    body_required: bool = False
    media_types: tuple[str, ...] = ("application/json",)
    page_fields: dict[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


OPERATIONS: list[Operation] = []
SCOPES = ("org", "workspace", "key", "public")


def operation(
    rule: str,
    method: str = "GET",
    *,
    scope: str = "org",
    permission: Permission | None = None,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    response: type[Schema] | dict[str, Any] | None = None,
    status: int = 200,
    paged: bool = False,
    many: bool = False,
    media_types: tuple[str, ...] = ("application/json",),
    page_fields: dict[str, Any] | None = None,
    errors: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an admin API operation.

    ``scope``: ``org`` (the URL's ``<slug>``; needs ``permission`` there), ``workspace`` (a
    workspace key), ``key`` (any valid key) or ``public`` (no credential: the body's token is
    the proof). The view is called as ``view(ctx, *url_args, data=..., args=...)``.
    ``response``: a schema (or a JSON schema) of what the view answers with ``status``;
    ``paged``: a page of them (``data``, ``next_cursor`` and ``page_fields``); ``many``: all of
    them (``data``); none: 204. ``errors``: status codes beyond those its scope implies.
    The body is required for PUT and PATCH (a missing one must not read as "change nothing")
    and wherever the schema has a required field.
    """
    if scope not in SCOPES or (scope == "org" and permission is None):
        raise ValueError(f"operation {rule}: scope {scope!r} needs a known scope and permission")
    body_required = body is not None and (
        method in ("PUT", "PATCH")
        or "KINDS" in vars(body)  # one of several schemas: at least its discriminator
        or any(f.required for f in body().fields.values())
    )

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handle(**url_args: Any) -> Any:
            ctx = _context(scope, permission, url_args.pop("slug", None), url_args.get("team_id"))
            kwargs: dict[str, Any] = {}
            if body is not None:
                kwargs["data"] = _load(body(), _json_body(required=body_required))
            if query is not None:
                kwargs["args"] = _load(query(), request.args.to_dict(flat=True))
            return _respond(view(ctx, **url_args, **kwargs), response, status, paged)

        endpoint = f"{view.__module__.rsplit('.', 1)[-1]}_{view.__name__}"
        bp.add_url_rule(rule, endpoint, handle, methods=[method])
        OPERATIONS.append(
            Operation(
                rule,
                method,
                endpoint,
                (view.__doc__ or "").strip().split("\n")[0],
                scope,
                permission,
                body,
                query,
                response,
                status,
                paged,
                many,
                body_required,
                media_types,
                page_fields or {},
                errors,
            )
        )
        return handle

    return register


def _bearer_actor() -> Actor:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    check_credential(Credential.API_KEY, token)
    key = authenticate_api_key(token) if token else None
    if key is None:
        fail_credential(Credential.API_KEY, token)
        raise Unauthorized(
            "unauthorized", "A valid API key is required (Authorization: Bearer ...)"
        )
    # Row-level security: an org key works for its org alone, a workspace key for all.
    declare_workspace_wide() if key.org_id is None else declare_org(key.org_id)
    return actor_for_key(key, g.get("request_id"))


def _context(
    scope: str, permission: Permission | None, slug: str | None, team_id: str | None = None
) -> Ctx:
    if scope == "public":
        # No credential: the body's token is the proof, and it names the org (invitations).
        declare_workspace_wide()
        return Ctx(anonymous_actor(g.get("request_id")))
    actor = _bearer_actor()
    workspace_id = actor.workspace_id or ""
    if scope == "workspace" and not actor.is_workspace:
        raise NotFound("not_found", "No such resource")  # org keys do not see workspace resources
    if scope != "org":
        return Ctx(actor, workspace_id)
    org = get_org(workspace_id, slug or "")
    declare_org(org.id)  # the URL's org, before any of its rows is read
    role = actor.authority_in(org.id)
    if role is None and team_id is not None:  # a team's own key, on that team's paths
        role = actor.authority_on_team(org.id, team_id)
    if role is None:
        raise NotFound("org_not_found", f"No organization {slug!r}")
    decision = decide(role, permission)  # type: ignore[arg-type]
    if not decision.allowed:
        raise Forbidden(
            "forbidden", f"This needs the {permission} permission", reason=decision.reason
        )
    return Ctx(actor.in_org(role), workspace_id, org)


def _json_body(*, required: bool = False) -> Any:
    # get_data, not request.data: Werkzeug leaves .data empty for form content types.
    raw = request.get_data(cache=True)
    if not raw and not request.content_type:
        if required:
            raise BadRequest("invalid_request", "This operation needs a JSON object as its body")
        return {}
    if not request.is_json:
        raise BadRequest("unsupported_media_type", "Send the body as application/json")
    try:
        return parse_json(raw)
    except ValueError:
        raise BadRequest("malformed_json", "The request body is not valid JSON") from None


def _load(schema: Schema, data: Any) -> Any:
    if not isinstance(data, dict):
        raise BadRequest("invalid_request", "Expected a JSON object")
    if has_unstorable_text(data):
        raise BadRequest("invalid_characters", "Text may not hold NUL or lone surrogates")
    return schema.load(data)


def _respond(result: Any, response: type[Schema] | None, status: int, paged: bool) -> Any:
    if isinstance(result, tuple):
        result, status = result
    if result is None:
        return Response(status=204)
    if isinstance(result, Response):
        return result
    if isinstance(result, dict):
        return jsonify(result), status
    if not isinstance(response, type):
        raise TypeError("an operation returning a model needs a response schema")
    if isinstance(result, Page):
        return jsonify(
            data=response(many=True).dump(result.items), next_cursor=result.next_cursor
        ), status
    return jsonify(response().dump(result)), status


@bp.after_request
def commit(response: Response) -> Response:
    """The request commits once, only if it succeeded; an error leaves nothing behind."""
    return finish_request(response, _conflict)


def _conflict() -> Response:
    return _error_response(
        409, {"error": "conflict", "message": "A concurrent change conflicts; try again"}
    )


def _error_response(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


@bp.errorhandler(GatehouseError)
def domain_error(exc: GatehouseError) -> Response:
    db.session.rollback()
    response = _error_response(exc.status, exc.to_dict())
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gatehouse"'
    return response


@bp.errorhandler(ValidationError)
def invalid_input(exc: ValidationError) -> Response:
    db.session.rollback()
    return _error_response(
        400,
        {"error": "validation_error", "message": "The request is invalid", "fields": exc.messages},
    )


@bp.errorhandler(IntegrityError)
def integrity_error(exc: IntegrityError) -> Response:
    db.session.rollback()
    return _conflict()
