"""Filters compiled to one SQL expression over columns and JSON documents; sorting."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
from sqlalchemy.sql.expression import column as sql_column

from scim.errors import invalid_filter, invalid_value
from scim.filters.grammar import (
    _ATTR_PATH,
    LIKE_ESCAPE,
    ORDERING,
    And,
    Compare,
    Filter,
    Not,
    Or,
    ValuePath,
    parse_filter,
)
from scim.filters.targets import (
    _KINDS,
    Column,
    FilterTarget,
    Related,
    _attribute_key,
    _compared,
    _element_attribute,
    _is_generic,
    _normalized,
    _Operand,
    _operand,
    _resolve,
)
from scim.schemas import Attribute, AttributePath

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
