"""Discovery endpoints (RFC 7644 §4)."""

from __future__ import annotations

from tests.scim.conftest import Scim
from tests.scim.test_users import error


def test_service_provider_config(scim: Scim) -> None:
    config = scim("GET", "/ServiceProviderConfig").json
    assert config["patch"]["supported"] and config["filter"]["supported"]
    assert config["filter"]["maxResults"] == 1000 and config["etag"]["supported"]
    assert config["bulk"]["supported"] is False
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types(scim: Scim) -> None:
    listed = scim("GET", "/ResourceTypes").json
    assert {r["id"] for r in listed["Resources"]} == {"User", "Group"}
    user = scim("GET", "/ResourceTypes/User").json
    assert user["endpoint"] == "/Users" and user["schemaExtensions"][0]["schema"].endswith(
        "enterprise:2.0:User"
    )
    error(scim("GET", "/ResourceTypes/Printer"), 404)


def test_schemas(scim: Scim) -> None:
    listed = scim("GET", "/Schemas").json
    assert listed["totalResults"] == 3
    user = scim("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json
    assert user["name"] == "User" and any(a["name"] == "userName" for a in user["attributes"])
    error(scim("GET", "/Schemas/urn:nope"), 404)


def test_discovery_is_read_only(scim: Scim) -> None:
    for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = scim(method, path, {})
            error(response, 405)
