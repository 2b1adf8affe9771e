"""Where attributes live (columns, documents, related rows) and how operands are typed."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from scim.errors import ScimError, invalid_filter, invalid_path
from scim.filters.grammar import (
    _ATTR_PATH,
    _SUB_ATTR,
    ORDERING,
    SUBSTRING,
    And,
    Compare,
    Filter,
    Not,
    Or,
    ValuePath,
    _Parser,
    _shown,
)
from scim.schemas import Attribute, AttributePath, ResourceType, UnknownAttribute, resolve

# --- resolving attributes --------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """Where a filterable attribute lives in SQL, and how to compare it."""

    expr: ColumnElement[Any]
    kind: str = "string"  # "string" | "boolean" | "dateTime" | "integer"
    lowered: bool = False  # holds values lower-cased: compare with value.lower(), no lower()


@dataclass(frozen=True)
class Related:
    """A multi-valued attribute held as rows of another table (a Group's ``members``).

    ``source`` is what to select from, ``correlation`` ties its rows to the resource, and
    ``columns`` maps sub-attribute names (``value``, ``display``) to their columns.
    """

    source: FromClause
    correlation: ColumnElement[bool]
    columns: Mapping[str, Column]


@dataclass(frozen=True)
class FilterTarget:
    """What a filter is compiled against: a resource type and where its attributes live."""

    resource_type: ResourceType
    document: ColumnElement[Any]
    columns: Mapping[str, Column]
    dialect: str
    related: Mapping[str, Related] = field(default_factory=dict)


_KINDS = {
    "string": "string",
    "reference": "string",
    "binary": "string",
    "boolean": "boolean",
    "integer": "number",
    "decimal": "number",
    "dateTime": "dateTime",
}


def _is_generic(path: AttributePath, resource_type: ResourceType) -> bool:
    """An attribute of an extension the resource type does not declare."""
    return path.urn is not None and resource_type.extension(path.urn) is None


def _resolve(
    resource_type: ResourceType,
    text: str,
    columns: Mapping[str, Column],
    error: Callable[[str], ScimError],
) -> AttributePath:
    if not isinstance(text, str) or not _ATTR_PATH.fullmatch(text):
        raise error(f"Invalid attribute path {text!r}")
    if any(text.lower() == s.lower() for s in resource_type.schema_ids):
        raise error(f"{text!r} names a schema, not an attribute")
    try:
        path = resolve(resource_type, text)
    except UnknownAttribute:
        if text.lower() in columns:
            return AttributePath(None, text, None, Attribute(text), None)
        raise error(f"Unknown attribute {text!r} for {resource_type.id}") from None
    if path.attribute.returned == "never" or path.leaf.returned == "never":
        raise error(f"{path} cannot be filtered or sorted on")
    return path


def _attribute_key(path: AttributePath) -> str:
    """The attribute's own path, without its sub-attribute."""
    return f"{path.urn}:{path.name}" if path.urn else path.name


def _element_attribute(parent: Attribute, generic: bool, name: str) -> Attribute:
    """A name inside ``parent[...]``: one of its sub-attributes (or anything, if generic)."""
    if "." in name or ":" in name:
        raise invalid_filter(f"{name!r} inside {parent.name}[...] must be a sub-attribute")
    if parent.sub_attributes:
        sub = parent.sub(name)
        if sub is None:
            raise invalid_filter(f"{parent.name} has no sub-attribute {name!r}")
        if sub.returned == "never":
            raise invalid_filter(f"{parent.name}.{sub.name} cannot be filtered on")
        return sub
    if generic:
        return Attribute(name)
    raise invalid_filter(f"{parent.name} is not a complex attribute")


@dataclass(frozen=True)
class _Operand:
    kind: str  # "string" | "boolean" | "number" | "dateTime"
    value: Any
    case_exact: bool


def _operand(name: str, type_: str, case_exact: bool, generic: bool, compare: Compare) -> _Operand:
    """Check an operator and value against an attribute's type (RFC 7644 §3.4.2.2)."""
    op, value = compare.op, compare.value
    if value is None:
        raise invalid_filter(f"{name} {op} null: null can only be compared with eq or ne")
    if generic:
        if isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int | float):
            kind = "number"
        else:
            kind = "string"
    else:
        found = _KINDS.get(type_)
        if found is None:
            raise invalid_filter(f"{name} is complex: filter on one of its sub-attributes")
        kind = found
    if op in ORDERING and (kind == "boolean" or type_ == "binary"):
        raise invalid_filter(f"{op} cannot compare the {type_} attribute {name}")
    if op in SUBSTRING and kind != "string":
        raise invalid_filter(f"{op} needs a string attribute; {name} is {type_}")
    if kind == "string" and not isinstance(value, str):
        raise invalid_filter(f"{name} is a string: compare it with a string")
    if kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise invalid_filter(f"{name} is a boolean: compare it with true or false")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise invalid_filter(f"{name} is a number: compare it with a number")
    if kind == "dateTime":
        if not isinstance(value, str):
            raise invalid_filter(f"{name} is a dateTime: compare it with an ISO 8601 string")
        value = _parse_datetime(value)
        if value is None:
            raise invalid_filter(f"{compare.value!r} is not an ISO 8601 dateTime")
    return _Operand(kind, value, case_exact)


