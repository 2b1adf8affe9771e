"""The apps signing people in through Gatehouse, as other parts of Gatehouse read them."""

from __future__ import annotations

from urllib.parse import urlsplit

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


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute URL (RFC 6454 §4), lowercased; else None."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{host}{suffix}"


def is_registered_origin(origin: str) -> bool:
    """Whether ``origin`` is that of a redirect URI of a live app: the browser origins a
    public client's JavaScript runs from, the only ones CORS lets read token answers."""
    wanted = origin_of(origin)
    if wanted is None or wanted != origin:  # as browsers serialize it (RFC 6454 §6.2)
        return False
    rows = db.session.scalars(
        select(OAuthClient.redirect_uris).where(OAuthClient.revoked_at.is_(None))
    )
    return any(origin_of(uri) == wanted for uris in rows for uri in uris or ())
