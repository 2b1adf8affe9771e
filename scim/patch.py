"""SCIM PATCH (RFC 7644 §3.5.2) on the in-memory representation of a resource.

:func:`parse_patch` checks a PatchOp message; :func:`apply_patch` applies its operations to
the resource as the server shows it (canonical attribute names, extensions under their URN)
and returns a new representation, or raises :class:`~scim.errors.ScimError` and changes
nothing. Group membership is not patched here: :func:`split_member_operations` takes those
operations out as sets of ids, so that the server can apply 10,000 of them in bulk.

Vendor quirks are not handled here but in :mod:`scim.quirks`, before parsing. The few
tolerances below are generic and documented where they apply: ``add`` through a value filter
that matches nothing creates the element (what Entra relies on for
``emails[type eq "work"].value``), ``remove`` with a value removes only the values given, and
an attribute a client cannot change may still be sent unchanged (Okta echoes ``id``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scim.errors import (
    ScimError,
    invalid_path,
    invalid_syntax,
    invalid_value,
    mutability,
    no_target,
)
from scim.filters import And, Compare, Filter, PatchPath, matches, parse_path
from scim.resources import check_simple, is_empty
from scim.schemas import (
    PATCH_OP,
    Attribute,
    AttributePath,
    ResourceType,
    UnknownAttribute,
    resolve,
    split_urn,
)

MAX_OPERATIONS = 1000
OPS = ("add", "replace", "remove")
_MISSING: Any = object()


@dataclass(frozen=True)
class Operation:
    """One PATCH operation (RFC 7644 §3.5.2): ``path`` None targets the resource itself."""

    op: str
    path: PatchPath | None
    value: Any


def parse_patch(body: Any) -> list[Operation]:
    """The operations of a PatchOp message (RFC 7644 §3.5.2), checked but not yet resolved.

    Message attribute names are matched in any case (RFC 7643 §2.1); ``op`` must be one of
    ``add``, ``replace``, ``remove`` as the RFC spells them (Entra's capitals are turned into
    these by :mod:`scim.quirks`).
    """
    if not isinstance(body, dict):
        raise invalid_syntax("A PATCH body must be a PatchOp object")
    schemas = get_key(body, "schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(s, str) and s.lower() == PATCH_OP.lower() for s in schemas
    ):
        raise invalid_syntax(f'A PATCH body must have "schemas": ["{PATCH_OP}"]')
    operations = get_key(body, "Operations")
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax('A PATCH body must have a non-empty "Operations" list')
    if len(operations) > MAX_OPERATIONS:
        raise invalid_syntax(f"A PATCH request may hold at most {MAX_OPERATIONS} operations")
    return [_parse_operation(item, n) for n, item in enumerate(operations, 1)]


def _parse_operation(item: Any, n: int) -> Operation:
    where = f"Operation {n}"
    if not isinstance(item, dict):
        raise invalid_syntax(f"{where} must be an object")
    op = get_key(item, "op")
    if op not in OPS:
        raise invalid_syntax(f'{where}: "op" must be "add", "replace" or "remove", not {op!r}')
    text = get_key(item, "path")
    path = None
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise invalid_path(f'{where}: "path" must be a non-empty string')
        try:
            path = parse_path(text.strip())
        except ScimError as error:
            raise invalid_path(f"{where}: {error.detail}") from None
    has_value = _has(item, "value")
    value = get_key(item, "value")
    if op == "remove":
        if path is None:
            # RFC 7644 §3.5.2.2: a remove without a path names no target.
            raise no_target(f"{where}: remove needs a path")
        return Operation(op, path, value)
    if not has_value:
        raise invalid_value(f"{where}: {op} needs a value")
    if path is None and not isinstance(value, dict):
        raise invalid_value(f"{where}: without a path, the value must be an object of attributes")
    return Operation(op, path, value)


def get_key(document: dict[str, Any], name: str) -> Any:
    if name in document:
        return document[name]
    lowered = name.lower()
    return next(
        (v for k, v in document.items() if isinstance(k, str) and k.lower() == lowered), None
    )


def _has(document: dict[str, Any], name: str) -> bool:
    lowered = name.lower()
    return any(isinstance(k, str) and k.lower() == lowered for k in document)


# --- applying ---------------------------------------------------------------------------


def apply_patch(
    resource: dict[str, Any], operations: list[Operation], resource_type: ResourceType
) -> dict[str, Any]:
    """``resource`` with ``operations`` applied in order (RFC 7644 §3.5.2), as a new dict.

    All or nothing: on the first failing operation a ScimError is raised and ``resource`` is
    untouched. Empty values (null, "", [], {}) are dropped from the result (RFC 7643 §2.5),
    and ``schemas`` lists exactly the extensions the result holds.
    """
    document = copy.deepcopy(resource)
    patcher = _Patcher(document, resource_type)
    for n, operation in enumerate(operations, 1):
        patcher.apply(operation, f"Operation {n}")
    _drop_empty(document)
    _check_required(resource, document, resource_type)
    _sync_schemas(document, resource_type)
    return document


@dataclass(frozen=True)
class _Target:
    """Where an operation acts: an attribute (or the whole object of an extension)."""

    urn: str | None  # the extension holding it; None for the core schema
    attribute: Attribute | None  # None: the whole extension object
    sub: Attribute | None = None
    value_filter: Filter | None = None
    typed: bool = True  # False for an extension we hold no schema for: stored as sent

    @property
    def label(self) -> str:
        name = self.attribute.name if self.attribute else ""
        text = f"{self.urn}:{name}" if self.urn and name else (self.urn or name)
        if self.value_filter is not None:
            text += f"[{self.value_filter}]"
        return f"{text}.{self.sub.name}" if self.sub else text


class _Patcher:
    def __init__(self, document: dict[str, Any], resource_type: ResourceType) -> None:
        self.document = document
        self.resource_type = resource_type

    def apply(self, operation: Operation, where: str) -> None:
        if operation.path is None:
            if not isinstance(operation.value, dict):
                raise invalid_value(f"{where}: without a path, the value must be an object")
            # RFC 7644 §3.5.2.1/.3: each attribute of the value, as if it were the path.
            for key, value in operation.value.items():
                if not isinstance(key, str) or key.lower() == "schemas":
                    continue
                target = self._key_target(key, value)
                if target is not None:
                    self._apply(operation.op, target, value, where)
            return
        target = self._path_target(operation.path, operation.value, where)
        self._apply(operation.op, target, operation.value, where)

    # --- resolving targets

    def _path_target(self, path: PatchPath, value: Any, where: str) -> _Target:
        if path.value_filter is None and path.sub_attribute is None:
            whole = self._extension_object(path.attribute, value)
            if whole is not None:
                return whole
        try:
            resolved = resolve(self.resource_type, path.attribute)
        except UnknownAttribute:
            raise invalid_path(
                f"{where}: {path.attribute!r} is not an attribute of a {self.resource_type.id}"
            ) from None
        target = self._target(resolved)
        if path.value_filter is None and path.sub_attribute is None:
            return target
        if not target.typed:
            raise invalid_path(f"{where}: {path} needs an attribute with a published schema")
        try:
            # Checks the filter's names and operands and the sub-attribute (not done for
            # plain paths: it also refuses attributes never returned, such as password).
            path.resolve(self.resource_type)
        except ScimError as error:
            raise invalid_path(f"{where}: {error.detail}") from None
        attribute = resolved.attribute
        if path.value_filter is not None and not attribute.multi_valued:
            raise invalid_path(f"{where}: a value filter needs a multi-valued attribute")
        sub = attribute.sub(path.sub_attribute) if path.sub_attribute else None
        return _Target(target.urn, attribute, sub, path.value_filter)

    def _key_target(self, key: str, value: Any) -> _Target | None:
        whole = self._extension_object(key, value)
        if whole is not None:
            return whole
        try:
            return self._target(resolve(self.resource_type, key))
        except UnknownAttribute:
            # Like a POST body (scim.resources.canonical_document), unknown names are ignored.
            return None

    def _extension_object(self, text: str, value: Any) -> _Target | None:
        """The whole object of an extension, when ``text`` is the extension's URN."""
        if not text.lower().startswith("urn:"):
            return None
        lowered = text.lower()
        if lowered == self.resource_type.schema.id.lower():
            raise invalid_path(f"{text!r} is the core schema, not an attribute")
        extension = self.resource_type.extension(text)
        if extension is not None:
            return _Target(extension.id, None)
        urn, _ = split_urn(text)
        if urn is not None and (
            self.resource_type.extension(urn) is not None
            or urn.lower() == self.resource_type.schema.id.lower()
        ):
            return None  # an attribute of a known schema
        listed = [s.lower() for s in self.document.get("schemas", []) if isinstance(s, str)]
        if key_of(self.document, text) is not None or lowered in listed:
            return _Target(key_of(self.document, text) or text, None, typed=False)
        held = urn is not None and (key_of(self.document, urn) or urn.lower() in listed)
        if not held and isinstance(value, dict):
            # An extension we hold no schema for (Okta's custom ones): its URN, with an object.
            return _Target(text, None, typed=False)
        return None

    def _target(self, resolved: AttributePath) -> _Target:
        typed = resolved.urn is None or self.resource_type.extension(resolved.urn) is not None
        urn = resolved.urn
        if urn is not None and not typed:
            urn = key_of(self.document, urn) or urn
        return _Target(urn, resolved.attribute, resolved.sub_attribute, typed=typed)

    # --- operations

    def _apply(self, op: str, target: _Target, value: Any, where: str) -> None:
        if target.attribute is None:
            self._apply_extension(op, target, value, where)
            return
        container = self._container(target, create=op != "remove")
        if container is None:
            return  # removing from an extension the resource does not have
        if not target.typed:
            _apply_untyped(container, op, target, value)
        elif target.value_filter is not None:
            self._apply_filtered(container, op, target, value, where)
        elif target.sub is not None:
            self._apply_sub(container, op, target, value, where)
        else:
            self._apply_attribute(container, op, target.attribute, value, where)

    def _container(self, target: _Target, create: bool) -> dict[str, Any] | None:
        if target.urn is None:
            return self.document
        key = key_of(self.document, target.urn) or target.urn
        extension = self.document.get(key)
        if not isinstance(extension, dict):
            if not create:
                return None
            extension = self.document[key] = {}
        return extension

    def _apply_extension(self, op: str, target: _Target, value: Any, where: str) -> None:
        """A bare extension URN as path: its whole object (RFC 7644 §3.5.2, RFC 7643 §3.3)."""
        urn = target.urn
        assert urn is not None  # noqa: S101 - a whole-extension target always names one
        key = key_of(self.document, urn) or urn
        if op == "remove":
            self.document.pop(key, None)
            return
        if value is None:
            if op == "replace":
                self.document.pop(key, None)
            return
        if not isinstance(value, dict):
            raise invalid_value(f"{where}: the value of {urn} must be an object")
        fields = {k: v for k, v in value.items() if isinstance(k, str) and k.lower() != "schemas"}
        if not target.typed:
            existing = self.document.get(key)
            merged = dict(existing) if isinstance(existing, dict) else {}
            for name, item in fields.items():
                merged[key_of(merged, name) or name] = copy.deepcopy(item)
            self.document[key] = merged
            return
        # A complex value: its attributes are added or replaced, the others kept (§3.5.2.3).
        for name, item in fields.items():
            try:
                resolved = resolve(self.resource_type, f"{urn}:{name}")
            except UnknownAttribute:
                continue
            self._apply(op, self._target(resolved), item, where)

    def _apply_attribute(
        self, container: dict[str, Any], op: str, attribute: Attribute, value: Any, where: str
    ) -> None:
        name = attribute.name
        current = container.get(name, _MISSING)
        label = f"{where}: {name}"
        if op == "remove":
            if value is not None and attribute.multi_valued and isinstance(current, list):
                self._remove_values(container, attribute, value, label)
                return
            if not _is_empty(current):
                _check_mutable(attribute, None, current, label)
            container.pop(name, None)
            return
        if value is None:
            if op == "replace" and not _is_empty(current):
                _check_mutable(attribute, None, current, label)
                container.pop(name, None)
            return
        if attribute.multi_valued:
            existing = current if isinstance(current, list) else []
            if attribute.mutability == "readOnly":
                given = value if isinstance(value, list) else [value]
                unchanged = all(_is_empty(g) or any(_covers(e, g) for e in existing) for g in given)
                if not unchanged or (op == "replace" and len(given) != len(existing)):
                    raise mutability(f"{label} is read-only")
                return
            items = _coerce_items(attribute, value, label)
            if op == "add":
                added = [i for i in items if i not in existing]
                result = [*existing, *added]
            else:
                if not _same(items, existing):
                    _check_mutable(attribute, items, current, label)
                result = items
                added = items
            _settle_primary(attribute, result, added, label)
            container[name] = result
            return
        if attribute.is_complex:
            # RFC 7644 §3.5.2.1/.3: the sub-attributes given are set, the others kept.
            if not isinstance(value, dict):
                raise invalid_value(f"{label} must be an object")
            existing = current if isinstance(current, dict) else {}
            if attribute.mutability == "readOnly" or (
                attribute.mutability == "immutable" and not _is_empty(current)
            ):
                if not _covers(existing, value):
                    raise mutability(f"{label} is {attribute.mutability}")
                return
            container[name] = {**existing, **_coerce_complex(attribute, value, existing, label)}
            return
        new = check_simple(attribute, value, label)
        if not _same(new, current):
            _check_mutable(attribute, new, current, label)
        container[name] = new

    def _remove_values(
        self, container: dict[str, Any], attribute: Attribute, value: Any, label: str
    ) -> None:
        """``remove`` with a value removes only those values (not defined by RFC 7644, but
        removing every value instead would lose data)."""
        given = value if isinstance(value, list) else [value]
        current = container[attribute.name]
        kept = [item for item in current if not any(_covers(item, g) for g in given)]
        if len(kept) != len(current):
            _check_mutable(attribute, kept, current, label)
        container[attribute.name] = kept

    def _apply_sub(
        self, container: dict[str, Any], op: str, target: _Target, value: Any, where: str
    ) -> None:
        attribute, sub = target.attribute, target.sub
        assert attribute is not None and sub is not None  # noqa: S101 - see _apply
        label = f"{where}: {attribute.name}.{sub.name}"
        current = container.get(attribute.name)
        if attribute.multi_valued:
            # No filter: every value of the attribute (RFC 7644 §3.5.2).
            elements = (
                [e for e in current if isinstance(e, dict)] if isinstance(current, list) else []
            )
            if op != "remove" and value is not None and not elements:
                elements = [{}]
                container[attribute.name] = elements
            for element in elements:
                self._set_sub(element, op, sub, value, label)
            if isinstance(container.get(attribute.name), list):
                _settle_primary(attribute, container[attribute.name], elements, label)
            return
        if not isinstance(current, dict):
            if op == "remove" or value is None:
                return
            current = container[attribute.name] = {}
        elif attribute.mutability in ("readOnly", "immutable") and op != "remove":
            if _same(value, current.get(sub.name, _MISSING)):
                return
            raise mutability(f"{label}: {attribute.name} is {attribute.mutability}")
        self._set_sub(current, op, sub, value, label)

    def _set_sub(
        self, element: dict[str, Any], op: str, sub: Attribute, value: Any, label: str
    ) -> None:
        current = element.get(sub.name, _MISSING)
        if op == "remove" or value is None:
            if not _is_empty(current):
                _check_mutable(sub, None, current, label)
            element.pop(sub.name, None)
            return
        new = _coerce_value(sub, value, current, label)
        if not _same(new, current):
            _check_mutable(sub, new, current, label)
        element[sub.name] = new

    def _apply_filtered(
        self, container: dict[str, Any], op: str, target: _Target, value: Any, where: str
    ) -> None:
        attribute, sub, value_filter = target.attribute, target.sub, target.value_filter
        assert attribute is not None  # noqa: S101 - see _apply
        label = f"{where}: {target.label}"
        current = container.get(attribute.name)
        elements: list[Any] = current if isinstance(current, list) else []
        chosen = [
            e for e in elements if isinstance(e, dict) and matches(value_filter, e, attribute)
        ]
        if op != "remove" and attribute.mutability == "readOnly":
            raise mutability(f"{label}: {attribute.name} is read-only")
        if op == "remove":
            if sub is not None:
                for element in chosen:
                    self._set_sub(element, op, sub, None, label)
            elif chosen:
                if attribute.mutability in ("readOnly", "immutable"):
                    raise mutability(f"{label}: {attribute.name} is {attribute.mutability}")
                container[attribute.name] = [e for e in elements if not _contains(chosen, e)]
            return  # nothing matched: nothing to remove
        if not chosen:
            if op == "replace":
                raise no_target(f"{label}: the filter matches no value")
            chosen = [self._element_from_filter(attribute, value_filter, label)]
            elements = [*elements, *chosen]
            container[attribute.name] = elements
        if sub is not None:
            for element in chosen:
                self._set_sub(element, op, sub, value, label)
        else:
            if value is not None and not isinstance(value, dict):
                raise invalid_value(f"{label} must be an object")
            for element in chosen:
                given = _coerce_complex(attribute, value or {}, element, label)
                if op == "replace":
                    # RFC 7644 §3.5.2.3: the matching values are replaced.
                    kept = {
                        s.name: element[s.name]
                        for s in attribute.sub_attributes
                        if s.mutability in ("immutable", "readOnly") and s.name in element
                    }
                    element.clear()
                    element.update({**kept, **given})
                else:
                    element.update(given)
        _settle_primary(attribute, container[attribute.name], chosen, label)

    def _element_from_filter(
        self, attribute: Attribute, value_filter: Filter, label: str
    ) -> dict[str, Any]:
        """``add`` through a filter that matches nothing (Entra's
        ``{"op": "Add", "path": "emails[type eq \\"work\\"].value"}``) creates the value the
        filter describes, when it is a conjunction of ``eq`` on sub-attributes; RFC 7644
        §3.5.2.1 leaves this open, and without it a user's first work email is lost."""
        conditions = _eq_conditions(value_filter)
        if not conditions:
            raise no_target(f"{label}: the filter matches no value")
        element: dict[str, Any] = {}
        for name, item in conditions.items():
            sub = attribute.sub(name)
            if sub is None:
                raise no_target(f"{label}: the filter matches no value")
            if sub.type == "boolean" and isinstance(item, str):
                item = {"true": True, "false": False}.get(item.lower(), item)  # as filters do
            element[sub.name] = _coerce_value(sub, item, _MISSING, label)
        return element


