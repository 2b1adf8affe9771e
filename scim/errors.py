"""SCIM errors (RFC 7644 §3.12): one exception, one response shape."""

from __future__ import annotations

from typing import Any

from flask import Response, json

from scim.schemas import ERROR

CONTENT_TYPE = "application/scim+json"


class ScimError(Exception):
    """An error answered in SCIM's format; ``scim_type`` as RFC 7644 Table 9 names them."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


def no_target(detail: str) -> ScimError:
    return ScimError(400, detail, "noTarget")


def mutability(detail: str) -> ScimError:
    return ScimError(400, detail, "mutability")


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def uniqueness(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")


def not_found(detail: str = "Resource not found") -> ScimError:
    return ScimError(404, detail)


def error_response(error: ScimError) -> Response:
    return Response(json.dumps(error.to_dict()), status=error.status, content_type=CONTENT_TYPE)
