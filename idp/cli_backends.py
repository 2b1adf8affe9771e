"""What the operator's commands do, in two backends: here, or over a remote admin API.

Each command of ``gatehouse`` that works remotely is written once, against
:class:`Operations`. :class:`LocalOperations` calls the domain services in an app context
(the same one service per action the admin API's views call) and answers with the admin
API's own representation (its marshmallow schemas, so ``--json`` prints the same fields
either way); :class:`RemoteOperations` calls that admin API with a profile's API key.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import quote

import click
import httpx
from flask import current_app
from flask.cli import ScriptInfo

from idp.actors import system_actor
from idp.admin.schemas import (
    ApiKeyOut,
    ClientOut,
    InvitationOut,
    MemberOut,
    OrgOut,
    ScimTokenOut,
    SetupLinkOut,
)
from idp.cli_profiles import Profile
from idp.config import current_settings
from idp.credentials import services as credentials
from idp.credentials import setup_links
from idp.db import db, declare_workspace_wide
from idp.errors import GatehouseError
from idp.oauth import services as oauth
from idp.orgs import invitations
from idp.orgs import services as orgs
from idp.orgs.models import MembershipStatus
from idp.people import services as people

Row = dict[str, Any]
PAGE = 200  # the admin API's largest page


class OperationError(Exception):
    """A refusal from either backend: a stable code, a message and any details."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}


class Operations(Protocol):
    """The actions the CLI offers in both modes; rows are the admin API's representations."""

    def list_orgs(self) -> list[Row]: ...
    def create_org(self, slug: str, name: str, parent: str | None) -> Row: ...
    def delete_org(self, slug: str) -> None: ...
    def list_members(self, slug: str) -> list[Row]: ...
    def add_member(self, slug: str, email: str, role: str, name: str | None) -> Row: ...
    def set_member_status(self, slug: str, user_id: str, status: str) -> Row: ...
    def remove_member(self, slug: str, user_id: str) -> None: ...
    def invite(self, slug: str, email: str, role: str) -> Row: ...
    def list_api_keys(self, org: str | None) -> list[Row]: ...
    def create_api_key(self, name: str, org: str | None, role: str) -> Row: ...
    def revoke_api_key(self, key_id: str, org: str | None) -> None: ...
    def list_clients(self) -> list[Row]: ...
    def delete_client(self, client_id: str) -> None: ...
    def list_scim_tokens(self, slug: str) -> list[Row]: ...
    def create_scim_token(self, slug: str, name: str) -> Row: ...
    def revoke_scim_token(self, slug: str, token_id: str) -> None: ...
    def create_setup_link(self, slug: str, intents: list[str], expires_in: int | None) -> Row: ...


# --- here: the services in an app context --------------------------------------------------


def _all(list_page: Any) -> Iterator[Any]:
    cursor = None
    while True:
        page = list_page(cursor=cursor, limit=PAGE)
        yield from page.items
        if not (cursor := page.next_cursor):
            return


