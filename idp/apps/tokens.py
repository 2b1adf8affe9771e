"""Revoking what Gatehouse issued to apps: by member, by refresh-token family, by code."""

from __future__ import annotations

from sqlalchemy import select, update

from idp.apps.models import OAuthToken
from idp.db import db, utcnow


def _revoke(condition: object, reason: str) -> int:
    result = db.session.execute(
        update(OAuthToken)
        .where(condition, OAuthToken.revoked_at.is_(None))  # type: ignore[arg-type]
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount


def revoke_member_tokens(org_id: str, user_id: str, reason: str = "member_deprovisioned") -> int:
    """Revoke every token of the person in that org at once (suspension, removal)."""
    return _revoke((OAuthToken.org_id == org_id) & (OAuthToken.user_id == user_id), reason)


def revoke_family(family_id: str, reason: str) -> int:
    """Revoke a refresh-token family: every token rotated from one grant (RFC 9700 §4.14.2)."""
    return _revoke(OAuthToken.family_id == family_id, reason)


def revoke_code_tokens(code_id: str) -> int:
    """Revoke the tokens issued from a code that was presented again (RFC 6749 §4.1.2)."""
    families = select(OAuthToken.family_id).where(OAuthToken.authorization_code_id == code_id)
    return _revoke(OAuthToken.family_id.in_(families.scalar_subquery()), "code_replayed")


def revoke_client_tokens(client_row_id: str) -> int:
    """Revoke every token issued to an app (the client is being revoked)."""
    return _revoke(OAuthToken.client_id == client_row_id, "client_revoked")
