"""/Users (RFC 7644 §3): a provisioned user is the org's membership of a workspace user."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from idp.db import db
from idp.directory import services as directory
from idp.directory.models import DirectoryGroup, DirectoryUser
from idp.errors import GatehouseError
from idp.orgs.models import Membership, MembershipStatus, Team, TeamMember
from idp.users.services import validate_email
from scim import quirks
from scim.api import bp, check_if_match, ctx, read_json, resource_response, scim_response
from scim.errors import invalid_value, not_found
from scim.filters import Column, FilterTarget, Related, compile_filter
from scim.patch import apply_patch, parse_patch
from scim.resources import (
    ListParams,
    canonical_document,
    external_id,
    list_params,
    list_response,
    primary_value,
    project,
    schemas_of,
    sorting,
    wants,
)
from scim.schemas import user_type


def user_target() -> FilterTarget:
    """Where each filterable attribute of a User lives in SQL."""
    return FilterTarget(
        user_type(),
        DirectoryUser.attributes,
        {
            "id": Column(DirectoryUser.membership_id),
            "userName": Column(DirectoryUser.user_name_key, lowered=True),
            "externalId": Column(DirectoryUser.external_id),
            "active": Column(Membership.status == MembershipStatus.ACTIVE, kind="boolean"),
            "meta.created": Column(DirectoryUser.created_at, kind="dateTime"),
            "meta.lastModified": Column(DirectoryUser.updated_at, kind="dateTime"),
        },
        dialect=db.engine.dialect.name,
        related={
            "groups": Related(
                TeamMember.__table__.join(
                    DirectoryGroup.__table__, DirectoryGroup.team_id == TeamMember.team_id
                ),
                TeamMember.membership_id == DirectoryUser.membership_id,
                {"value": Column(TeamMember.team_id)},
            )
        },
    )


def user_resource(
    user: DirectoryUser, groups: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The SCIM representation: what the IdP sent, plus id, active, groups and meta."""
    base = ctx().base_url
    resource: dict[str, Any] = {
        "schemas": schemas_of(user.attributes, user_type()),
        "id": user.membership_id,
    }
    if user.external_id is not None:
        resource["externalId"] = user.external_id
    resource["userName"] = user.user_name
    resource.update(user.attributes)
    suspended = user.membership.status is MembershipStatus.SUSPENDED
    if suspended or "active" in user.attributes:
        resource["active"] = not suspended  # the membership decides; an admin may suspend too
    if groups:
        resource["groups"] = [
            {
                "value": team_id,
                "$ref": f"{base}/Groups/{team_id}",
                "display": name,
                "type": "direct",
            }
            for team_id, name in groups
        ]
    resource["meta"] = {
        "resourceType": "User",
        "created": user.created_at.isoformat(),
        "lastModified": user.updated_at.isoformat(),
        "location": f"{base}/Users/{user.membership_id}",
        "version": f'W/"{user.version}"',
    }
    return resource


