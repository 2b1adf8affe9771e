"""Group membership in a PATCH (RFC 7644 §3.5.2), taken out so the server can apply it in bulk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim.errors import (
    invalid_path,
    invalid_value,
)
from scim.filters import Compare, Filter, Or, PatchPath
from scim.patch import Operation, get_key, key_of
from scim.schemas import (
    GROUP,
    split_urn,
)


@dataclass(frozen=True)
class MemberChanges:
    """What a PATCH does to a Group's members, as ids of member resources.

    Applied in this order: when ``replace`` is not None the members become exactly
    ``replace``; else when ``remove_all`` they become none; then ``remove`` are taken out and
    ``add`` put in (the two never share an id). A sequence of operations is folded into this
    form in order, so ``replace`` then ``add`` gives the replaced list plus the added ids.
    """

    add: list[str]
    remove: list[str]
    replace: list[str] | None
    remove_all: bool

    @property
    def is_empty(self) -> bool:
        return not (self.add or self.remove or self.remove_all or self.replace is not None)


def split_member_operations(operations: list[Operation]) -> tuple[list[Operation], MemberChanges]:
    """The operations that do not touch a Group's ``members``, and what those that do do.

    Member changes are meant to be applied after the other operations (they touch nothing
    else). Handled forms (RFC 7644 §3.5.2): ``add``/``replace`` with path ``members``; a
    path-less ``add``/``replace`` whose value has ``members`` (the rest of the value stays an
    operation); ``remove`` with path ``members[value eq "id"]`` (or an ``or`` of those);
    ``remove`` with path ``members`` and no value (all of them) or with a value list (those
    given: Entra's form, also rewritten by scim.quirks).
    """
    others: list[Operation] = []
    folded = _MemberFold()
    for n, operation in enumerate(operations, 1):
        where = f"Operation {n}"
        if operation.path is None:
            key = key_of(operation.value, "members") if isinstance(operation.value, dict) else None
            if key is None:
                others.append(operation)
                continue
            rest = {k: v for k, v in operation.value.items() if k != key}
            if rest:
                others.append(Operation(operation.op, None, rest))
            folded.apply(operation.op, _member_ids(operation.value[key], where))
            continue
        if not _is_members_path(operation.path):
            others.append(operation)
            continue
        path = operation.path
        if path.sub_attribute or "." in split_urn(path.attribute)[1]:
            raise invalid_path(f"{where}: members are added, replaced or removed whole")
        if path.value_filter is not None:
            if operation.op != "remove":
                raise invalid_path(f"{where}: a members filter is only for remove")
            ids = _filter_ids(path.value_filter)
            if ids is None:
                raise invalid_path(f'{where}: members are removed by members[value eq "id"]')
            folded.remove(ids)
        elif operation.op == "remove":
            if operation.value is None:
                folded.remove_all()
            else:
                folded.remove(_member_ids(operation.value, where))
        else:
            folded.apply(operation.op, _member_ids(operation.value, where))
    return others, folded.result()


class _MemberFold:
    def __init__(self) -> None:
        self.replace: dict[str, None] | None = None
        self.remove_everything = False
        self.add: dict[str, None] = {}  # dicts as ordered sets
        self.removed: dict[str, None] = {}

    def apply(self, op: str, ids: list[str]) -> None:
        if op == "replace":
            self.replace = dict.fromkeys(ids)
            self.remove_everything = False
            self.add, self.removed = {}, {}
        else:
            for member in ids:
                if self.replace is not None:
                    self.replace[member] = None
                else:
                    self.add[member] = None
                    self.removed.pop(member, None)

    def remove(self, ids: list[str]) -> None:
        for member in ids:
            if self.replace is not None:
                self.replace.pop(member, None)
            else:
                self.add.pop(member, None)
                self.removed[member] = None

    def remove_all(self) -> None:
        self.replace = None
        self.remove_everything = True
        self.add, self.removed = {}, {}

    def result(self) -> MemberChanges:
        return MemberChanges(
            add=list(self.add),
            remove=list(self.removed),
            replace=None if self.replace is None else list(self.replace),
            remove_all=self.remove_everything,
        )


def _is_members_path(path: PatchPath) -> bool:
    urn, rest = split_urn(path.attribute)
    if urn is not None and urn.lower() != GROUP.lower():
        return False
    return rest.partition(".")[0].lower() == "members"


def _member_ids(value: Any, where: str) -> list[str]:
    """The ids of ``[{"value": id, ...}, ...]`` (a single member object is accepted)."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    ids = []
    for item in items:
        member = get_key(item, "value") if isinstance(item, dict) else None
        if not isinstance(member, str) or not member:
            raise invalid_value(f'{where}: a member is an object with a "value" id')
        ids.append(member)
    return ids


def _filter_ids(value_filter: Filter) -> list[str] | None:
    """The ids of ``value eq "id"`` (or an ``or`` of those), else None."""
    if isinstance(value_filter, Compare):
        is_id = value_filter.path.lower() == "value" and value_filter.op == "eq"
        return [value_filter.value] if is_id and isinstance(value_filter.value, str) else None
    if isinstance(value_filter, Or):
        ids: list[str] = []
        for item in value_filter.items:
            found = _filter_ids(item)
            if found is None:
                return None
            ids.extend(found)
        return ids
    return None
