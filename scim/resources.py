"""Reading and shaping resources: canonical documents, list parameters, attribute projection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scim import quirks
from scim.errors import ScimError, invalid_value
from scim.filters import FilterTarget, order_by
from scim.schemas import (
    LIST_RESPONSE,
    SEARCH_REQUEST,
    Attribute,
    ResourceType,
    UnknownAttribute,
    resolve,
    split_urn,
)

DEFAULT_COUNT = 100
MAX_COUNT = 1000
MAX_START_INDEX = 2**31  # past any result set; keeps OFFSET within every database's range
# Attributes the client may never set (RFC 7643 §3.1, §7): the server's own.
SERVER_OWNED = {"id", "meta", "schemas"}
_URN = re.compile(r"^urn:[a-z0-9][a-z0-9-]{0,31}:", re.IGNORECASE)


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _check_type(attribute: Attribute, value: Any, where: str) -> Any:
    """The value if it fits the definition (RFC 7643 §2.3), empty members dropped."""
    if attribute.multi_valued:
        if not isinstance(value, list):
            raise invalid_value(f"{where} must be a list")
        items = [_check_single(attribute, item, where) for item in value]
        return [item for item in items if not is_empty(item)]
    return _check_single(attribute, value, where)


def _check_single(attribute: Attribute, value: Any, where: str) -> Any:
    kind = attribute.type
    if value is None:
        return None
    if kind == "complex":
        if not isinstance(value, dict):
            raise invalid_value(f"{where} must be an object")
        result: dict[str, Any] = {}
        for key, item in value.items():
            sub = attribute.sub(key)
            if sub is None or sub.mutability == "readOnly":
                continue  # unknown or server-computed sub-attributes (manager.displayName)
            checked = _check_type(sub, item, f"{where}.{sub.name}")
            if not is_empty(checked):
                result[sub.name] = checked
        return result
    return check_simple(attribute, value, where)


def check_simple(attribute: Attribute, value: Any, where: str) -> Any:
    """A simple value checked against its type (RFC 7643 §2.3)."""
    kind = attribute.type
    if kind == "complex":
        raise invalid_value(f"{where} must be an object")
    if kind == "boolean":
        if not isinstance(value, bool):
            raise invalid_value(f"{where} must be true or false")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_value(f"{where} must be an integer")
    elif kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_value(f"{where} must be a number")
    elif not isinstance(value, str):
        raise invalid_value(f"{where} must be a string")
    elif kind == "dateTime" and value:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise invalid_value(f"{where} must be an xsd:dateTime") from None
    return value


def canonical_document(body: dict[str, Any], resource_type: ResourceType) -> dict[str, Any]:
    """The writable attributes of ``body`` under their canonical names, type-checked.

    Server-owned and read-only attributes are dropped (clients such as Okta echo them back),
    as are write-only ones (a password is accepted, never stored), unknown core attributes,
    and empty values (RFC 7643 §2.5: unassigned). Extension objects keep their URN key; an
    extension with no published schema is kept as sent.
    """
    document: dict[str, Any] = {}
    for key, value in body.items():
        if key.lower() in SERVER_OWNED or is_empty(value):
            continue
        urn, _ = split_urn(key)
        extension = resource_type.extension(key) if _URN.match(key) else None
        if extension is not None:
            if not isinstance(value, dict):
                raise invalid_value(f"{key} must be an object")
            fields = {}
            for name, item in value.items():
                attribute = extension.attribute(name)
                if attribute is None or attribute.mutability == "readOnly" or name == "schemas":
                    continue
                checked = _check_type(attribute, item, f"{extension.id}:{attribute.name}")
                if not is_empty(checked):
                    fields[attribute.name] = checked
            if fields:
                document[extension.id] = fields
            continue
        if _URN.match(key) and urn is not None and key.lower() != resource_type.schema.id.lower():
            if resource_type.extension(urn) is None:
                document[key] = value  # a custom extension (Okta's): stored and returned as sent
            continue
        try:
            path = resolve(resource_type, key)
        except UnknownAttribute:
            continue
        attribute = path.attribute
        if attribute.mutability in ("readOnly",) or attribute.returned == "never":
            continue
        checked = _check_type(attribute, value, attribute.name)
        if not is_empty(checked):
            document[path.name] = checked
    return document


def external_id(document: dict[str, Any]) -> str | None:
    """Take ``externalId`` out of a document: the IdP's own id, at most 255 characters."""
    value = document.pop("externalId", None)
    if value is not None and len(value) > 255:
        raise invalid_value("externalId is longer than 255 characters")
    return value


def primary_value(document: dict[str, Any], attribute: str) -> str | None:
    """The value of the primary item of a multi-valued attribute, else of the first one."""
    items = [i for i in document.get(attribute, []) if isinstance(i, dict) and i.get("value")]
    chosen = next((i for i in items if i.get("primary") is True), items[0] if items else None)
    return chosen["value"] if chosen else None


