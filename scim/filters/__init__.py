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

Only RFC 7644 filters are parsed here; Entra's ``emails[type eq "work"].value eq "…"`` (a value
path followed by a sub-attribute, outside Figure 1's ABNF) reaches this module already
rewritten by ``scim.quirks.normalize_filter`` into ``emails[(type eq "work") and value eq "…"]``.

Every value reaches SQL as a bound parameter, JSON paths included. A ``lowered`` column is
compared as is (``user_name_key = :v``), so its index serves ``eq``.
"""

from __future__ import annotations

from scim.filters.grammar import (
    And,
    Compare,
    Filter,
    Not,
    Or,
    ValuePath,
    parse_filter,
)
from scim.filters.memory import matches, matches_resource
from scim.filters.sql import compile_filter, order_by
from scim.filters.targets import Column, FilterTarget, PatchPath, Related, parse_path

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