def _apply_untyped(container: dict[str, Any], op: str, target: _Target, value: Any) -> None:
    """An attribute of an extension we hold no schema for: stored as sent."""
    attribute = target.attribute
    assert attribute is not None  # noqa: S101 - see _Patcher._apply
    name = key_of(container, attribute.name) or attribute.name
    if target.sub is None:
        if op == "remove" or value is None:
            container.pop(name, None)
        elif op == "add" and isinstance(container.get(name), list):
            items = value if isinstance(value, list) else [value]
            container[name] = [*container[name], *(i for i in items if i not in container[name])]
        else:
            container[name] = copy.deepcopy(value)
        return
    parent = container.get(name)
    if not isinstance(parent, dict):
        if op == "remove" or value is None:
            return
        parent = container[name] = {}
    sub = key_of(parent, target.sub.name) or target.sub.name
    if op == "remove" or value is None:
        parent.pop(sub, None)
    else:
        parent[sub] = copy.deepcopy(value)


# --- values -----------------------------------------------------------------------------


def _coerce_items(attribute: Attribute, value: Any, label: str) -> list[Any]:
    """The values of a multi-valued attribute (a single value is one value)."""
    items = value if isinstance(value, list) else [value]
    result = []
    for item in items:
        if item is None:
            continue
        coerced = _coerce_value(attribute, item, _MISSING, label)
        if not _is_empty(coerced) and coerced not in result:
            result.append(coerced)
    return result


