"""The OpenAPI 3 document of the admin API, built from the declared operations.

It says what the code answers (``tests/admin/test_openapi_conformance.py`` holds every
operation to it): each status code and body, the secrets that a create shows once, which
errors an operation can give, and the two endpoints of the browser's session that live
beside the API (``/api/v1/me``, ``/auth/check``).
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Response, jsonify
from marshmallow import Schema

from idp.admin.api import OPERATIONS, Ctx, Operation, operation
from idp.login.cookies import SESSION_COOKIE

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a stable code"},
        "message": {"type": "string"},
        "fields": {"type": "object", "description": "validation_error: the message per field"},
    },
}
_ERRORS = {
    "400": "Malformed or invalid request (the error code says which)",
    "401": "Missing or invalid API key",
    "403": "The key's role lacks the permission",
    "404": "Unknown, or another organization's, resource",
    "409": "Conflicts with the current state (last owner, last workspace key, duplicates)",
    "422": "Understood but not done (e.g. the TXT record was not found)",
    "429": "Too many attempts; retry after the Retry-After header's seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_URL_ARG = re.compile(r"<(?:[^:>]+:)?([^>]+)>")
_CURSOR = {"type": "string", "nullable": True, "description": "the next page's cursor"}


def _path(rule: str) -> str:
    return _URL_ARG.sub(r"{\1}", "/api/v1" + rule)


def _schema(schema: type[Schema] | dict[str, Any]) -> Any:
    """A schema, or ``oneOf`` its kinds with ``kind`` as the discriminator."""
    kinds = vars(schema).get("KINDS") if isinstance(schema, type) else None
    if not kinds:
        return schema
    return {
        "oneOf": list(kinds.values()),
        "discriminator": {
            "propertyName": "kind",
            "mapping": {
                kind: f"#/components/schemas/{cls.__name__.removesuffix('Schema')}"
                for kind, cls in kinds.items()
            },
        },
    }


def _error(code: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERRORS[code],
        "content": {"application/json": {"schema": ERROR}},
    }
    if code == "429":
        response["headers"] = _RETRY_AFTER
    return response


def _error_codes(op: Operation) -> list[str]:
    """The errors this operation can answer with, from what its declaration implies."""
    codes = ["400"] if op.body or op.query or "<" in op.rule or op.method != "GET" else []
    if op.scope != "public":
        codes.append("401")
    if op.scope in ("org", "key") or op.method != "GET":
        codes.append("403")  # the role's permission, or a service's own rule (role above)
    if op.scope in ("org", "workspace") or "<" in op.rule or op.scope == "public":
        codes.append("404")
    if op.method != "GET" or op.scope == "public":
        codes.append("409")
    if op.endpoint != "openapi_openapi_document":
        codes.append("429")  # every credential, key or token, is rate-limited
    return sorted({*codes, *op.errors})


def _success(op: Operation) -> tuple[str, dict[str, Any]]:
    if op.response is None:
        return "204", {"description": "Done"}
    schema: Any = _schema(op.response)
    if op.paged:
        schema = {
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": {
                "data": {"type": "array", "items": schema},
                "next_cursor": _CURSOR,
                **op.page_fields,
            },
            "additionalProperties": False,
        }
    elif op.many:
        schema = {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "array", "items": schema}},
            "additionalProperties": False,
        }
    content = {media: {"schema": schema} for media in op.media_types}
    return str(op.status), {"description": "Success", "content": content}


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.endpoint,
        "summary": op.summary,
        "tags": [op.endpoint.split("_", 1)[0]],
        "parameters": [
            {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
            for name in _URL_ARG.findall(op.rule)
        ],
        "responses": {code: _error(code) for code in _error_codes(op)},
    }
    if op.permission is not None:
        doc["x-permission"] = op.permission.value
    if op.scope == "public":
        doc["security"] = []
    if op.query is not None:
        doc["parameters"].append({"in": "query", "schema": op.query})
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _schema(op.body)}},
        }
    code, success = _success(op)
    doc["responses"][code] = success
    return doc


_ORG_REF = {
    "type": "object",
    "required": ["id", "slug", "name"],
    "properties": {
        "id": {"type": "string"},
        "slug": {"type": "string"},
        "name": {"type": "string"},
    },
}
ME = {
    "type": "object",
    "required": ["user", "org", "role", "session", "orgs"],
    "properties": {
        "user": {
            "type": "object",
            "required": ["id", "email", "name"],
            "properties": {
                "id": {"type": "string"},
                "email": {"type": "string"},
                "name": {"type": "string", "nullable": True},
            },
        },
        "org": _ORG_REF,
        "role": {"type": "string", "description": "the role key in the current org"},
        "session": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "method": {"type": "string"},
                "connection_id": {"type": "string", "nullable": True},
                "amr": {"type": "array", "items": {"type": "string"}},
                "auth_time": {"type": "string", "format": "date-time"},
                "expires_at": {"type": "string", "format": "date-time"},
            },
        },
        "orgs": {
            "type": "array",
            "items": {
                "allOf": [_ORG_REF],
                "type": "object",
                "properties": {
                    "role": {"type": "string"},
                    "signed_in": {
                        "type": "boolean",
                        "description": "switching there needs no new sign-in",
                    },
                },
            },
        },
    },
}
_IDENTITY_HEADERS = {
    f"X-Gatehouse-{name}": {"description": text, "schema": {"type": "string"}}
    for name, text in (
        ("User", "the user's id"),
        ("Email", "the address (beyond ASCII: percent-encoded UTF-8)"),
        ("Org", "the org's slug"),
        ("Role", "the role key in that org"),
        ("Permissions", "the permissions held there, space-separated"),
    )
}


def _session_paths() -> dict[str, dict[str, Any]]:
    """The browser's endpoints beside the API, which take the session cookie, not a key."""
    unauthenticated = {
        "description": "Not signed in, or the session is not admitted by the org's policy",
        "content": {"application/json": {"schema": ERROR}},
    }
    return {
        "/api/v1/me": {
            "get": {
                "operationId": "login_me",
                "summary": "The signed-in person, their current org and role, and every org.",
                "tags": ["session"],
                "security": [{"session": []}],
                "responses": {
                    "200": {
                        "description": "Signed in",
                        "content": {"application/json": {"schema": ME}},
                    },
                    "401": unauthenticated,
                },
            }
        },
        "/auth/check": {
            method: {
                "operationId": f"forward_auth_check_{method}",
                "summary": "Forward-auth: may this browser pass the proxy to the app?",
                "description": "The org is the one mapped from X-Forwarded-Host, else the "
                "X-Gatehouse-Org header, else the session's own. Every method is answered alike.",
                "tags": ["session"],
                "security": [{"session": []}],
                "parameters": [
                    {
                        "name": "redirect",
                        "in": "query",
                        "required": False,
                        "description": "1: refuse with a 302 to the sign-in page instead of "
                        "a 401 (Traefik hands a refusal to the browser as it is)",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Signed in and admitted: who the person is",
                        "headers": _IDENTITY_HEADERS,
                    },
                    "302": {
                        "description": "With redirect=1, not signed in or not admitted: "
                        "to the sign-in page",
                        "headers": {
                            "Location": {
                                "description": "the sign-in page, as X-Gatehouse-Login-URL",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "401": {
                        "description": "Not signed in or not admitted: where to sign in",
                        "headers": {
                            "X-Gatehouse-Login-URL": {
                                "description": "the sign-in page, coming back to the request",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                },
            }
            # A proxy asks with the method of the request it guards (nginx auth_request: GET).
            for method in ("get", "head", "post", "put", "patch", "delete", "options")
        },
    }


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document of every declared operation, /api/v1/me and /auth/check."""
    spec = APISpec(
        title="Gatehouse admin API",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Organizations, members, roles, invitations, teams, audit, keys."},
    )
    spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "session", {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE}
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(_path(op.rule), {})[op.method.lower()] = _operation(op)
    for path, operations in {**paths, **_session_paths()}.items():
        spec.path(path=path, operations=operations)
    document = _strict_nulls(spec.to_dict())
    document["security"] = [{"apiKey": []}]
    return document


def _strict_nulls(node: Any) -> Any:
    """apispec writes a nullable nested schema as ``anyOf: [ref, {type: object, nullable}]``,
    whose second branch admits any object; the API takes the schema or null only."""
    if isinstance(node, list):
        return [_strict_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict_nulls(value) for key, value in node.items()}
    if isinstance(out.get("anyOf"), list):
        out["anyOf"] = [
            {"nullable": True, "enum": [None]}
            if branch == {"type": "object", "nullable": True}
            else branch
            for branch in out["anyOf"]
        ]
    return out


@operation(
    "/openapi.json", scope="public", response={"type": "object", "description": "OpenAPI 3.0"}
)
def openapi_document(ctx: Ctx) -> Response:
    """This document."""
    return jsonify(build_spec())
