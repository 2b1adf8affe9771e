"""The OpenAPI 3 document of the admin API, built from the declared operations."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Response, jsonify

from idp.admin.api import OPERATIONS, Ctx, Operation, operation

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_ERRORS = {
    "400": "Malformed or invalid request",
    "401": "Missing or invalid API key",
    "403": "The key's role lacks the permission",
    "404": "Unknown, or another organization's, resource",
    "409": "Conflicts with the current state (last owner, member cap, duplicates)",
}


def _path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", "/api/v1" + rule)


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.endpoint,
        "summary": op.summary,
        "tags": [op.endpoint.split("_", 1)[0]],
        "parameters": [
            {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"<(?:[^:>]+:)?([^>]+)>", op.rule)
        ],
        "responses": {
            code: {"description": text, "content": {"application/json": {"schema": ERROR}}}
            for code, text in _ERRORS.items()
            if code != "401" or op.scope != "public"
        },
    }
    if op.permission is not None:
        doc["x-permission"] = op.permission.value
    if op.scope == "public":
        doc["security"] = []
    if op.query is not None:
        doc["parameters"].append({"in": "query", "schema": op.query})
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": op.body}},
        }
    if op.status == 204 or op.response is None:
        doc["responses"]["204"] = {"description": "Done"}
    else:
        schema: Any = op.response
        if op.paged:
            schema = {
                "type": "object",
                "properties": {
                    "data": {"type": "array", "items": op.response},
                    "next_cursor": {"type": "string", "nullable": True},
                },
            }
        doc["responses"][str(op.status)] = {
            "description": "Success",
            "content": {"application/json": {"schema": schema}},
        }
    return doc


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="Gatehouse admin API",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Organizations, members, roles, invitations, teams, audit, keys."},
    )
    spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer"})
    spec.options["security"] = [{"apiKey": []}]
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(_path(op.rule), {})[op.method.lower()] = _operation(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    document["security"] = [{"apiKey": []}]
    return document


@operation("/openapi.json", scope="public")
def openapi_document(ctx: Ctx) -> Response:
    """This document."""
    return jsonify(build_spec())