def _coerce_value(attribute: Attribute, value: Any, current: Any, label: str) -> Any:
    """One value of ``attribute`` (one element when multi-valued), as stored."""
    if attribute.is_complex:
        if not isinstance(value, dict):
            raise invalid_value(f"{label} must be an object")
        existing = current if isinstance(current, dict) else {}
        return _coerce_complex(attribute, value, existing, label)
    if attribute.multi_valued and isinstance(value, list):
        return [check_simple(attribute, v, label) for v in value if v is not None]
    return check_simple(attribute, value, label)


def _coerce_complex(
    attribute: Attribute, value: dict[str, Any], current: dict[str, Any], label: str
) -> dict[str, Any]:
    """Sub-attributes under their canonical names, type-checked. Unknown and read-only ones
    are dropped, as for a POST (RFC 7644 §3.3; scim.resources): clients send a member's
    ``display`` that the server computes. An immutable one may only be set once."""
    result: dict[str, Any] = {}
    for key, item in value.items():
        sub = attribute.sub(key) if isinstance(key, str) else None
        if sub is None or sub.mutability == "readOnly":
            continue
        where = f"{label}.{sub.name}"
        existing = current.get(sub.name, _MISSING)
        if item is None:
            if not _is_empty(existing):
                _check_mutable(sub, None, existing, where)
            result[sub.name] = None
            continue
        new = _coerce_value(sub, item, existing, where)
        if not _same(new, existing):
            _check_mutable(sub, new, existing, where)
        result[sub.name] = new
    return result