def _groups_of(membership_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """The provisioned groups each user is in, in one query for a whole page."""
    if not membership_ids:
        return {}
    rows = db.session.execute(
        select(TeamMember.membership_id, Team.id, Team.name)
        .join(Team, Team.id == TeamMember.team_id)
        .join(DirectoryGroup, DirectoryGroup.team_id == Team.id)
        .where(TeamMember.membership_id.in_(membership_ids))
        .order_by(Team.id)
    )
    found: dict[str, list[tuple[str, str]]] = {}
    for membership_id, team_id, name in rows:
        found.setdefault(membership_id, []).append((team_id, name))
    return found


def user_input(body: dict[str, Any]) -> dict[str, Any]:
    """Split a User body into what the service keeps: userName, externalId, active, the rest."""
    document = canonical_document(body, user_type())
    user_name = document.pop("userName", None)
    if not isinstance(user_name, str) or not user_name.strip():
        raise invalid_value("userName is required")
    return {
        "user_name": user_name,
        "external_id": external_id(document),
        # Kept in the document too: an IdP that never sent (or removed) active sees none back.
        "active": document.get("active", True),
        "attributes": document,
    }


def identity_of(data: dict[str, Any]) -> dict[str, Any]:
    """The email that links a new user to the workspace (if any), and a display name for it.

    The primary email, else a userName that is an email (Entra's UPN, Okta's login).
    """
    document = data["attributes"]
    email = None
    for candidate in (primary_value(document, "emails"), data["user_name"]):
        try:
            email = validate_email(candidate or "")
            break
        except GatehouseError:
            continue
    name = document.get("displayName") or document.get("name", {}).get("formatted")
    if not name:
        parts = [document.get("name", {}).get(k) for k in ("givenName", "familyName")]
        name = " ".join(p for p in parts if p) or None
    return {"email": email, "name": name[:200] if name else None}


def _users_query() -> Any:
    return (
        select(DirectoryUser)
        .join(DirectoryUser.membership)
        .options(contains_eager(DirectoryUser.membership).lazyload(Membership.user))
        .where(DirectoryUser.org_id == ctx().org.id)
    )


def _load(user_id: str) -> DirectoryUser:
    user = db.session.scalar(_users_query().where(DirectoryUser.membership_id == user_id))
    if user is None:
        raise not_found(f"No user {user_id!r}")
    return user


def _full(user: DirectoryUser) -> dict[str, Any]:
    return user_resource(user, _groups_of([user.membership_id]).get(user.membership_id))


def list_users(params: ListParams) -> dict[str, Any]:
    target = user_target()
    query = _users_query()
    if params.filter:
        query = query.where(compile_filter(params.filter, target))
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    users: list[DirectoryUser] = []
    if params.count:
        users = list(
            db.session.scalars(
                query.order_by(*sorting(params, target), DirectoryUser.membership_id)
                .offset(params.start_index - 1)
                .limit(params.count)
            )
        )
    groups = (
        _groups_of([u.membership_id for u in users]) if wants(user_type(), params, "groups") else {}
    )
    resources = [
        project(user_resource(u, groups.get(u.membership_id)), user_type(), params) for u in users
    ]
    return list_response(resources, total, params)


@bp.get("/Users")
def get_users() -> Response:
    return scim_response(list_users(list_params(request.args.to_dict())))


@bp.post("/Users/.search")
def search_users() -> Response:
    return scim_response(list_users(list_params(read_json(), search=True)))


@bp.post("/Users")
def create_user() -> Response:
    data = user_input(quirks.normalize_request(read_json(), user_type(), "POST"))
    user = directory.provision_user(ctx().actor, ctx().org, **data, **identity_of(data))
    return resource_response(user_resource(user), 201)  # a new user is in no group yet


@bp.get("/Users/<user_id>")
def get_user(user_id: str) -> Response:
    params = list_params(request.args.to_dict())
    return resource_response(project(_full(_load(user_id)), user_type(), params))


@bp.put("/Users/<user_id>")
def replace_user(user_id: str) -> Response:
    user = _load(user_id)
    check_if_match(f'W/"{user.version}"')
    data = user_input(quirks.normalize_request(read_json(), user_type(), "PUT"))
    user = directory.update_user(ctx().actor, ctx().org, user, **data, **identity_of(data))
    return resource_response(_full(user))


@bp.patch("/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    user = _load(user_id)
    check_if_match(f'W/"{user.version}"')
    operations = parse_patch(quirks.normalize_request(read_json(), user_type(), "PATCH"))
    data = user_input(apply_patch(_full(user), operations, user_type()))
    user = directory.update_user(ctx().actor, ctx().org, user, **data, **identity_of(data))
    return resource_response(_full(user))


@bp.delete("/Users/<user_id>")
def delete_user(user_id: str) -> Response:
    user = _load(user_id)
    check_if_match(f'W/"{user.version}"')
    directory.deprovision_user(ctx().actor, ctx().org, user)
    return scim_response(None, 204)
