"""SCIM filters (RFC 7644 §3.4.2.2), sorting (§3.4.2.3) and PATCH paths (§3.5.2).

A filter is parsed once into a small AST, then either compiled to one SQL expression over
the resource's columns and its JSON document (never by loading rows), or evaluated in
memory against one element of a multi-valued attribute (PATCH value paths) or a whole
resource. Both sides share one set of rules:

- names are case-insensitive (RFC 7643 §2.1); strings compare case-insensitively unless the
  attribute is ``caseExact``, by the database's ``lower()`` on both sides in SQL (which folds
  ASCII only on SQLite) and by ``str.lower()`` in Python;
- a comparison only matches a value of the operand's JSON type (``title eq "5"`` does not
  match the number 5); a missing value matches nothing;
- ``ne`` is ``not eq``: it also matches resources that lack the attribute; ``eq null`` is
  ``not pr`` and ``ne null`` is ``pr`` (RFC 7643 §2.5: null and unassigned are the same);
- ``pr`` is present: not null, not ``""``, not an empty array or object;
- a multi-valued attribute matches when any element does; inside ``[...]`` every condition
  applies to the same element; a multi-valued complex attribute named without a
  sub-attribute compares its ``value`` sub-attribute (except for ``pr``);
- ``gt``/``ge``/``lt``/``le`` compare strings by code point (``COLLATE "C"`` on PostgreSQL),
  dateTimes chronologically, numbers numerically; on booleans, binaries and complex
  attributes they are an ``invalidFilter`` error (RFC 7644 §3.4.2.2);
- an attribute of an extension the resource type does not declare (a custom schema sent by
  an IdP) is typed by the operand and may hold one value or an array of them;
- a dateTime held in a JSON document (no core attribute is) compares as canonical ISO 8601
  text in UTC; ``meta`` dateTimes are columns and compare as timestamps.

Every value reaches SQL as a bound parameter, JSON paths included. A ``lowered`` column is
compared as is (``user_name_key = :v``), so its index serves ``eq``.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    DateTime,
    Numeric,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.sql.expression import column as sql_column

from scim.errors import ScimError, invalid_filter, invalid_path, invalid_value
from scim.schemas import Attribute, AttributePath, ResourceType, UnknownAttribute, resolve

__all__ = [
    "And",
    "Column",
    "Compare",
    "Filter",
    "FilterTarget",
    "Not",
    "Or",
    "PatchPath",
    "Related",
    "ValuePath",
    "compile_filter",
    "matches",
    "matches_resource",
    "order_by",
    "parse_filter",
    "parse_path",
]

# Hostile input must fail fast with a 400, never exhaust recursion or build huge SQL.
MAX_LENGTH = 4096
MAX_DEPTH = 32

OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"})
ORDERING = frozenset({"gt", "ge", "lt", "le"})
SUBSTRING = frozenset({"co", "sw", "ew"})
LIKE_ESCAPE = "\\"
INT64 = 2**63 - 1

Value = str | bool | int | float | None


# --- the AST ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    """``attrPath op value`` or ``attrPath pr``: ``op`` lower-cased, ``value`` None for pr/null."""

    path: str
    op: str
    value: Value = None

    def __str__(self) -> str:
        if self.op == "pr":
            return f"{self.path} pr"
        return f"{self.path} {self.op} {_render_value(self.value)}"


@dataclass(frozen=True)
class And:
    items: tuple[Filter, ...]

    def __str__(self) -> str:
        return " and ".join(_grouped(i) for i in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Filter, ...]

    def __str__(self) -> str:
        return " or ".join(_grouped(i) for i in self.items)


@dataclass(frozen=True)
class Not:
    item: Filter

    def __str__(self) -> str:
        return f"not ({self.item})"


@dataclass(frozen=True)
class ValuePath:
    """``attrPath[valFilter]``: every condition of ``filter`` holds for one element."""

    path: str
    filter: Filter

    def __str__(self) -> str:
        return f"{self.path}[{self.filter}]"


Filter = Compare | And | Or | Not | ValuePath


def _grouped(item: Filter) -> str:
    return f"({item})" if isinstance(item, And | Or) else str(item)


def _render_value(value: Value) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return repr(value)


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


# --- parsing ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[()\[\]])
      | (?P<word>[^\s()\[\]"]+)""",
    re.VERBOSE | re.DOTALL,
)
_NAME = r"[A-Za-z$][A-Za-z0-9_$-]*"
# RFC 8141 URN characters, less those that would be ambiguous here or unsafe in a JSON path.
_URN = r"[Uu][Rr][Nn]:[A-Za-z0-9][A-Za-z0-9.:_~%+!$&'*,;=/@-]*"
_ATTR_PATH = re.compile(rf"(?:{_URN}:)?{_NAME}(?:\.{_NAME})?")
_SUB_ATTR = re.compile(rf"\.({_NAME})")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<frac>\.[0-9]+)?(?P<exp>[eE][+-]?[0-9]+)?")
_SURROGATE_OR_NUL = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class _Token:
    kind: str  # "string" | "word" | one of "()[]" | "end"
    text: str
    at: int