def _check_mutable(attribute: Attribute, new: Any, current: Any, label: str) -> None:
    """RFC 7643 §2.2: readOnly never changes; immutable is set once, when unassigned."""
    if attribute.mutability == "readOnly":
        raise mutability(f"{label} is read-only")
    if attribute.mutability == "immutable" and not _is_empty(current):
        raise mutability(f"{label} is immutable once set")


def _settle_primary(
    attribute: Attribute, elements: list[Any], changed: Iterable[Any], label: str
) -> None:
    """At most one value is primary (RFC 7643 §2.4): one set primary by this operation
    clears the others (RFC 7644 §3.5.2)."""
    if attribute.sub("primary") is None:
        return
    winners = [e for e in changed if isinstance(e, dict) and e.get("primary") is True]
    if len(winners) > 1:
        raise invalid_value(f"{label}: only one value may be primary")
    if not winners:
        return
    for element in elements:
        if isinstance(element, dict) and element is not winners[0] and element.get("primary"):
            element["primary"] = False


def _eq_conditions(value_filter: Filter) -> dict[str, Any] | None:
    """``{sub-attribute: value}`` when the filter is a conjunction of ``eq``, else None."""
    if isinstance(value_filter, Compare):
        if value_filter.op != "eq" or value_filter.value is None:
            return None
        return {value_filter.path: value_filter.value}
    if isinstance(value_filter, And):
        conditions: dict[str, Any] = {}
        for item in value_filter.items:
            found = _eq_conditions(item)
            if found is None:
                return None
            for name, value in found.items():
                same = next((k for k in conditions if k.lower() == name.lower()), None)
                if same is not None and conditions[same] != value:
                    return None  # contradicts itself: describes no value
                conditions[same or name] = value
        return conditions
    return None


