"""OAuth clients and tokens: register and revoke apps; decide whether a token is live;
revoke tokens by member, family or code."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import or_, select

from idp.apps.models import OAuthClient, OAuthToken, SigningAlg
from idp.apps.tokens import revoke_client_tokens
from idp.config import current_settings
from idp.crypto import new_token, token_digest
from idp.db import db, new_id, utcnow
from idp.errors import BadRequest, NotFound
from idp.oauth.claims import Principal
from idp.orgs.models import Membership, MembershipStatus, Organization
from idp.sessions.models import Session
from idp.sessions.services import session_violation

CLIENT_SECRET_PREFIX = "ghs"  # noqa: S105 - a public prefix for secret scanners
REFRESH_TOKEN_PREFIX = "ghr"  # noqa: S105 - a public prefix for secret scanners


# --- clients -------------------------------------------------------------------------------


def _check_uri(uri: str) -> str:
    """An absolute redirect URI: https, or http on loopback when that is allowed."""
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.fragment or not parts.netloc or len(uri) > 2000:
        raise BadRequest("invalid_redirect_uri", f"Not a usable redirect URI: {uri!r}")
    settings = current_settings()
    if parts.scheme == "https":
        return uri
    if parts.scheme == "http" and (
        (loopback and settings.allow_http_loopback) or not settings.is_production
    ):
        return uri
    raise BadRequest("invalid_redirect_uri", f"Redirect URIs must use https: {uri!r}")


def create_client(
    workspace_id: str,
    *,
    name: str,
    redirect_uris: Sequence[str],
    post_logout_redirect_uris: Sequence[str] = (),
    is_public: bool = False,
    first_party: bool = True,
    id_token_alg: str = SigningAlg.RS256.value,
    initiate_login_uri: str | None = None,
) -> tuple[OAuthClient, str | None]:
    """Register an app; its secret (confidential clients only) is returned once, here."""
    name = name.strip()
    if not name or len(name) > 200:
        raise BadRequest("invalid_name", "A client needs a name of at most 200 characters")
    if not redirect_uris:
        raise BadRequest("invalid_redirect_uri", "A client needs at least one redirect URI")
    if id_token_alg not in {a.value for a in SigningAlg}:
        raise BadRequest("invalid_alg", "id_token_alg must be RS256 or ES256")
    secret = None if is_public else new_token(CLIENT_SECRET_PREFIX)
    client = OAuthClient(
        id=new_id("cli"),
        workspace_id=workspace_id,
        client_id=secrets.token_urlsafe(24),
        secret_digest=token_digest(secret) if secret else None,
        name=name,
        redirect_uris=[_check_uri(u) for u in dict.fromkeys(redirect_uris)],
        post_logout_redirect_uris=[_check_uri(u) for u in dict.fromkeys(post_logout_redirect_uris)],
        is_public=is_public,
        first_party=first_party,
        id_token_signed_response_alg=id_token_alg,
        initiate_login_uri=_check_login_uri(initiate_login_uri) if initiate_login_uri else None,
    )
    db.session.add(client)
    db.session.flush()
    return client, secret


def _check_login_uri(uri: str) -> str:
    """OIDC Registration §2: ``initiate_login_uri`` is https (http on loopback in tests)."""
    checked = _check_uri(uri)
    parts = urlsplit(checked)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost"):
        raise BadRequest("invalid_initiate_login_uri", "initiate_login_uri must use https")
    return checked


def list_clients(workspace_id: str) -> list[OAuthClient]:
    return list(
        db.session.scalars(
            select(OAuthClient)
            .where(OAuthClient.workspace_id == workspace_id, OAuthClient.revoked_at.is_(None))
            .order_by(OAuthClient.id)
        )
    )


def get_client(workspace_id: str, client_id: str) -> OAuthClient:
    """A live client by its ``client_id`` (or row id), else 404."""
    client = db.session.scalar(
        select(OAuthClient).where(
            OAuthClient.workspace_id == workspace_id,
            or_(OAuthClient.client_id == client_id, OAuthClient.id == client_id),
            OAuthClient.revoked_at.is_(None),
        )
    )
    if client is None:
        raise NotFound("not_found", "No such client")
    return client


def revoke_client(workspace_id: str, client_id: str) -> OAuthClient:
    """Revoke an app and every token issued to it."""
    client = get_client(workspace_id, client_id)
    client.revoked_at = utcnow()
    revoke_client_tokens(client.id)
    db.session.flush()
    return client


def find_client(client_id: str) -> OAuthClient | None:
    """The live client presenting ``client_id`` (the protocol's public identifier)."""
    if not client_id or len(client_id) > 64:
        return None
    return db.session.scalar(
        select(OAuthClient).where(
            OAuthClient.client_id == client_id, OAuthClient.revoked_at.is_(None)
        )
    )


# --- tokens --------------------------------------------------------------------------------


def new_refresh_token() -> str:
    return new_token(REFRESH_TOKEN_PREFIX)


def find_by_refresh_token(token: str) -> OAuthToken | None:
    if not token.startswith(REFRESH_TOKEN_PREFIX + "_"):
        return None
    return db.session.scalar(
        select(OAuthToken).where(OAuthToken.refresh_token_digest == token_digest(token))
    )


def find_by_jti(jti: str) -> OAuthToken | None:
    return db.session.scalar(select(OAuthToken).where(OAuthToken.access_token_jti == jti))


def principal_for(user_id: str, org_id: str, session_id: str) -> Principal | None:
    """The grant's person if everything behind it still stands: the session live and
    admitted by the org's policy, the membership ACTIVE, the org not deleted; else ``None``."""
    now = utcnow()
    session = db.session.get(Session, session_id)
    if session is None or session.revoked_at is not None or session.expires_at <= now:
        return None
    if session.user_id != user_id:
        return None
    org = db.session.get(Organization, org_id)
    if org is None or org.deleted_at is not None:
        return None
    if session_violation(session, org, now) is not None:  # the org's policy, e.g. max age
        return None
    membership = db.session.scalar(
        select(Membership).where(
            Membership.org_id == org_id,
            Membership.user_id == user_id,
            Membership.status == MembershipStatus.ACTIVE,
        )
    )
    if membership is None:
        return None
    return Principal(user=session.user, org=org, membership=membership, session=session)


def live_principal(row: OAuthToken) -> Principal | None:
    """The principal of a token row that is neither revoked nor orphaned."""
    if row.revoked_at is not None:
        return None
    client = db.session.get(OAuthClient, row.client_id)
    if client is None or client.revoked_at is not None:
        return None
    return principal_for(row.user_id, row.org_id, row.session_id)
