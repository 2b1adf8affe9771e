"""Filters evaluated in memory: PATCH value paths and whole resources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from scim.errors import invalid_filter
from scim.filters.grammar import And, Filter, Not, Or, ValuePath, parse_filter
from scim.filters.targets import (
    _compared,
    _element_attribute,
    _is_generic,
    _normalized,
    _Operand,
    _operand,
    _parse_datetime,
    _resolve,
)
from scim.schemas import Attribute, ResourceType

# --- in memory -------------------------------------------------------------------------


def _get(value: Any, key: str) -> Any:
    """A dict's value for a case-insensitive key (RFC 7643 §2.1)."""
    if not isinstance(value, dict):
        return None
    if key in value:
        return value[key]
    lowered = key.lower()
    return next((v for k, v in value.items() if isinstance(k, str) and k.lower() == lowered), None)


def _dig(value: Any, keys: Iterable[str]) -> Any:
    for key in keys:
        value = _get(value, key)
    return value


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str | list | dict) and not value)


def _holds(value: Any, op: str, operand: _Operand | None) -> bool:
    """One value against one comparison: the in-memory twin of ``_Compiler.predicate``."""
    if operand is None:
        return _present(value)
    if operand.kind == "string":
        if not isinstance(value, str):
            return False
        left, right = value, operand.value
        if not operand.case_exact:
            left, right = left.lower(), right.lower()
        if op == "co":
            return right in left
        if op == "sw":
            return left.startswith(right)
        if op == "ew":
            return left.endswith(right)
        return _compared(left, op, right)
    if operand.kind == "boolean":
        return isinstance(value, bool) and value is operand.value
    if operand.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return _compared(value, op, operand.value)
    if isinstance(value, datetime):
        moment: datetime | None = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = _parse_datetime(value) if isinstance(value, str) else None
    return moment is not None and _compared(moment, op, operand.value)


def _element_matches(f: Filter, element: Any, attribute: Attribute, generic: bool) -> bool:
    f = _normalized(f)
    if isinstance(f, And):
        return all(_element_matches(i, element, attribute, generic) for i in f.items)
    if isinstance(f, Or):
        return any(_element_matches(i, element, attribute, generic) for i in f.items)
    if isinstance(f, Not):
        return not _element_matches(f.item, element, attribute, generic)
    if isinstance(f, ValuePath):
        raise invalid_filter("A value filter cannot nest another")
    sub = _element_attribute(attribute, generic, f.path)
    operand = (
        None
        if f.op == "pr"
        else _operand(f"{attribute.name}.{sub.name}", sub.type, sub.case_exact, generic, f)
    )
    return _holds(_get(element, sub.name), f.op, operand)


def matches(ast: Filter, element: Any, attribute: Attribute) -> bool:
    """Whether one element of ``attribute`` satisfies a value filter (RFC 7644 §3.5.2).

    Names inside the filter are sub-attributes of ``attribute``; an attribute without
    sub-attribute definitions (a custom extension's) takes any name, typed by the operand.
    """
    return _element_matches(ast, element, attribute, not attribute.sub_attributes)


def matches_resource(
    ast: str | Filter, resource: Mapping[str, Any], resource_type: ResourceType
) -> bool:
    """Whether a whole resource, as SCIM represents it, matches a filter (RFC 7644 §3.4.2.2).

    The in-memory twin of ``compile_filter`` (``meta`` dateTimes compare chronologically).
    """
    ast = parse_filter(ast) if isinstance(ast, str) else ast
    return _resource_matches(ast, dict(resource), resource_type)


def _resource_matches(f: Filter, resource: dict[str, Any], resource_type: ResourceType) -> bool:
    f = _normalized(f)
    if isinstance(f, And):
        return all(_resource_matches(i, resource, resource_type) for i in f.items)
    if isinstance(f, Or):
        return any(_resource_matches(i, resource, resource_type) for i in f.items)
    if isinstance(f, Not):
        return not _resource_matches(f.item, resource, resource_type)
    path = _resolve(resource_type, f.path, {}, invalid_filter)
    generic = _is_generic(path, resource_type)
    if isinstance(f, ValuePath):
        if path.sub is not None or not (path.attribute.is_complex or generic):
            raise invalid_filter(f"{path} is not a complex attribute")
        value = _dig(resource, path.keys)
        elements = value if isinstance(value, list) else []
        if generic or not path.attribute.multi_valued:
            elements = [value, *elements]
        return any(_element_matches(f.filter, e, path.attribute, generic) for e in elements)
    value = _dig(resource, path.keys)
    if f.op == "pr" and (path.sub is None or not (path.attribute.multi_valued or generic)):
        return _present(value)
    if generic:
        operand = None if f.op == "pr" else _operand(str(path), "string", False, True, f)
        owner = _dig(resource, path.keys[:-1]) if path.sub else value
        elements = owner if isinstance(owner, list) else []
        candidates = [value, *(_get(e, path.sub) if path.sub else e for e in elements)]
        return any(_holds(c, f.op, operand) for c in candidates)
    if path.attribute.multi_valued:
        sub = path.sub_attribute or path.attribute.sub("value")
        if sub is None:
            raise invalid_filter(f"{path} is complex: filter on one of its sub-attributes")
        operand = None if f.op == "pr" else _operand(str(path), sub.type, sub.case_exact, False, f)
        owner = _dig(resource, path.keys[:-1] if path.sub else path.keys)
        elements = owner if isinstance(owner, list) else []
        return any(_holds(_get(e, sub.name), f.op, operand) for e in elements)
    operand = _operand(str(path), path.leaf.type, path.leaf.case_exact, False, f)
    return _holds(value, f.op, operand)