def _parse_datetime(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _normalized(f: Filter) -> Filter:
    """Rewrite ``ne`` as ``not eq`` and comparisons with null as ``pr`` (module docstring)."""
    if isinstance(f, Compare):
        if f.op in ("eq", "ne") and f.value is None:
            present = Compare(f.path, "pr")
            return Not(present) if f.op == "eq" else present
        if f.op == "ne":
            return Not(Compare(f.path, "eq", f.value))
    return f


def _check_element_filter(f: Filter, parent: Attribute, generic: bool) -> None:
    f = _normalized(f)
    if isinstance(f, And | Or):
        for item in f.items:
            _check_element_filter(item, parent, generic)
    elif isinstance(f, Not):
        _check_element_filter(f.item, parent, generic)
    elif isinstance(f, ValuePath):
        raise invalid_filter("A value filter cannot nest another")
    else:
        sub = _element_attribute(parent, generic, f.path)
        if f.op != "pr":
            _operand(f"{parent.name}.{sub.name}", sub.type, sub.case_exact, generic, f)


_COMPARED: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def _compared(left: Any, op: str, right: Any) -> Any:
    return _COMPARED[op](left, right)


# --- PATCH paths -----------------------------------------------------------------------


@dataclass(frozen=True)
class PatchPath:
    """A PATCH ``path`` (RFC 7644 §3.5.2): ``attrPath``, ``attrPath[valFilter]``, ``...].sub``.

    ``attribute`` is the attrPath as written (URN included). A bare schema URN parses too
    (``attribute`` is then the URN; see ``schema_urn``): what it means is the caller's call.
    """

    attribute: str
    value_filter: Filter | None = None
    sub_attribute: str | None = None

    def __str__(self) -> str:
        text = self.attribute
        if self.value_filter is not None:
            text += f"[{self.value_filter}]"
        return f"{text}.{self.sub_attribute}" if self.sub_attribute else text

    def schema_urn(self, resource_type: ResourceType) -> str | None:
        """The canonical schema URN when the path is one of the resource type's schema ids."""
        lowered = self.attribute.lower()
        return next((s for s in resource_type.schema_ids if s.lower() == lowered), None)

    def resolve(self, resource_type: ResourceType) -> AttributePath:
        """Resolve the attrPath, checking the value filter and sub-attribute against it.

        Errors are ``invalidPath`` (RFC 7644 §3.5.2); a bare schema URN is one too, so a
        caller that accepts one checks ``schema_urn`` first.
        """
        path = _resolve(resource_type, self.attribute, {}, invalid_path)
        if self.value_filter is None and self.sub_attribute is None:
            return path
        generic = _is_generic(path, resource_type)
        if path.sub is not None or not (path.attribute.is_complex or generic):
            raise invalid_path(f"{self.attribute!r} is not a complex attribute")
        if self.sub_attribute and not generic and path.attribute.sub(self.sub_attribute) is None:
            raise invalid_path(f"{path} has no sub-attribute {self.sub_attribute!r}")
        if self.value_filter is not None:
            try:
                _check_element_filter(self.value_filter, path.attribute, generic)
            except ScimError as error:
                raise invalid_path(error.detail) from None
        return path


def parse_path(text: str) -> PatchPath:
    """Parse a PATCH path (RFC 7644 §3.5.2, Figure 7); any syntax error is ``invalidPath``."""
    parser = _Parser(text, invalid_path, "path")
    token = parser.take()
    if token.kind != "word":
        raise invalid_path(f"Expected an attribute, found {_shown(token)}")
    attribute = parser.attr_path(token)
    value_filter: Filter | None = None
    sub_attribute: str | None = None
    if parser.peek().kind == "[":
        value_filter = parser.bracketed()
        if parser.peek().kind == "word":
            sub = _SUB_ATTR.fullmatch(parser.peek().text)
            if sub is None:
                raise invalid_path(f"Invalid sub-attribute {parser.peek().text!r}")
            parser.take()
            sub_attribute = sub.group(1)
        if "." in attribute.rpartition(":")[2]:
            raise invalid_path("A value filter applies to an attribute, not a sub-attribute")
    parser.finish()
    return PatchPath(attribute, value_filter, sub_attribute)