# --- comparing and cleaning -------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    return value is _MISSING or is_empty(value)


def _same(new: Any, current: Any) -> bool:
    """Whether ``new`` leaves ``current`` as it is (empty values all count as unassigned)."""
    if _is_empty(new) or _is_empty(current):
        return _is_empty(new) and _is_empty(current)
    if isinstance(new, dict) and isinstance(current, dict):
        return _covers(current, new) and _covers(new, current)
    if isinstance(new, list) and isinstance(current, list):
        return len(new) == len(current) and all(_contains(current, n) for n in new)
    return type(new) is type(current) and new == current


def _covers(current: Any, given: Any) -> bool:
    """Whether every sub-value ``given`` names has that value in ``current``."""
    if isinstance(current, dict) and isinstance(given, dict):
        return all(
            _is_empty(v) or _same(v, current.get(key_of(current, k) or k, _MISSING))
            for k, v in given.items()
            if isinstance(k, str)
        )
    return _same(given, current)


def _contains(items: list[Any], item: Any) -> bool:
    return any(i is item for i in items) or any(_same(item, i) for i in items)


def _drop_empty(value: Any) -> Any:
    """Empty values removed, in place (RFC 7643 §2.5: null, "" and [] mean unassigned)."""
    if isinstance(value, dict):
        for key in list(value):
            _drop_empty(value[key])
            if _is_empty(value[key]):
                del value[key]
    elif isinstance(value, list):
        for item in value:
            _drop_empty(item)
        value[:] = [item for item in value if not _is_empty(item)]
    return value


