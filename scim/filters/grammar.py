"""The filter and PATCH path grammar (RFC 7644 §3.4.2.2, §3.5.2): tokens, parser, AST."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from scim.errors import ScimError, invalid_filter

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