def _tokenize(text: str, error: Callable[[str], ScimError]) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise error(f"Unterminated string at position {at + 1}")
        kind = match.lastgroup or ""
        if kind != "space":
            token = match.group()
            tokens.append(_Token(token if kind == "punct" else kind, token, at))
        at = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, error: Callable[[str], ScimError], what: str) -> None:
        if not isinstance(text, str):
            raise error(f"The {what} must be a string")
        if not text.strip():
            raise error(f"The {what} is empty")
        if len(text) > MAX_LENGTH:
            raise error(f"The {what} is longer than {MAX_LENGTH} characters")
        self.error = error
        self.tokens = _tokenize(text, error)
        self.pos = 0
        self.depth = 0
        self.in_brackets = False

    # Tokens.

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() == word

    def expect(self, kind: str) -> None:
        token = self.take()
        if token.kind != kind:
            raise self.error(f"Expected {kind!r} at position {token.at + 1}, found {_shown(token)}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"Nested more than {MAX_DEPTH} levels deep")

    # Grammar: or-expressions of and-expressions of unary terms (not > and > or).

    def filter(self) -> Filter:
        items = [self.conjunction()]
        while self.is_word("or"):
            self.take()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Filter:
        items = [self.term()]
        while self.is_word("and"):
            self.take()
            items.append(self.term())
        return items[0] if len(items) == 1 else And(tuple(items))

    def term(self) -> Filter:
        token = self.take()
        if token.kind == "(":
            return self.parenthesized()
        if token.kind != "word":
            raise self.error(
                f"Expected an attribute at position {token.at + 1}, found {_shown(token)}"
            )
        if token.text.lower() == "not" and self.peek().kind == "(":
            self.take()
            return Not(self.parenthesized())
        path = self.attr_path(token)
        if self.peek().kind == "[":
            return ValuePath(path, self.bracketed())
        op_token = self.take()
        op = op_token.text.lower()
        if op_token.kind != "word" or op not in OPERATORS:
            raise self.error(f"Expected an operator after {path!r}, found {_shown(op_token)}")
        if op == "pr":
            return Compare(path, op)
        return Compare(path, op, self.value(op))

    def bracketed(self) -> Filter:
        bracket = self.take()
        if self.in_brackets:
            raise self.error(f"A value filter cannot nest another, at position {bracket.at + 1}")
        self.nest()
        self.in_brackets = True
        inner = self.filter()
        self.expect("]")
        self.in_brackets = False
        self.depth -= 1
        return inner

    def parenthesized(self) -> Filter:
        self.nest()
        inner = self.filter()
        self.expect(")")
        self.depth -= 1
        return inner

    def attr_path(self, token: _Token) -> str:
        if not _ATTR_PATH.fullmatch(token.text):
            raise self.error(f"Invalid attribute path {token.text!r} at position {token.at + 1}")
        return token.text

    def value(self, op: str) -> Value:
        token = self.take()
        if token.kind == "string":
            try:
                value = json.loads(token.text, strict=False)
            except ValueError:
                raise self.error(f"Invalid string at position {token.at + 1}") from None
            if _SURROGATE_OR_NUL.search(value):
                raise self.error(f"Invalid character in string at position {token.at + 1}")
            return value
        if token.kind == "word":
            word = token.text.lower()
            if word in ("true", "false"):
                return word == "true"
            if word == "null":
                return None
            number = _NUMBER.fullmatch(token.text)
            if number:
                return self.number(token, number)
        raise self.error(f"Expected a value after {op!r}, found {_shown(token)}")

    def number(self, token: _Token, number: re.Match[str]) -> int | float:
        if number.group("frac") or number.group("exp"):
            value = float(token.text)
            if not math.isfinite(value):
                raise self.error(f"Number out of range at position {token.at + 1}")
            return value
        try:
            whole = int(token.text)
        except ValueError:
            raise self.error(f"Number out of range at position {token.at + 1}") from None
        if abs(whole) > INT64:
            raise self.error(f"Number out of range at position {token.at + 1}")
        return whole

    def finish(self) -> None:
        token = self.peek()
        if token.kind != "end":
            raise self.error(f"Unexpected {_shown(token)} at position {token.at + 1}")


def _shown(token: _Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


def parse_filter(text: str) -> Filter:
    """Parse a filter (RFC 7644 §3.4.2.2); any syntax error is ``invalidFilter``."""
    parser = _Parser(text, invalid_filter, "filter")
    ast = parser.filter()
    parser.finish()
    return ast


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


# --- JSON documents in SQL -------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """A JSON value in SQL: ``keys`` below ``container`` (a document, or an array element)."""

    container: ColumnElement[Any]
    keys: tuple[str, ...]
    element_type: ColumnElement[Any] | None = None  # SQLite: json_each's type of an element


class _SqliteJson:
    """JSON1: json_type / json_extract at quoted paths, json_each for array elements."""

    STRING, NUMBER, TRUE, FALSE = "text", ("integer", "real"), "true", "false"

    @staticmethod
    def path(keys: Iterable[str]) -> str:
        # Keys are quoted so URNs (':' and '.') stay one key; the parser admits no '"'.
        return "$" + "".join(f'."{key}"' for key in keys)

    def type_(self, node: _Node) -> ColumnElement[Any]:
        if not node.keys and node.element_type is not None:
            return node.element_type
        found = func.json_type(node.container, self.path(node.keys))
        if node.element_type is None:
            return found
        # An element that is not an object is plain SQL text, not JSON: never parse it.
        return case((node.element_type == "object", found))

    def raw(self, node: _Node) -> ColumnElement[Any]:
        if not node.keys and node.element_type is not None:
            return node.container
        found = func.json_extract(node.container, self.path(node.keys))
        if node.element_type is None:
            return found
        return case((node.element_type == "object", found))

    def text(self, node: _Node) -> ColumnElement[Any]:
        return case((self.type_(node) == self.STRING, self.raw(node)))

    def number(self, node: _Node) -> ColumnElement[Any]:
        return case((self.type_(node).in_(self.NUMBER), self.raw(node)))

    def boolean(self, node: _Node, value: bool) -> ColumnElement[bool]:
        return self.type_(node) == (self.TRUE if value else self.FALSE)

    def boolean_key(self, node: _Node) -> ColumnElement[Any]:
        return case((self.type_(node).in_((self.TRUE, self.FALSE)), self.raw(node)))

    def present(self, node: _Node) -> ColumnElement[bool]:
        type_, raw = self.type_(node), self.raw(node)
        return or_(
            and_(type_ == self.STRING, raw != ""),
            type_.in_((*self.NUMBER, self.TRUE, self.FALSE)),
            case((type_ == "array", func.json_array_length(raw))) > 0,
            case((type_ == "object", raw)) != "{}",  # json_extract returns minified JSON
        )

    def _elements(self, array: _Node) -> tuple[Any, _Node]:
        each = func.json_each(array.container, self.path(array.keys)).table_valued(
            "value", "type", "key"
        )
        return each, _Node(each.c.value, (), each.c.type)

    def any_element(
        self, array: _Node, predicate: Callable[[_Node], ColumnElement[bool]]
    ) -> ColumnElement[bool]:
        each, element = self._elements(array)
        found = exists(select(literal(1)).select_from(each).where(predicate(element)))
        return and_(self.type_(array) == "array", found)

    def first_element(
        self, array: _Node, key: Callable[[_Node], ColumnElement[Any]]
    ) -> ColumnElement[Any]:
        each, element = self._elements(array)
        primary = self.type_(_Node(each.c.value, ("primary",), each.c.type)) == self.TRUE
        first = (
            select(key(element))
            .select_from(each)
            .order_by(case((primary, 0), else_=1), each.c.key)
            .limit(1)
            .scalar_subquery()
        )
        # The guard stays outside, so the subquery names the resource only to correlate.
        return case((self.type_(array) == "array", first))


class _PostgresJson:
    """JSONB: ``#>`` / ``#>>`` with bound text[] paths, jsonb_array_elements for elements."""

    STRING, NUMBER, TRUE, FALSE = "string", ("number",), "true", "false"

    @staticmethod
    def json(node: _Node) -> ColumnElement[Any]:
        if not node.keys:
            return node.container
        return node.container.op("#>", return_type=JSONB)(literal(list(node.keys), ARRAY(Text)))

    def type_(self, node: _Node) -> ColumnElement[Any]:
        return func.jsonb_typeof(self.json(node))

    def raw(self, node: _Node) -> ColumnElement[Any]:
        path = (
            literal(list(node.keys), ARRAY(Text)) if node.keys else literal_column("'{}'::text[]")
        )
        return node.container.op("#>>", return_type=Text)(path)

    def text(self, node: _Node) -> ColumnElement[Any]:
        return case((self.type_(node) == self.STRING, self.raw(node)))

    def number(self, node: _Node) -> ColumnElement[Any]:
        # CASE, not AND: PostgreSQL may evaluate either side of AND first, and the cast fails.
        return case((self.type_(node) == "number", cast(self.raw(node), Numeric)))

    def boolean(self, node: _Node, value: bool) -> ColumnElement[bool]:
        return and_(self.type_(node) == "boolean", self.raw(node) == ("true" if value else "false"))

    def boolean_key(self, node: _Node) -> ColumnElement[Any]:
        return case((self.type_(node) == "boolean", self.raw(node) == "true"))

    def present(self, node: _Node) -> ColumnElement[bool]:
        type_, value = self.type_(node), self.json(node)
        return or_(
            and_(type_ == self.STRING, self.raw(node) != ""),
            type_.in_(("number", "boolean")),
            and_(type_ == "array", value != literal_column("'[]'::jsonb")),
            and_(type_ == "object", value != literal_column("'{}'::jsonb")),
        )

    def _elements(self, array: _Node, **kwargs: Any) -> Any:
        value = self.json(array)
        # jsonb_array_elements raises on anything but an array: give it an empty one instead.
        source = case((self.type_(array) == "array", value), else_=literal_column("'[]'::jsonb"))
        return func.jsonb_array_elements(source).table_valued(sql_column("value", JSONB), **kwargs)

    def any_element(
        self, array: _Node, predicate: Callable[[_Node], ColumnElement[bool]]
    ) -> ColumnElement[bool]:
        each = self._elements(array)
        return exists(
            select(literal(1)).select_from(each).where(predicate(_Node(each.c.value, ())))
        )

    def first_element(
        self, array: _Node, key: Callable[[_Node], ColumnElement[Any]]
    ) -> ColumnElement[Any]:
        each = self._elements(array, with_ordinality="ordinality")
        primary = self.boolean(_Node(each.c.value, ("primary",)), True)
        return (
            select(key(_Node(each.c.value, ())))
            .select_from(each)
            .order_by(case((primary, 0), else_=1), each.c.ordinality)
            .limit(1)
            .scalar_subquery()
        )


_Json = _SqliteJson | _PostgresJson


def _negate(expr: ColumnElement[bool]) -> ColumnElement[bool]:
    # A comparison with a missing value is NULL, which NOT would keep NULL: make it false.
    return not_(func.coalesce(expr, false()))


# The same operators build SQL (SQLAlchemy overloads them) and compare Python values.
_COMPARED: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def _compared(left: Any, op: str, right: Any) -> Any:
    return _COMPARED[op](left, right)


def _like_pattern(op: str, value: str) -> str:
    escaped = (
        value.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return {"co": f"%{escaped}%", "sw": f"{escaped}%", "ew": f"%{escaped}"}[op]


class _Compiler:
    def __init__(self, target: FilterTarget) -> None:
        self.target = target
        self.postgres = target.dialect == "postgresql"
        self.json: _Json = _PostgresJson() if self.postgres else _SqliteJson()
        self.columns = {k.lower(): v for k, v in target.columns.items()}
        self.related = {k.lower(): v for k, v in target.related.items()}

    # Logic.

    def compile(self, f: Filter) -> ColumnElement[bool]:
        f = _normalized(f)
        if isinstance(f, And):
            return and_(*(self.compile(i) for i in f.items))
        if isinstance(f, Or):
            return or_(*(self.compile(i) for i in f.items))
        if isinstance(f, Not):
            return _negate(self.compile(f.item))
        if isinstance(f, ValuePath):
            return self.value_path(f)
        return self.compare(f)

    def element(
        self, f: Filter, parent: Attribute, generic: bool, atom: Callable[[Compare, Attribute], Any]
    ) -> ColumnElement[bool]:
        f = _normalized(f)
        if isinstance(f, And):
            return and_(*(self.element(i, parent, generic, atom) for i in f.items))
        if isinstance(f, Or):
            return or_(*(self.element(i, parent, generic, atom) for i in f.items))
        if isinstance(f, Not):
            return _negate(self.element(f.item, parent, generic, atom))
        if isinstance(f, ValuePath):
            raise invalid_filter("A value filter cannot nest another")
        return atom(f, _element_attribute(parent, generic, f.path))

    # Attributes.

    def resolve(self, text: str) -> AttributePath:
        path = _resolve(self.target.resource_type, text, self.columns, invalid_filter)
        if str(path).lower() not in self.columns and path.urn is None and path.name == "meta":
            raise invalid_filter(f"{path} cannot be filtered on")
        return path

    def compare(self, f: Compare) -> ColumnElement[bool]:
        path = self.resolve(f.path)
        column = self.columns.get(str(path).lower())
        if column is not None:
            return self.column_predicate(column, path.leaf, f)
        related = self.related.get(_attribute_key(path).lower())
        if related is not None:
            if path.sub is None and f.op == "pr":
                return exists(
                    select(literal(1)).select_from(related.source).where(related.correlation)
                )
            sub = path.sub_attribute or path.attribute.sub("value")
            if sub is None:
                raise invalid_filter(f"{path} is complex: filter on one of its sub-attributes")
            return self.related_exists(related, path.attribute, Compare(sub.name, f.op, f.value))
        generic = _is_generic(path, self.target.resource_type)
        document = self.target.document
        node = _Node(document, path.keys)
        if f.op == "pr" and (path.sub is None or not (path.attribute.multi_valued or generic)):
            return self.json.present(node)
        if generic:
            operand = _operand(str(path), "string", False, True, f) if f.op != "pr" else None
            owner = _Node(document, path.keys[:-1]) if path.sub else node
            return or_(
                self.predicate(node, f.op, operand),
                self.json.any_element(
                    owner,
                    lambda e: self.predicate(
                        _Node(e.container, (path.sub,), e.element_type) if path.sub else e,
                        f.op,
                        operand,
                    ),
                ),
            )
        if path.attribute.multi_valued:
            sub = path.sub_attribute or path.attribute.sub("value")
            if sub is None:
                raise invalid_filter(f"{path} is complex: filter on one of its sub-attributes")
            operand = None if f.op == "pr" else self.operand(f"{path.name}.{sub.name}", sub, f)
            owner = _Node(document, path.keys[:-1] if path.sub else path.keys)
            return self.json.any_element(
                owner,
                lambda e: self.predicate(
                    _Node(e.container, (sub.name,), e.element_type), f.op, operand
                ),
            )
        return self.predicate(node, f.op, self.operand(str(path), path.leaf, f))

    def value_path(self, f: ValuePath) -> ColumnElement[bool]:
        path = self.resolve(f.path)
        if path.sub is not None:
            raise invalid_filter(f"{f.path}[...]: a value filter applies to an attribute")
        related = self.related.get(_attribute_key(path).lower())
        if related is not None:
            inner = self.element(
                f.filter, path.attribute, False, lambda c, a: self.related_atom(related, c, a)
            )
            return exists(
                select(literal(1)).select_from(related.source).where(related.correlation, inner)
            )
        generic = _is_generic(path, self.target.resource_type)
        if str(path).lower() in self.columns or not (path.attribute.is_complex or generic):
            raise invalid_filter(f"{path} is not a complex attribute")
        node = _Node(self.target.document, path.keys)

        def inner(scope: _Node) -> ColumnElement[bool]:
            return self.element(
                f.filter,
                path.attribute,
                generic,
                lambda c, a: self.predicate(
                    _Node(scope.container, (*scope.keys, a.name), scope.element_type),
                    c.op,
                    self.operand(f"{path.name}.{a.name}", a, c, generic) if c.op != "pr" else None,
                ),
            )

        if generic:
            return or_(inner(node), self.json.any_element(node, inner))
        if path.attribute.multi_valued:
            return self.json.any_element(node, inner)
        return inner(node)

    def related_exists(
        self, related: Related, parent: Attribute, f: Compare
    ) -> ColumnElement[bool]:
        sub = _element_attribute(parent, False, f.path)
        return exists(
            select(literal(1))
            .select_from(related.source)
            .where(related.correlation, self.related_atom(related, f, sub))
        )

    def related_atom(self, related: Related, f: Compare, sub: Attribute) -> ColumnElement[bool]:
        column = {k.lower(): v for k, v in related.columns.items()}.get(sub.name.lower())
        if column is None:
            raise invalid_filter(f"{sub.name} cannot be filtered on here")
        return self.column_predicate(column, sub, f)

    @staticmethod
    def operand(name: str, leaf: Attribute, f: Compare, generic: bool = False) -> _Operand:
        return _operand(name, leaf.type, leaf.case_exact, generic, f)

    # Predicates.

    def predicate(self, node: _Node, op: str, operand: _Operand | None) -> ColumnElement[bool]:
        if operand is None:
            return self.json.present(node)
        if operand.kind == "string":
            return self.string(self.json.text(node), op, operand.value, operand.case_exact)
        if operand.kind == "boolean":
            return self.json.boolean(node, operand.value)
        if operand.kind == "number":
            return _compared(self.json.number(node), op, literal(operand.value))
        # A dateTime in a document compares as its canonical ISO 8601 text (UTC, 'Z').
        return self.string(self.json.text(node), op, _iso(operand.value), True)

    def column_predicate(self, column: Column, leaf: Attribute, f: Compare) -> ColumnElement[bool]:
        expr = column.expr
        if f.op == "pr":
            return (
                and_(expr.isnot(None), expr != "") if column.kind == "string" else expr.isnot(None)
            )
        kind = "decimal" if column.kind == "integer" else column.kind
        operand = _operand(f.path, kind, leaf.case_exact, False, f)
        if operand.kind == "string":
            return self.string(expr, f.op, operand.value, operand.case_exact, column.lowered)
        if operand.kind == "boolean":
            return expr if operand.value else not_(expr)
        if operand.kind == "dateTime":
            # The column's own type (a TypeDecorator over DateTime) stores values its way.
            is_datetime = isinstance(getattr(expr.type, "impl", expr.type), DateTime)
            type_ = expr.type if is_datetime else DateTime(timezone=True)
            return _compared(expr, f.op, literal(operand.value, type_))
        return _compared(expr, f.op, literal(operand.value))

    def string(
        self, expr: Any, op: str, value: str, case_exact: bool, lowered: bool = False
    ) -> ColumnElement[bool]:
        folded = lowered or not case_exact
        if lowered:
            left, right = expr, literal(value.lower())
        elif folded:
            # lower() on both sides, so both are folded by the same rules.
            left, right = func.lower(expr), func.lower(literal(value))
        else:
            left, right = expr, literal(value)
        if op == "eq":
            return left == right
        if op in ORDERING:
            return _compared(left.collate("C") if self.postgres else left, op, right)
        if not folded and not self.postgres:
            # SQLite's LIKE ignores ASCII case; compare exactly without it.
            if op == "co":
                return func.instr(expr, value) > 0
            if op == "sw":
                return func.substr(expr, 1, len(value)) == value
            return func.substr(expr, func.length(expr) - len(value) + 1) == value
        pattern = _like_pattern(op, value.lower() if lowered else value)
        right = func.lower(literal(pattern)) if folded and not lowered else literal(pattern)
        return left.like(right, escape=LIKE_ESCAPE)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def compile_filter(text_or_ast: str | Filter, target: FilterTarget) -> ColumnElement[bool]:
    """Compile a filter (RFC 7644 §3.4.2.2) to one SQL condition over ``target``."""
    ast = parse_filter(text_or_ast) if isinstance(text_or_ast, str) else text_or_ast
    return _Compiler(target).compile(ast)


# --- sorting ---------------------------------------------------------------------------


def order_by(sort_by: str, target: FilterTarget) -> ColumnElement[Any]:
    """The SQL expression to sort by (RFC 7644 §3.4.2.3); errors are ``invalidValue``.

    Strings sort by their caseExact rule, by code point; a multi-valued attribute sorts by
    its primary element's value, else its first. Resources without a value sort as NULL.
    """
    if not isinstance(sort_by, str) or not _ATTR_PATH.fullmatch(sort_by.strip()):
        raise invalid_value(f"sortBy {sort_by!r} is not an attribute path")
    compiler = _Compiler(target)
    path = _resolve(target.resource_type, sort_by.strip(), compiler.columns, invalid_value)
    column = compiler.columns.get(str(path).lower())
    if column is not None:
        if column.kind != "string":
            return column.expr
        key = column.expr if column.lowered or path.leaf.case_exact else func.lower(column.expr)
        return key.collate("C") if compiler.postgres else key
    if compiler.related.get(_attribute_key(path).lower()) is not None or (
        path.urn is None and path.name == "meta"
    ):
        raise invalid_value(f"Cannot sort by {path}")
    generic = _is_generic(path, target.resource_type)
    leaf = path.leaf
    if path.attribute.multi_valued and path.sub is None:
        leaf = path.attribute.sub("value") or leaf
    if leaf.is_complex:
        raise invalid_value(f"Cannot sort by the complex attribute {path}")
    json = compiler.json

    def key(node: _Node) -> ColumnElement[Any]:
        kind = "string" if generic else _KINDS.get(leaf.type, "string")
        if kind == "number":
            return json.number(node)
        if kind == "boolean":
            return json.boolean_key(node)
        text = json.text(node)
        if kind == "string" and not leaf.case_exact:
            text = func.lower(text)
        return text.collate("C") if compiler.postgres else text

    if path.attribute.multi_valued:
        owner = _Node(target.document, path.keys[:-1] if path.sub else path.keys)
        return json.first_element(
            owner, lambda e: key(_Node(e.container, (leaf.name,), e.element_type))
        )
    return key(_Node(target.document, path.keys))


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
