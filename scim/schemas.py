"""SCIM schemas (RFC 7643 §7, §8.7.1) and case-insensitive attribute resolution.

Attribute names are case-insensitive (RFC 7643 §2.1); every lookup here maps a name as a
client wrote it to the schema's canonical spelling, so stored documents use one spelling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SERVICE_PROVIDER_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"

# Present on every resource (RFC 7643 §3.1), not part of any published schema.
COMMON = ("id", "externalId", "meta", "schemas")


@dataclass(frozen=True)
class Attribute:
    """One attribute definition (RFC 7643 §7)."""

    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    canonical_values: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()

    @property
    def is_complex(self) -> bool:
        return self.type == "complex"

    def sub(self, name: str) -> Attribute | None:
        lowered = name.lower()
        return next((a for a in self.sub_attributes if a.name.lower() == lowered), None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attribute:
        return cls(
            name=data["name"],
            type=data.get("type", "string"),
            multi_valued=data.get("multiValued", False),
            required=data.get("required", False),
            case_exact=data.get("caseExact", False),
            mutability=data.get("mutability", "readWrite"),
            returned=data.get("returned", "default"),
            uniqueness=data.get("uniqueness", "none"),
            canonical_values=tuple(data.get("canonicalValues", ())),
            sub_attributes=tuple(cls.from_json(s) for s in data.get("subAttributes", ())),
        )


# The common attributes, typed so that filters and sorting treat them right.
COMMON_ATTRIBUTES = {
    "id": Attribute("id", case_exact=True, mutability="readOnly", returned="always"),
    "externalid": Attribute("externalId", case_exact=True),
    "meta": Attribute(
        "meta",
        type="complex",
        mutability="readOnly",
        sub_attributes=(
            Attribute("resourceType", case_exact=True, mutability="readOnly"),
            Attribute("created", type="dateTime", mutability="readOnly"),
            Attribute("lastModified", type="dateTime", mutability="readOnly"),
            Attribute("location", type="reference", case_exact=True, mutability="readOnly"),
            Attribute("version", case_exact=True, mutability="readOnly"),
        ),
    ),
}


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    document: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def attribute(self, name: str) -> Attribute | None:
        lowered = name.lower()
        return next((a for a in self.attributes if a.name.lower() == lowered), None)


@dataclass(frozen=True)
class ResourceType:
    """A resource type (RFC 7643 §6): its core schema and extensions."""

    id: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...]

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(e.id for e in self.extensions))

    def extension(self, urn: str) -> Schema | None:
        lowered = urn.lower()
        return next((e for e in self.extensions if e.id.lower() == lowered), None)


@dataclass(frozen=True)
class AttributePath:
    """A resolved ``[urn:]attr[.sub]``: where it lives and how it is defined.

    ``urn`` is the extension holding it (``None`` for the core schema and the common
    attributes); ``name``/``sub`` use the canonical spelling; ``attribute`` is the definition
    of the attribute, ``sub_attribute`` that of the sub-attribute when there is one. An
    attribute of an unknown extension (custom schemas sent by Okta) resolves with a generic
    string definition so it can still be stored, returned and filtered.
    """

    urn: str | None
    name: str
    sub: str | None
    attribute: Attribute
    sub_attribute: Attribute | None

    @property
    def leaf(self) -> Attribute:
        return self.sub_attribute or self.attribute

    @property
    def keys(self) -> tuple[str, ...]:
        """Where the value sits in a stored document."""
        head = (self.urn,) if self.urn else ()
        return (*head, self.name) + ((self.sub,) if self.sub else ())

    def __str__(self) -> str:
        text = f"{self.urn}:{self.name}" if self.urn else self.name
        return f"{text}.{self.sub}" if self.sub else text


class UnknownAttribute(LookupError):
    """The path names no attribute of the resource type."""


def split_urn(path: str) -> tuple[str | None, str]:
    """``urn:...:User:name.givenName`` → (``urn:...:User``, ``name.givenName``)."""
    if not path.lower().startswith("urn:"):
        return None, path
    urn, _, rest = path.rpartition(":")
    # The attribute is after the last colon, unless a dot-free URN has no attribute at all.
    return urn, rest


def resolve(resource_type: ResourceType, path: str) -> AttributePath:
    """Resolve ``[urn:]attr[.sub]`` against the resource type, case-insensitively."""
    urn, rest = split_urn(path)
    name, _, sub = rest.partition(".")
    if not name:
        raise UnknownAttribute(path)
    schema: Schema | None
    if urn is None or urn.lower() == resource_type.schema.id.lower():
        urn = None
        common = COMMON_ATTRIBUTES.get(name.lower())
        attribute = common or resource_type.schema.attribute(name)
    else:
        schema = resource_type.extension(urn)
        if schema is None:
            # A custom extension we hold no schema for: keep the spelling as sent.
            generic = Attribute(name, type="complex" if sub else "string")
            return AttributePath(urn, name, sub or None, generic, Attribute(sub) if sub else None)
        urn, attribute = schema.id, schema.attribute(name)
    if attribute is None:
        raise UnknownAttribute(path)
    if not sub:
        return AttributePath(urn, attribute.name, None, attribute, None)
    sub_attribute = attribute.sub(sub)
    if sub_attribute is None:
        raise UnknownAttribute(path)
    return AttributePath(urn, attribute.name, sub_attribute.name, attribute, sub_attribute)


@cache
def _schema_documents() -> dict[str, dict[str, Any]]:
    data = json.loads((Path(__file__).parent / "data" / "schemas.json").read_text())
    return {doc["id"]: doc for doc in data}


@cache
def schema(schema_id: str) -> Schema:
    doc = _schema_documents()[schema_id]
    return Schema(
        id=doc["id"],
        name=doc["name"],
        description=doc.get("description", ""),
        attributes=tuple(Attribute.from_json(a) for a in doc["attributes"]),
        document=doc,
    )


@cache
def user_type() -> ResourceType:
    return ResourceType("User", "/Users", schema(USER), (schema(ENTERPRISE_USER),))


@cache
def group_type() -> ResourceType:
    return ResourceType("Group", "/Groups", schema(GROUP), ())


def resource_types() -> tuple[ResourceType, ...]:
    return (user_type(), group_type())


def all_schemas() -> tuple[Schema, ...]:
    return tuple(schema(s) for s in _schema_documents())
