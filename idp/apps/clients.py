"""The apps signing people in through Gatehouse, as other parts of Gatehouse read them."""

from __future__ import annotations

from sqlalchemy import select

from idp.apps.models import OAuthClient
from idp.db import db


def login_uri_for_signed_in(workspace_id: str) -> str | None:
    """Where a person signed in at Gatehouse itself goes: the one first-party app's
    ``initiate_login_uri``, if exactly one app has one (with several, nothing is guessed)."""
    found = list(
        db.session.scalars(
            select(OAuthClient.initiate_login_uri)
            .where(
                OAuthClient.workspace_id == workspace_id,
                OAuthClient.revoked_at.is_(None),
                OAuthClient.first_party.is_(True),
                OAuthClient.initiate_login_uri.is_not(None),
            )
            .limit(2)
        )
    )
    return found[0] if len(found) == 1 else None
