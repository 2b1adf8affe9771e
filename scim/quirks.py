"""Vendor quirks (Okta, Microsoft Entra ID), normalised in one place before parsing.

Every request body goes through :func:`normalize_request` before :mod:`scim.patch` or the
resource views read it, so the protocol code only ever sees RFC 7644 requests. Each quirk
below names the vendor, what it sends, and where that is documented; each has a golden
payload in ``tests/data/`` named after its source and a replay test in
``tests/scim/test_quirks.py``.

Sources:

- Entra: "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft
  Entra user provisioning service" (``ENTRA_COMPLIANCE``) and "Tutorial: Develop and plan
  provisioning for a SCIM endpoint" (``ENTRA_SCIM``).
- Okta: "Okta and SCIM Version 2.0" (``OKTA_SCIM``).

Query strings have one quirk too: :func:`normalize_filter` rewrites Entra's filter shape
into RFC 7644 form before :mod:`scim.filters` parses it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from scim.errors import ScimError, invalid_filter
from scim.filters.grammar import _SUB_ATTR, MAX_LENGTH, OPERATORS, _Token, _tokenize
from scim.schemas import (
    ENTERPRISE_USER,
    GROUP,
    Attribute,
    ResourceType,
    UnknownAttribute,
    resolve,
    split_urn,
)

ENTRA_COMPLIANCE = (
    "https://learn.microsoft.com/entra/identity/app-provisioning/"
    "application-provisioning-config-problem-scim-compatibility"
)
ENTRA_SCIM = (
    "https://learn.microsoft.com/entra/identity/app-provisioning/"
    "use-scim-to-provision-users-and-groups"
)
ENTRA_MANAGER = "https://github.com/apache/directory-scimple/issues/1242"
OKTA_SCIM = "https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20"
# A public report of Entra's filter, answered by Microsoft's SCIM product manager.
ENTRA_FILTER = (
    "https://stackoverflow.com/questions/76763662/"
    "is-microsoft-azure-misusing-the-scim-rfc-emails-type-eq-work-value-eq-foo-exam"
)

# Entra adds this to the schemas of a created Group (ENTRA_SCIM, "Create Group").
ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
# Read-only attributes Okta echoes back in a full-object PUT (OKTA_SCIM, "Update the User").
_ECHOED_READ_ONLY = ("id", "meta", "groups")
_MANAGER = f"{ENTERPRISE_USER}:manager".lower()


def normalize_request(body: Any, resource_type: ResourceType, method: str) -> Any:
    """A copy of ``body`` with every known vendor quirk turned into RFC 7644 form."""
    if not isinstance(body, dict):
        return body  # not an object at all: the parser answers invalidSyntax
    body = copy.deepcopy(body)
    if method.upper() == "PATCH":
        key = _key(body, "Operations")
        if key is not None and isinstance(body[key], list):
            body[key] = [
                normalized
                for operation in body[key]
                for normalized in _normalize_operation(operation, resource_type)
            ]
        return body
    if method.upper() in ("POST", "PUT"):
        _drop_adscim_schema(body)
        _drop_echoed_read_only(body, resource_type)
        _coerce_booleans(body, resource_type)
        _manager_as_object(body)
        _drop_null_member_refs(body)
    return body


# --- PATCH operations --------------------------------------------------------------------


def _normalize_operation(operation: Any, resource_type: ResourceType) -> list[Any]:
    if not isinstance(operation, dict):
        return [operation]
    operation = _lower_op(operation)
    op = operation.get("op")
    path = operation.get("path")
    has_value = "value" in operation
    value = operation.get("value")
    if path is None and isinstance(value, dict) and op in ("add", "replace"):
        value = _nest_dotted_keys(value, resource_type)
        value = _drop_echoed_id(value)
        _coerce_booleans(value, resource_type)
        _manager_as_object(value)
        _drop_null_member_refs(value)
        operation["value"] = value
        return [operation]
    if not isinstance(path, str):
        return [operation]
    if op == "remove" and has_value and _is_members(path, resource_type):
        removals = _member_removals(value)
        if removals is not None:
            return removals
    extension = resource_type.extension(path)
    if has_value and isinstance(value, dict) and extension is not None:
        # A whole extension object: treated as that part of a resource body.
        document = {extension.id: value}
        _coerce_booleans(document, resource_type)
        _manager_as_object(document)
        operation["value"] = next(iter(document.values()))
    elif has_value:
        attribute = _attribute_of(resource_type, path)
        if attribute is not None:
            operation["value"] = _coerce_value(attribute, value)
        if path.lower() == _MANAGER and isinstance(operation["value"], str):
            operation["value"] = _manager_value(operation["value"])
        if _is_members(path, resource_type):
            operation["value"] = _without_null_refs(operation["value"])
    return [operation]


def _lower_op(operation: dict[str, Any]) -> dict[str, Any]:
    """Entra sends ``"op": "Add" | "Replace" | "Remove"`` (ENTRA_SCIM, ENTRA_COMPLIANCE).

    Its operation keys are also matched without regard to case, as RFC 7643 §2.1 does for
    attribute names.
    """
    normalized: dict[str, Any] = {}
    for key, item in operation.items():
        lowered = key.lower()
        normalized[lowered if lowered in ("op", "path", "value") else key] = item
    if isinstance(normalized.get("op"), str):
        normalized["op"] = normalized["op"].lower()
    return normalized


def _nest_dotted_keys(value: dict[str, Any], resource_type: ResourceType) -> dict[str, Any]:
    """Entra's path-less replace names sub-attributes by path (ENTRA_COMPLIANCE, "Requests to
    replace multiple attributes"): ``{"name.givenName": "x", "urn:…:User:employeeNumber": "y"}``.

    Turned into the nested objects RFC 7644 §3.5.2.3 expects: ``{"name": {"givenName": "x"},
    "urn:…:User": {"employeeNumber": "y"}}``. A URN key holding an object is already a whole
    extension and is left alone; the core schema's URN prefix is dropped.
    """
    nested: dict[str, Any] = {}
    for key, item in value.items():
        keys = _split_key(key, item, resource_type)
        if keys is None:
            _merge_into(nested, (key,), item)
        else:
            _merge_into(nested, keys, item)
    return nested


def _split_key(key: str, item: Any, resource_type: ResourceType) -> tuple[str, ...] | None:
    """Where a path-less key belongs, as nested keys; None to keep it as it is."""
    urn, rest = split_urn(key)
    head: tuple[str, ...] = ()
    if urn is not None and resource_type.extension(key) is None:
        extension = resource_type.extension(urn)
        if extension is not None:
            head = (extension.id,)
        elif urn.lower() != resource_type.schema.id.lower():
            if isinstance(item, dict):
                return None  # the whole object of an extension we hold no schema for
            head = (urn,)
    elif urn is not None:
        return None  # a whole extension object
    parts = tuple(rest.split("."))
    if not all(parts) or len(parts) > 2:
        return None
    return head + parts


def _merge_into(target: dict[str, Any], keys: tuple[str, ...], item: Any) -> None:
    head, rest = keys[0], keys[1:]
    if not rest:
        if isinstance(target.get(head), dict) and isinstance(item, dict):
            for key, sub in item.items():
                _merge_into(target[head], (key,), sub)
        else:
            target[head] = item
        return
    existing = target.get(head)
    if existing is None:
        existing = target[head] = {}
    if not isinstance(existing, dict):
        target[".".join(keys)] = item  # clashes with a plain value: left for the parser
        return
    _merge_into(existing, rest, item)


def _drop_echoed_id(value: dict[str, Any]) -> dict[str, Any]:
    """Okta re-sends a group's rename with every membership change, ``id`` included
    (OKTA_SCIM, "Update a specific Group name"): ``{"op": "replace", "value": {"id": …,
    "displayName": …}}``. ``id`` is read-only (RFC 7643 §3.1), so the echo is dropped.
    """
    return {k: v for k, v in value.items() if k.lower() != "id"}


def _is_members(path: str, resource_type: ResourceType) -> bool:
    if resource_type.id != "Group":
        return False
    urn, rest = split_urn(path)
    return rest.lower() == "members" and (urn is None or urn.lower() == GROUP.lower())


def _member_removals(value: Any) -> list[dict[str, Any]] | None:
    """Entra removes group members with a value list (ENTRA_COMPLIANCE, "Requests made to
    remove a group member", without the ``aadOptscim062020`` flag; ENTRA_SCIM, "Update Group
    [Remove Members]"): ``{"op": "Remove", "path": "members", "value": [{"value": "id"}]}``.

    RFC 7644 §3.5.2.2 removes one member with a filter; so one ``remove`` per id, with path
    ``members[value eq "id"]``. A value that is not such a list is left to the parser.
    """
    items = value if isinstance(value, list) else [value]
    ids = [item.get("value") for item in items if isinstance(item, dict)]
    if not ids or len(ids) != len(items) or not all(isinstance(i, str) for i in ids):
        return None
    return [{"op": "remove", "path": f"members[value eq {json.dumps(i)}]"} for i in ids]


def _drop_null_member_refs(document: dict[str, Any]) -> None:
    key = _key(document, "members")
    if key is not None:
        document[key] = _without_null_refs(document[key])


def _without_null_refs(value: Any) -> Any:
    """Entra sends ``"$ref": null`` in each member it adds or removes (ENTRA_SCIM, "Update
    Group [Add Members]"); a null is no value (RFC 7643 §2.5), so it is dropped.
    """
    if isinstance(value, list):
        return [_without_null_refs(item) for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not (k == "$ref" and v is None)}
    return value


# --- booleans ---------------------------------------------------------------------------


def _coerce_booleans(document: dict[str, Any], resource_type: ResourceType) -> None:
    """Entra sends booleans as the strings ``"True"``/``"False"`` (ENTRA_COMPLIANCE,
    "Requests made to disable users": ``{"op": "Replace", "path": "active", "value":
    "False"}``). For attributes typed boolean (RFC 7643 §2.3.2) they become JSON booleans.
    """
    for key, item in list(document.items()):
        if not isinstance(key, str):
            continue
        extension = resource_type.extension(key)
        if extension is not None and isinstance(item, dict):
            for name, sub in list(item.items()):
                attribute = extension.attribute(name) if isinstance(name, str) else None
                if attribute is not None:
                    item[name] = _coerce_value(attribute, sub)
            continue
        attribute = _attribute_of(resource_type, key)
        if attribute is not None:
            document[key] = _coerce_value(attribute, item)


def _coerce_value(attribute: Attribute, value: Any) -> Any:
    if attribute.multi_valued and isinstance(value, list):
        return [_coerce_single(attribute, item) for item in value]
    return _coerce_single(attribute, value)


def _coerce_single(attribute: Attribute, value: Any) -> Any:
    if attribute.type == "boolean" and isinstance(value, str):
        lowered = value.strip().lower()
        return {"true": True, "false": False}.get(lowered, value)
    if attribute.is_complex and isinstance(value, dict):
        result = {}
        for key, item in value.items():
            sub = attribute.sub(key) if isinstance(key, str) else None
            result[key] = _coerce_value(sub, item) if sub is not None else item
        return result
    return value


def _attribute_of(resource_type: ResourceType, path: str) -> Attribute | None:
    """The definition a path targets, its value filter skipped; None when unknown."""
    text = path
    if "[" in path and "]" in path:
        after = path[path.rindex("]") + 1 :]
        text = path[: path.index("[")] + after
    try:
        resolved = resolve(resource_type, text)
    except UnknownAttribute:
        return None
    if resolved.sub_attribute is None and "[" in path and resolved.attribute.multi_valued:
        # ``emails[type eq "work"]`` targets one element: a single complex value.
        return dataclasses.replace(resolved.attribute, multi_valued=False)
    return resolved.leaf


# --- enterprise manager -----------------------------------------------------------------


def _manager_as_object(document: dict[str, Any]) -> None:
    """Entra sends the enterprise ``manager`` as a bare id, in resources and in PATCH
    (ENTRA_MANAGER; https://github.com/Captain-P-Goldfish/SCIM-SDK/issues/686):
    ``{"op": "Add", "path": "urn:…:enterprise:2.0:User:manager", "value": "<id>"}``.

    ``manager`` is complex (RFC 7643 §4.3), so the id becomes ``{"value": "<id>"}``.
    """
    key = _key(document, ENTERPRISE_USER)
    extension = document.get(key) if key else None
    if isinstance(extension, dict):
        manager = _key(extension, "manager")
        if manager is not None and isinstance(extension[manager], str):
            extension[manager] = _manager_value(extension[manager])


def _manager_value(value: str) -> dict[str, Any] | None:
    """An empty id is no manager: null, which a replace unassigns (RFC 7643 §2.5)."""
    return {"value": value} if value else None


# --- resource bodies (POST, PUT) --------------------------------------------------------


def _drop_adscim_schema(body: dict[str, Any]) -> None:
    """Entra lists a Microsoft schema URI beside the Group schema when it creates a group
    (ENTRA_SCIM, "Create Group"): ``"schemas": [".../core:2.0:Group", "http://schemas.
    microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"]``. It defines no attribute
    and is dropped.
    """
    key = _key(body, "schemas")
    if key is not None and isinstance(body[key], list):
        body[key] = [
            s for s in body[key] if not (isinstance(s, str) and s.lower() == ADSCIM_GROUP.lower())
        ]


def _drop_echoed_read_only(body: dict[str, Any], resource_type: ResourceType) -> None:
    """Okta's full-object PUT is the resource as last read, with ``id``, ``meta`` and
    ``groups`` (OKTA_SCIM, "Update the User"); Okta's create sends ``"groups": []`` too.
    They are read-only (RFC 7643 §3.1, §4.1.2), so they are dropped rather than compared.
    """
    names = _ECHOED_READ_ONLY if resource_type.id == "User" else _ECHOED_READ_ONLY[:2]
    for key in list(body):
        if isinstance(key, str) and key.lower() in names:
            del body[key]


def _key(document: dict[str, Any], name: str) -> str | None:
    """The key of ``document`` spelling ``name`` in any case (RFC 7643 §2.1)."""
    lowered = name.lower()
    return next((k for k in document if isinstance(k, str) and k.lower() == lowered), None)


# --- filters (query strings and SearchRequest bodies) -------------------------------------


def normalize_filter(text: Any) -> Any:
    """Entra filters on a value path followed by a sub-attribute (ENTRA_FILTER; the shape of
    its attribute mappings, ENTRA_SCIM "Design your user and group schema"):
    ``emails[type eq "work"].value eq "a@x.org"``.

    RFC 7644 §3.4.2.2 (Figure 1) has no such filter: ``valuePath = attrPath "[" valFilter
    "]"`` stands alone, and only a PATCH path (§3.5.2, Figure 7: ``valuePath [subAttr]``) may
    go on with a sub-attribute; no erratum changes that. Microsoft's SCIM product manager
    confirms the shape is outside the ABNF and that endpoints accept it (ENTRA_FILTER).

    It means: some element matching the value filter has a sub-attribute that satisfies the
    comparison. So it becomes the RFC's one-element form, ``emails[(type eq "work") and
    value eq "a@x.org"]``; ``ne`` and ``null`` keep the filter module's rules (``ne`` is
    ``not eq``, ``eq null`` is ``not pr``): ``…].value ne "x"`` becomes ``not (emails[(…) and
    value eq "x"])``. Anything else, or text that does not tokenize, is left to the parser.
    """
    if not isinstance(text, str) or "]" not in text or len(text) > MAX_LENGTH:
        return text  # too long: the parser says so
    try:
        tokens = _tokenize(text, invalid_filter)
    except ScimError:
        return text
    pieces: list[str] = []
    done = 0  # text before this offset is already in ``pieces``
    open_: int | None = None  # the last "[" not yet closed
    i = 0
    while i < len(tokens):
        kind = tokens[i].kind
        rewritten = _value_path_comparison(text, tokens, open_, i) if kind == "]" else None
        open_ = i if kind == "[" else None if kind == "]" else open_
        if rewritten is None:
            i += 1
            continue
        start, end, replacement, i = rewritten
        pieces += [text[done:start], replacement]
        done = end
    return "".join([*pieces, text[done:]]) if pieces else text


def _value_path_comparison(
    text: str, tokens: list[_Token], open_: int | None, close: int
) -> tuple[int, int, str, int] | None:
    """When ``tokens[open_]``…``tokens[close]`` are the brackets of ``attr[filter].sub op
    value``: (start, end, the RFC form, the index of the token after it); else None."""
    if open_ is None or open_ == 0 or tokens[close + 1].kind != "word":
        return None
    sub = _SUB_ATTR.fullmatch(tokens[close + 1].text)
    if sub is None:
        return None
    attr = tokens[open_ - 1]
    op_token = tokens[close + 2] if close + 2 < len(tokens) else None
    if attr.kind != "word" or op_token is None or op_token.kind != "word":
        return None
    op = op_token.text.lower()
    if op not in OPERATORS:
        return None
    last = close + 2
    value = None
    if op != "pr":
        last = close + 3
        value = tokens[last] if last < len(tokens) else None
        if value is None or value.kind not in ("string", "word"):
            return None
    inner = text[tokens[open_].at + 1 : tokens[close].at].strip()
    name = sub.group(1)
    negate = False
    if value is not None and value.text.lower() == "null" and op in ("eq", "ne"):
        condition, negate = f"{name} pr", op == "eq"
    elif op == "ne":
        condition, negate = f"{name} eq {value.text}", True
    elif value is None:
        condition = f"{name} pr"
    else:
        condition = f"{name} {op} {value.text}"
    replacement = f"{attr.text}[({inner}) and {condition}]"
    if negate:
        replacement = f"not ({replacement})"
    end = tokens[last].at + len(tokens[last].text)
    return attr.at, end, replacement, last + 1
