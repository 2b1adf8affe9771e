"""Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes, Schemas. GET only."""

from __future__ import annotations

from typing import Any

from flask import Response

from scim.api import bp, ctx, scim_response
from scim.errors import not_found
from scim.schemas import (
    LIST_RESPONSE,
    RESOURCE_TYPE,
    SCHEMA,
    SERVICE_PROVIDER_CONFIG,
    ResourceType,
    all_schemas,
    resource_types,
)

MAX_RESULTS = 1000


def service_provider_config() -> dict[str, Any]:
    """What this service provider supports (RFC 7643 §5)."""
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "The organization's SCIM token: Authorization: Bearer <token>",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": _location("/ServiceProviderConfig"),
        },
    }


def _location(path: str) -> str:
    return ctx().base_url + path


def _resource_type(rt: ResourceType) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [RESOURCE_TYPE],
        "id": rt.id,
        "name": rt.id,
        "endpoint": rt.endpoint,
        "description": rt.schema.description,
        "schema": rt.schema.id,
        "meta": {"resourceType": "ResourceType", "location": _location(f"/ResourceTypes/{rt.id}")},
    }
    if rt.extensions:
        body["schemaExtensions"] = [{"schema": e.id, "required": False} for e in rt.extensions]
    return body


def _schema(schema_id: str) -> dict[str, Any]:
    found = next((s for s in all_schemas() if s.id.lower() == schema_id.lower()), None)
    if found is None:
        raise not_found(f"No schema {schema_id!r}")
    return {
        **found.document,
        "schemas": [SCHEMA],
        "meta": {"resourceType": "Schema", "location": _location(f"/Schemas/{found.id}")},
    }


def _list(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources),
        "itemsPerPage": len(resources),
        "startIndex": 1,
        "Resources": resources,
    }


@bp.get("/ServiceProviderConfig")
def get_service_provider_config() -> Response:
    return scim_response(service_provider_config())


@bp.get("/ResourceTypes")
def list_resource_types() -> Response:
    return scim_response(_list([_resource_type(rt) for rt in resource_types()]))


@bp.get("/ResourceTypes/<type_id>")
def get_resource_type(type_id: str) -> Response:
    found = next((rt for rt in resource_types() if rt.id.lower() == type_id.lower()), None)
    if found is None:
        raise not_found(f"No resource type {type_id!r}")
    return scim_response(_resource_type(found))


@bp.get("/Schemas")
def list_schemas() -> Response:
    return scim_response(_list([_schema(s.id) for s in all_schemas()]))


@bp.get("/Schemas/<path:schema_id>")
def get_schema(schema_id: str) -> Response:
    # The path converter keeps a trailing slash (``/Schemas/<urn>/``): it is not part of the id.
    return scim_response(_schema(schema_id.rstrip("/")))
