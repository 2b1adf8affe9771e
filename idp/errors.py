"""The domain's exception tree: each error carries an HTTP status and a stable code."""

from __future__ import annotations

from typing import Any


class GatehouseError(Exception):
    """Base of every error a service raises on purpose; ``code`` is a stable API string."""

    status = 400

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class BadRequest(GatehouseError):
    status = 400


class Unauthorized(GatehouseError):
    status = 401


class Forbidden(GatehouseError):
    status = 403


class NotFound(GatehouseError):
    status = 404


class Conflict(GatehouseError):
    status = 409


class Gone(GatehouseError):
    status = 410


class Unprocessable(GatehouseError):
    status = 422
