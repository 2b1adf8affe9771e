"""SCIM fixtures: an org with a SCIM token, and a client that speaks SCIM to it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.actors import system_actor
from idp.credentials.services import create_scim_token
from idp.db import db
from idp.orgs.models import Organization
from tests.builders import make_org

SCIM_JSON = "application/scim+json"


@dataclass
class Scim:
    """A SCIM client for one org: ``scim("POST", "/Users", body)`` → the test response."""

    client: FlaskClient
    slug: str
    token: str

    @property
    def base(self) -> str:
        return f"/scim/v2/{self.slug}"

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **query: Any,
    ) -> Any:
        return self.client.open(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body),
            content_type=SCIM_JSON if body is not None else None,
            query_string=query,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
        )


def make_scim(client: FlaskClient, slug: str) -> Scim:
    return scim_for(client, make_org(slug))


def scim_for(client: FlaskClient, org: Organization) -> Scim:
    """A SCIM client for an existing org, with a new token."""
    _, token = create_scim_token(system_actor(), org, name="idp")
    db.session.commit()
    return Scim(client, org.slug, token)


# Okta's deactivation (tests/data/okta-patch-user-deactivate.json), as other tests send it.
DEACTIVATE = json.loads(
    (Path(__file__).parent.parent / "data" / "okta-patch-user-deactivate.json").read_text()
)["request"]


@pytest.fixture
def scim(app: Flask, client: FlaskClient) -> Scim:
    return make_scim(client, "acme")


def user_body(user_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


def group_body(name: str, members: list[str] = (), **extra: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": [{"value": m} for m in members],
        **extra,
    }
