"""The SCIM surface's plumbing: the org's bearer token, SCIM JSON in and out, one error path."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, g, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from idp import telemetry
from idp.actors import Actor
from idp.config import current_settings
from idp.credentials.services import (
    actor_for_scim_token,
    authenticate_scim_token,
    note_scim_failure,
)
from idp.db import db, declare_org, finish_request
from idp.errors import GatehouseError
from idp.jsonbody import has_unstorable_text, parse_json
from idp.orgs.models import Organization
from idp.ratelimit import Credential, check_credential, fail_credential, take_throughput
from scim.errors import CONTENT_TYPE, ScimError, error_response, invalid_syntax, uniqueness

PREFIX = "/scim/v2/"


class ScimBlueprint(Blueprint):
    """Every SCIM route answers with or without a trailing slash, and never redirects.

    IdPs and test suites write ``/Users/?filter=...`` and ``/Users/<id>/``; RFC 7644 §3.2
    names the endpoints without the slash. Both spellings reach the same view (and its bearer
    check) directly: a redirect would drop a POST or PATCH body in some clients, and its
    Location would be built from the request's Host. Doubled slashes are not merged (Werkzeug
    would redirect for that too): ``/Users//`` is a 404.
    """

    def add_url_rule(self, rule: str, *args: Any, **options: Any) -> None:
        options.setdefault("strict_slashes", False)
        options.setdefault("merge_slashes", False)
        super().add_url_rule(rule, *args, **options)


bp = ScimBlueprint("scim", __name__, url_prefix="/scim/v2/<org_slug>")
log = logging.getLogger(__name__)
JSON_TYPES = ("application/scim+json", "application/json")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Domain error codes and the scimType they are (RFC 7644 §3.12, Table 9).
SCIM_TYPES = {
    "user_name_taken": "uniqueness",
    "email_taken": "uniqueness",
    "already_member": "uniqueness",
    "invalid_email": "invalidValue",
    "invalid_name": "invalidValue",
    "invalid_user_name": "invalidValue",
    "unknown_member": "invalidValue",
    "invalid_characters": "invalidValue",
}


# Domain errors answered with another status here than in the admin API (RFC 7644 §3.12).
# The member cap: Table 8 gives 409 to "refused to create a new, duplicate resource" and
# Table 9 pairs it with "uniqueness"; a 409 on a create is how Okta's guide has a server say
# "the user already exists" (scim.quirks.OKTA_SCIM, "Create the User"), and Entra files one
# under SystemForCrossDomainIdentityManagementServiceIncompatibleFiltering: its lookup
# missed a user that exists (https://learn.microsoft.com/en-us/answers/questions/1185756).
# A full org is no duplicate: 403, "operation is not
# permitted based on the supplied authorization" (the token speaks for an org whose seats
# are taken), no scimType (Table 9 defines none for it), and a detail saying what to do.
SCIM_STATUSES = {"member_cap_reached": 403}
SCIM_DETAILS = {
    "member_cap_reached": " (a seat limit, not a duplicate: free a seat or raise the cap)",
}


@dataclass(frozen=True)
class ScimContext:
    org: Organization
    actor: Actor
    base_url: str


def ctx() -> ScimContext:
    return g.scim


@bp.url_value_preprocessor
def take_org_slug(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    g.scim_org_slug = (values or {}).pop("org_slug", "")


@bp.before_request
def authenticate() -> None:
    """The token must be one of this org's SCIM tokens; anything else is 401 (RFC 7644 §2)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    check_credential(Credential.SCIM_TOKEN, token)
    found = None
    if token:
        found = authenticate_scim_token(token, current_settings().workspace, g.scim_org_slug)
    if found is None:
        fail_credential(Credential.SCIM_TOKEN, token)
        raise ScimError(401, "A valid SCIM bearer token for this organization is required")
    credential, org = found
    declare_org(org.id)  # the token's org: row-level security binds the rest of the request
    if request.method in WRITES and not request.path.endswith("/.search"):  # a POST read
        take_throughput("scim_writes", org.id)  # before any write of this request
    g.scim = ScimContext(
        org=org,
        actor=actor_for_scim_token(credential, org.workspace_id, g.get("request_id")),
        base_url=f"{current_settings().issuer}{PREFIX}{org.slug}",
    )