def _check_required(
    before: dict[str, Any], after: dict[str, Any], resource_type: ResourceType
) -> None:
    for attribute in resource_type.schema.attributes:
        if attribute.required and attribute.name in before and attribute.name not in after:
            raise invalid_value(f"{attribute.name} is required and cannot be removed")


def _sync_schemas(document: dict[str, Any], resource_type: ResourceType) -> None:
    """``schemas`` names the core schema and each extension the resource holds (§3.1)."""
    core = resource_type.schema.id
    listed = [s for s in document.get("schemas", []) if isinstance(s, str)]
    held = [k for k in document if k.lower().startswith("urn:") and isinstance(document[k], dict)]
    held_lower = {k.lower() for k in held}
    schemas = [core]
    for urn in [*listed, *held]:
        lowered = urn.lower()
        if lowered in held_lower and lowered not in {s.lower() for s in schemas}:
            schemas.append(urn)
    document["schemas"] = schemas
    # Keep ``schemas`` first, as every representation shows it.
    for key in [k for k in document if k != "schemas"]:
        document[key] = document.pop(key)


def key_of(document: dict[str, Any], name: str) -> str | None:
    """The key of ``document`` that spells ``name`` in any case (RFC 7643 §2.1)."""
    if name in document:
        return name
    lowered = name.lower()
    return next((k for k in document if isinstance(k, str) and k.lower() == lowered), None)