class LocalOperations:
    """The domain services as the operator (the ``cli`` system actor), workspace-wide."""

    def __init__(self) -> None:
        self.workspace = orgs.ensure_workspace(current_settings().workspace)

    def _org(self, slug: str) -> Any:
        return orgs.get_org(self.workspace.id, slug)

    def _actor(self) -> Any:
        return system_actor()

    def list_orgs(self) -> list[Row]:
        found = _all(lambda **page: orgs.list_orgs(self.workspace.id, **page))
        return OrgOut(many=True).dump(list(found))

    def create_org(self, slug: str, name: str, parent: str | None) -> Row:
        org = orgs.create_org(
            self._actor(), self.workspace, slug=slug, name=name, parent_slug=parent
        )
        return OrgOut().dump(org)

    def delete_org(self, slug: str) -> None:
        orgs.delete_org(self._actor(), self._org(slug))

    def list_members(self, slug: str) -> list[Row]:
        org = self._org(slug)
        return MemberOut(many=True).dump(
            list(_all(lambda **page: orgs.list_members(org.id, **page)))
        )

    def add_member(self, slug: str, email: str, role: str, name: str | None) -> Row:
        membership = people.add_member(
            self._actor(), self._org(slug), email=email, role=role, name=name
        )
        return MemberOut().dump(membership)

    def set_member_status(self, slug: str, user_id: str, status: str) -> Row:
        membership = orgs.set_member_status(
            self._actor(), self._org(slug), user_id, MembershipStatus(status)
        )
        return MemberOut().dump(membership)

    def remove_member(self, slug: str, user_id: str) -> None:
        orgs.remove_member(self._actor(), self._org(slug), user_id)

    def invite(self, slug: str, email: str, role: str) -> Row:
        invitation, token = invitations.invite_by_email(
            self._actor(), self._org(slug), email=email, role=role
        )
        return {**InvitationOut().dump(invitation), "url": invitations.accept_url(token)}

    def list_api_keys(self, org: str | None) -> list[Row]:
        org_id = self._org(org).id if org else None
        keys = _all(
            lambda **page: credentials.list_api_keys(self.workspace.id, org_id=org_id, **page)
        )
        return ApiKeyOut(many=True).dump(list(keys))

    def create_api_key(self, name: str, org: str | None, role: str) -> Row:
        scope = self._org(org) if org else None
        key, token = credentials.create_api_key(
            self._actor(), self.workspace.id, name=name, org=scope, role=role
        )
        return {**ApiKeyOut().dump(key), "key": token}

    def revoke_api_key(self, key_id: str, org: str | None) -> None:
        scope = self._org(org) if org else None
        credentials.revoke_api_key(self._actor(), self.workspace.id, key_id, org=scope)

    def list_clients(self) -> list[Row]:
        return ClientOut(many=True).dump(oauth.list_clients(self.workspace.id))

    def delete_client(self, client_id: str) -> None:
        oauth.revoke_client(self.workspace.id, client_id)

    def list_scim_tokens(self, slug: str) -> list[Row]:
        org = self._org(slug)
        tokens = _all(lambda **page: credentials.list_scim_tokens(org.id, **page))
        return ScimTokenOut(many=True).dump(list(tokens))

    def create_scim_token(self, slug: str, name: str) -> Row:
        org = self._org(slug)
        credential, token = credentials.create_scim_token(self._actor(), org, name=name)
        return {
            **ScimTokenOut().dump(credential),
            "token": token,
            "scim_base_url": credentials.scim_base_url(org),
        }

    def revoke_scim_token(self, slug: str, token_id: str) -> None:
        credentials.revoke_scim_token(self._actor(), self._org(slug), token_id)

    def create_setup_link(self, slug: str, intents: list[str], expires_in: int | None) -> Row:
        link, url = setup_links.create_setup_link(
            self._actor(), self._org(slug), intents=intents, expires_in=expires_in
        )
        return {**SetupLinkOut().dump(link), "url": url}


@contextmanager
def local_operations() -> Iterator[LocalOperations]:
    """The app's context (loaded as Flask's ``with_appcontext`` would); commit once on
    success, roll back on a refusal (raised as :class:`OperationError`)."""
    with _app_context():
        declare_workspace_wide()  # the operator's commands span orgs (row-level security)
        try:
            yield LocalOperations()
            db.session.commit()
        except GatehouseError as exc:
            db.session.rollback()
            raise OperationError(exc.code, exc.message, exc.details) from None
        except BaseException:
            db.session.rollback()
            raise


@contextmanager
def _app_context() -> Iterator[None]:
    if current_app:
        yield
        return
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    with app.app_context():
        yield


# --- remote: the admin API over HTTP -------------------------------------------------------