def read_json() -> dict[str, Any]:
    """The request body: a JSON object, sent as application/scim+json or application/json."""
    mimetype = (request.mimetype or "").lower()
    if mimetype not in JSON_TYPES:
        raise ScimError(415, "Send the body as application/scim+json")
    try:
        body = parse_json(request.get_data(cache=True) or b"null")
    except ValueError:
        raise invalid_syntax("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid_syntax("The request body must be a JSON object")
    if has_unstorable_text(body):
        raise ScimError(400, "Text may not hold NUL or lone surrogates", "invalidValue")
    return body


def scim_response(
    body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    if body is None:
        return Response(status=status, headers=headers)
    return Response(json.dumps(body), status=status, content_type=CONTENT_TYPE, headers=headers)


def resource_response(resource: dict[str, Any], status: int = 200) -> Response:
    """A resource, with its ETag (RFC 7644 §3.14) and, when created, its Location."""
    meta = resource.get("meta", {})
    headers = {"ETag": meta["version"]} if "version" in meta else {}
    if status == 201:
        headers["Location"] = meta.get("location", "")
    return scim_response(resource, status, headers)


def check_if_match(version: str) -> None:
    """Honour If-Match (RFC 7644 §3.14): a stale version is 412, nothing changes."""
    wanted = request.headers.get("If-Match")
    if wanted is None:
        return
    candidates = {tag.strip() for tag in wanted.split(",")}
    if "*" not in candidates and version not in candidates and version[2:] not in candidates:
        raise ScimError(412, "The resource changed since that version (If-Match)")


@bp.after_request
def count_operation(response: Response) -> Response:
    """Registered before ``commit``, so it runs after it and counts the final status."""
    rule = request.url_rule.rule if request.url_rule else ""
    resource, _, rest = rule.removeprefix(bp.url_prefix or "").strip("/").partition("/")
    if resource == ".search" or rest == ".search":  # RFC 7644 §3.4.3: a POST that reads
        operation = "search"
    elif request.method == "GET":
        operation = "get" if rest else "list"
    else:
        operation = _OPERATIONS.get(request.method, "other")
    telemetry.scim_operation(resource or "unknown", operation, response.status_code)
    return response


_OPERATIONS = {"POST": "create", "PUT": "replace", "PATCH": "patch", "DELETE": "delete"}


@bp.after_request
def commit(response: Response) -> Response:
    return finish_request(response, _conflict)


def _conflict() -> Response:
    return error_response(uniqueness("A concurrent change conflicts with this one; retry"))


def _note_failure(status: int, scim_type: str | None, message: str) -> None:
    """A refused request of an authenticated IdP: kept on its token, in its own commit."""
    scim = g.get("scim")
    if scim is not None and status < 500:
        note_scim_failure(scim.actor.id, status, scim_type, message)
        db.session.commit()


@bp.errorhandler(ScimError)
def scim_error(exc: ScimError) -> Response:
    db.session.rollback()
    _note_failure(exc.status, exc.scim_type, exc.detail)
    response = error_response(exc)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="SCIM"'
    return response


@bp.errorhandler(GatehouseError)
def domain_error(exc: GatehouseError) -> Response:
    db.session.rollback()
    error = ScimError(
        SCIM_STATUSES.get(exc.code, exc.status),
        exc.message + SCIM_DETAILS.get(exc.code, ""),
        SCIM_TYPES.get(exc.code),
    )
    _note_failure(error.status, error.scim_type, error.detail)
    return error_response(error)


@bp.errorhandler(IntegrityError)
def integrity_error(_exc: IntegrityError) -> Response:
    db.session.rollback()
    return _conflict()


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    db.session.rollback()
    return render_http_error(exc.code or 500, exc.description or exc.name)


def render_http_error(status: int, message: str) -> Response:
    """Errors outside the views (unknown path, wrong method, crash) in SCIM's format."""
    if status >= 500:
        message = "Something went wrong on our side"
    return error_response(ScimError(status, message))