# --- listing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ListParams:
    """Query parameters of a list or search (RFC 7644 §3.4.2, §3.4.3)."""

    filter: str | None = None
    start_index: int = 1
    count: int = DEFAULT_COUNT
    sort_by: str | None = None
    descending: bool = False
    attributes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_value(f"{name} must be an integer") from None


def _names(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise invalid_value(f"{name} must be a list of attribute names")


def list_params(source: dict[str, Any], *, search: bool = False) -> ListParams:
    """From query parameters, or (``search``) from a SearchRequest body (RFC 7644 §3.4.3)."""
    schemas = source.get("schemas", [SEARCH_REQUEST])
    if search and (not isinstance(schemas, list) or SEARCH_REQUEST not in schemas):
        raise ScimError(400, f"A search request needs the schema {SEARCH_REQUEST}", "invalidSyntax")
    start = _int(source.get("startIndex", 1), "startIndex")
    count = _int(source.get("count", DEFAULT_COUNT), "count")
    order = str(source.get("sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise invalid_value("sortOrder must be ascending or descending")
    text = source.get("filter")
    if text is not None and not isinstance(text, str):
        raise ScimError(400, "filter must be a string", "invalidFilter")
    return ListParams(
        filter=quirks.normalize_filter(text) or None,
        start_index=min(max(start, 1), MAX_START_INDEX),
        count=min(max(count, 0), MAX_COUNT),
        sort_by=source.get("sortBy") or None,
        descending=order == "descending",
        attributes=_names(source.get("attributes"), "attributes"),
        excluded=_names(source.get("excludedAttributes"), "excludedAttributes"),
    )


def sorting(params: ListParams, target: FilterTarget) -> list[Any]:
    """ORDER BY for ``sortBy``/``sortOrder`` (RFC 7644 §3.4.2.3); missing values sort last."""
    if not params.sort_by:
        return []
    key = order_by(params.sort_by, target)
    return [(key.desc() if params.descending else key.asc()).nulls_last()]


def list_response(
    resources: list[dict[str, Any]], total: int, params: ListParams
) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": len(resources),
        "startIndex": params.start_index,
        "Resources": resources,
    }


# --- projection (RFC 7644 §3.9) --------------------------------------------------------


def _resolved(resource_type: ResourceType, names: tuple[str, ...]) -> list[tuple[str, ...]]:
    paths = []
    for name in names:
        try:
            path = resolve(resource_type, name)
        except UnknownAttribute:
            extension = resource_type.extension(name)
            if extension is not None:
                paths.append((extension.id,))
            continue
        paths.append(path.keys)
    return paths


def wants(resource_type: ResourceType, params: ListParams, attribute: str) -> bool:
    """Whether a (top-level, core) attribute is part of the response under ``params``."""
    key = attribute.lower()
    if params.attributes:
        return any(p[0].lower() == key for p in _resolved(resource_type, params.attributes))
    return not any(
        len(p) == 1 and p[0].lower() == key for p in _resolved(resource_type, params.excluded)
    )


def project(
    resource: dict[str, Any], resource_type: ResourceType, params: ListParams
) -> dict[str, Any]:
    """Keep what ``attributes`` asks for, or drop what ``excludedAttributes`` names.

    ``id`` and ``schemas`` are always returned (RFC 7643 §7 ``returned: always``).
    """
    if params.attributes:
        kept: dict[str, Any] = {k: resource[k] for k in ("schemas", "id") if k in resource}
        for keys in _resolved(resource_type, params.attributes):
            _copy(resource, kept, keys)
        return kept
    if params.excluded:
        result = dict(resource)
        for keys in _resolved(resource_type, params.excluded):
            if keys[0] in ("id", "schemas"):
                continue
            _drop(result, keys)
        return result
    return resource


def _copy(source: dict[str, Any], target: dict[str, Any], keys: tuple[str, ...]) -> None:
    head, rest = keys[0], keys[1:]
    if head not in source:
        return
    if not rest:
        target[head] = source[head]
        return
    value = source[head]
    if isinstance(value, list):
        picked = [{rest[0]: v[rest[0]]} for v in value if isinstance(v, dict) and rest[0] in v]
        if picked:
            target[head] = picked
    elif isinstance(value, dict):
        _copy(value, target.setdefault(head, {}), rest)
        if not target[head]:
            del target[head]


def _drop(target: dict[str, Any], keys: tuple[str, ...]) -> None:
    head, rest = keys[0], keys[1:]
    if head not in target:
        return
    if not rest:
        del target[head]
        return
    value = target[head]
    if isinstance(value, list):
        target[head] = [{k: v for k, v in i.items() if k != rest[0]} for i in value]
    elif isinstance(value, dict):
        target[head] = dict(value)
        _drop(target[head], rest)


def schemas_of(document: dict[str, Any], resource_type: ResourceType) -> list[str]:
    """The core schema and the extensions present in the document."""
    return [resource_type.schema.id] + [k for k in document if _URN.match(k)]
