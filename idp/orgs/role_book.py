"""The roles an org can use, read from the database: the built-in roles (with the app's
permissions granted to them), the workspace's templates and the org's own roles.

Deciding one of Gatehouse's own permissions for a built-in role needs no query
(``idp.orgs.roles.BUILTIN_ROLES``); a book is two indexed reads, made where custom roles or
the app's permissions can matter.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from idp.db import db, lock_row
from idp.errors import BadRequest
from idp.orgs.models import AppPermission, CustomRole, Organization, Workspace
from idp.orgs.roles import GATEHOUSE_PERMISSIONS, Role, RoleDef, builtin_role


def custom_role_def(row: CustomRole) -> RoleDef:
    return RoleDef(
        row.key,
        row.name,
        row.rank,
        frozenset(row.permissions or ()),
        description=row.description,
        org_id=row.org_id,
        id=row.id,
    )


@dataclass(frozen=True)
class RoleBook:
    """Every role usable in one org (or, with ``org_id`` None, the workspace's templates)."""

    workspace_id: str
    org_id: str | None
    roles: dict[str, RoleDef]
    app_permissions: frozenset[str]

    def get(self, key: str) -> RoleDef:
        """The role of ``key``, named in a request; ``unknown_role`` (400) if this org has no
        such role (another org's own roles included)."""
        role = self.roles.get(key)
        if role is None:
            raise BadRequest("unknown_role", f"No role {key!r} in this organization")
        return role

    def find(self, key: str | None) -> RoleDef | None:
        return self.roles.get(key) if key else None

    def held_by(self, role: RoleDef | None) -> frozenset[str]:
        """What a principal acting with ``role`` holds here, the app's grants included."""
        found = self.find(role.key) if role else None
        return found.permissions if found else frozenset()

    def rank(self, key: str | None) -> int:
        """A role's rank; a key no longer defined (or none) ranks below every role."""
        role = self.find(key)
        return role.rank if role else 0

    def known_permissions(self) -> frozenset[str]:
        return GATEHOUSE_PERMISSIONS | self.app_permissions

    def ordered(self) -> list[RoleDef]:
        """Highest first: the workspace-defined order."""
        return sorted(self.roles.values(), key=lambda r: (-r.rank, not r.is_builtin, r.key))


def app_permission_grants(workspace_id: str) -> list[tuple[str, Role]]:
    return [
        (key, Role(lowest))
        for key, lowest in db.session.execute(
            select(AppPermission.key, AppPermission.granted_from).where(
                AppPermission.workspace_id == workspace_id
            )
        )
    ]


def role_book(workspace_id: str, org_id: str | None) -> RoleBook:
    """The roles of ``org_id`` (templates and its own), or the templates alone."""
    grants = app_permission_grants(workspace_id)
    roles = {role.value: builtin_role(role, grants) for role in Role}
    scopes = [""] if org_id is None else ["", org_id]
    rows = db.session.scalars(
        select(CustomRole).where(
            CustomRole.workspace_id == workspace_id, or_(*(CustomRole.scope == s for s in scopes))
        )
    )
    for row in rows:
        roles[row.key] = custom_role_def(row)
    return RoleBook(workspace_id, org_id, roles, frozenset(key for key, _ in grants))


def role_def(workspace_id: str, org_id: str, key: str | None) -> RoleDef | None:
    """One role of the org by key; ``None`` for no key or a key no longer defined."""
    return role_book(workspace_id, org_id).find(key) if key else None


def org_roles(org: Organization) -> RoleBook:
    return role_book(org.workspace_id, org.id)


def bump_roles_version(workspace_id: str) -> None:
    """Called by every change to custom roles or app permissions, in its transaction."""
    db.session.execute(
        update(Workspace)
        .where(Workspace.id == workspace_id)
        .values(roles_version=Workspace.roles_version + 1)
        .execution_options(synchronize_session=False)
    )


_CACHE: OrderedDict[tuple[str, str | None], tuple[int, RoleBook]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 2048


def cached_role_book(workspace_id: str, org_id: str | None, version: int) -> RoleBook:
    """The org's roles as of ``version`` (``Workspace.roles_version``, read by the caller in
    the same request): kept per process, so a hot path reads them once per change. A book
    read after the version it is stored under is never older than that version."""
    key = (workspace_id, org_id)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == version:
            _CACHE.move_to_end(key)
            return hit[1]
    book = role_book(workspace_id, org_id)
    with _CACHE_LOCK:
        _CACHE[key] = (version, book)
        _CACHE.move_to_end(key)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return book


def hold_role(book: RoleBook, key: str) -> RoleDef:
    """The role of ``key``, kept from deletion until the transaction ends: a custom role's row
    is locked (its deletion counts holders under the same lock) and read again. Every way of
    giving a role takes this before the org's lock, so the two locks come in one order."""
    role = book.get(key)
    if not role.is_builtin:
        lock_row(CustomRole, role.id or "")
        if db.session.scalar(select(CustomRole.id).where(CustomRole.id == role.id)) is None:
            raise BadRequest("unknown_role", f"No role {key!r} in this organization")
    return role


def roles_version(workspace_id: str) -> int:
    return db.session.scalar(select(Workspace.roles_version).where(Workspace.id == workspace_id))


def cached_permissions(workspace_id: str, org_id: str, key: str, version: int) -> frozenset[str]:
    """What a holder of role ``key`` may do in the org as of ``version`` (read by the caller
    in its request), Gatehouse's and the app's."""
    role = cached_role_book(workspace_id, org_id, version or 0).find(key)
    return role.permissions if role else frozenset()


def permissions_for(org: Organization, key: str) -> list[str]:
    """What a holder of role ``key`` may do in the org, sorted (one small read)."""
    version = roles_version(org.workspace_id) or 0
    return sorted(cached_permissions(org.workspace_id, org.id, key, version))
