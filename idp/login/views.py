"""The browser's own endpoints: who am I (``/api/v1/me``), sign out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request
from sqlalchemy import select

from idp.db import db, finish_request
from idp.errors import GatehouseError, Unauthorized
from idp.login.cookies import clear_session_cookie, session_token
from idp.login.redirects import safe_return_to
from idp.orgs.models import Membership, MembershipStatus, Organization
from idp.sessions.models import Session
from idp.sessions.services import find_live_session, revoke_session
from idp.sso.signin import admission

bp = Blueprint("login", __name__)


def current_session() -> tuple[Session, Membership]:
    """The browser's live session and its active membership of the session's org, or 401."""
    token = session_token()
    session = find_live_session(token) if token else None
    membership = None
    if session is not None and session.org_id is not None:
        membership = db.session.scalar(
            select(Membership).where(
                Membership.org_id == session.org_id,
                Membership.user_id == session.user_id,
                Membership.status == MembershipStatus.ACTIVE,
            )
        )
    if session is None or membership is None:
        raise Unauthorized("unauthenticated", "Sign in first")
    return session, membership


@bp.get("/api/v1/me")
def me() -> Response:
    """The signed-in person, their current org and role, and every org they belong to."""
    session, membership = current_session()
    user = session.user
    rows = db.session.execute(
        select(Organization, Membership.role)
        .join(Membership, Membership.org_id == Organization.id)
        .where(
            Membership.user_id == user.id,
            Membership.status == MembershipStatus.ACTIVE,
            Organization.deleted_at.is_(None),
        )
        .order_by(Organization.slug)
    ).all()
    current = db.session.get(Organization, session.org_id)
    body: dict[str, Any] = {
        "user": {"id": user.id, "email": user.email, "name": user.name},
        "org": {"id": current.id, "slug": current.slug, "name": current.name},
        "role": membership.role.value,
        "session": session.as_dict(),
        "orgs": [
            {
                "id": org.id,
                "slug": org.slug,
                "name": org.name,
                "role": role.value,
                # Whether switching there needs no new sign-in (the org accepts this one).
                "signed_in": admission(session, org.id) is None,
            }
            for org, role in rows
        ],
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/logout")
def logout() -> Response:
    """End this browser's session (server-side too) and clear its cookie."""
    token = session_token()
    session = find_live_session(token) if token else None
    if session is not None:
        revoke_session(session, "logout")
    response = redirect(safe_return_to(request.form.get("next")), code=303)
    clear_session_cookie(response)
    return response


@bp.errorhandler(GatehouseError)
def error(exc: GatehouseError) -> Response:
    db.session.rollback()
    response = jsonify(error=exc.code, message=exc.message if exc.status < 500 else "Error")
    response.status_code = exc.status
    return response


@bp.after_request
def commit(response: Response) -> Response:
    return finish_request(response, lambda: Response(status=409))