class RemoteOperations:
    """The admin API of a profile's Gatehouse (``<url>/api/v1``), with its API key."""

    def __init__(self, profile: Profile, client: httpx.Client) -> None:
        self.profile = profile
        self.http = client

    def _call(self, method: str, path: str, body: Row | None = None, **params: Any) -> Any:
        try:
            response = self.http.request(method, path, json=body, params=params or None)
        except httpx.HTTPError as exc:
            raise OperationError(
                "unreachable", f"cannot reach {self.profile.url}: {exc}", {}
            ) from None
        if response.status_code == 204:
            return None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success and isinstance(payload, dict):
            return payload
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            details = {k: v for k, v in payload.items() if k not in ("error", "message")}
            raise OperationError(payload["error"], str(payload.get("message", "")), details)
        raise OperationError(
            f"http_{response.status_code}",
            f"{method} {response.url} answered {response.status_code} "
            f"{response.reason_phrase} without the admin API's JSON (is url Gatehouse's?)",
        )

    def _all(self, path: str) -> list[Row]:
        rows: list[Row] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            page = self._call("GET", path, **params)
            rows.extend(self._data(page, path))
            if not (cursor := page.get("next_cursor")):
                return rows

    def _data(self, page: Any, path: str) -> list[Row]:
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise OperationError(
                "unexpected_response",
                f"GET {self.profile.url}/api/v1{path} did not answer with the admin API's list "
                "(is url Gatehouse's?)",
            )
        return page["data"]

    @staticmethod
    def _org(slug: str) -> str:
        return f"/orgs/{_segment(slug)}"

    def list_orgs(self) -> list[Row]:
        return self._all("/orgs")

    def create_org(self, slug: str, name: str, parent: str | None) -> Row:
        return self._call("POST", "/orgs", _present(slug=slug, name=name, parent=parent))

    def delete_org(self, slug: str) -> None:
        self._call("DELETE", self._org(slug))

    def list_members(self, slug: str) -> list[Row]:
        return self._all(f"{self._org(slug)}/members")

    def add_member(self, slug: str, email: str, role: str, name: str | None) -> Row:
        body = _present(email=email, role=role, name=name)
        return self._call("POST", f"{self._org(slug)}/members", body)

    def set_member_status(self, slug: str, user_id: str, status: str) -> Row:
        path = f"{self._org(slug)}/members/{_segment(user_id)}"
        return self._call("PATCH", path, {"status": status})

    def remove_member(self, slug: str, user_id: str) -> None:
        self._call("DELETE", f"{self._org(slug)}/members/{_segment(user_id)}")

    def invite(self, slug: str, email: str, role: str) -> Row:
        body = {"email": email, "role": role}
        return self._call("POST", f"{self._org(slug)}/invitations", body)

    def list_api_keys(self, org: str | None) -> list[Row]:
        return self._all(f"{self._org(org)}/api-keys" if org else "/api-keys")

    def create_api_key(self, name: str, org: str | None, role: str) -> Row:
        if org is None:
            return self._call("POST", "/api-keys", {"name": name})
        return self._call("POST", f"{self._org(org)}/api-keys", {"name": name, "role": role})

    def revoke_api_key(self, key_id: str, org: str | None) -> None:
        base = f"{self._org(org)}/api-keys" if org else "/api-keys"
        self._call("DELETE", f"{base}/{_segment(key_id)}")

    def list_clients(self) -> list[Row]:
        return self._data(self._call("GET", "/clients"), "/clients")

    def delete_client(self, client_id: str) -> None:
        self._call("DELETE", f"/clients/{_segment(client_id)}")

    def list_scim_tokens(self, slug: str) -> list[Row]:
        return self._all(f"{self._org(slug)}/scim-tokens")

    def create_scim_token(self, slug: str, name: str) -> Row:
        return self._call("POST", f"{self._org(slug)}/scim-tokens", {"name": name})

    def revoke_scim_token(self, slug: str, token_id: str) -> None:
        self._call("DELETE", f"{self._org(slug)}/scim-tokens/{_segment(token_id)}")

    def create_setup_link(self, slug: str, intents: list[str], expires_in: int | None) -> Row:
        body = _present(intents=intents, expires_in=expires_in)
        return self._call("POST", f"{self._org(slug)}/setup-links", body)


def _segment(value: str) -> str:
    """One path segment: a slug or id typed on the command line cannot reach another path."""
    return quote(value, safe="")


def _present(**fields: Any) -> Row:
    return {k: v for k, v in fields.items() if v is not None}


@contextmanager
def remote_operations(profile: Profile) -> Iterator[RemoteOperations]:
    """An HTTP client for the profile's admin API, closed when the command ends."""
    verify: ssl.SSLContext | bool = True
    if profile.ca_file:
        try:
            verify = ssl.create_default_context(cafile=profile.ca_file)
        except OSError as exc:
            raise OperationError("bad_profile", f"ca_file {profile.ca_file}: {exc}") from None
    with httpx.Client(
        base_url=f"{profile.url}/api/v1",
        headers={
            "Authorization": f"Bearer {profile.api_key}",
            "User-Agent": "gatehouse-cli",
        },
        timeout=30.0,
        verify=verify,
        follow_redirects=False,  # the key goes to the profile's URL and nowhere else
    ) as client:
        yield RemoteOperations(profile, client)
