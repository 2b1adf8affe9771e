"""The one wiring module: authlib's authorization server, its grants and endpoints."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, current_app

from idp.apps.models import OAuthClient, OAuthToken
from idp.apps.tokens import revoke_family
from idp.config import current_settings
from idp.crypto import token_digest
from idp.db import db, new_id, utcnow
from idp.oauth import keys
from idp.oauth.claims import Principal
from idp.oauth.grants import (
    REFRESH_TTL,
    AuthorizationCodeGrant,
    OpenIDCode,
    RefreshTokenGrant,
    S256CodeChallenge,
)
from idp.oauth.services import (
    find_by_jti,
    find_by_refresh_token,
    find_client,
    live_principal,
    new_refresh_token,
)

EXTENSION = "gatehouse.oauth"


def access_token_seconds(client: Any = None, grant_type: Any = None) -> int:
    return current_settings().access_token_seconds


def _access_token(client: OAuthClient, grant_type: str, user: Principal, scope: str) -> str:
    """A JWT access token (RFC 9068 claims) for one org, signed by the current key."""
    now = int(utcnow().timestamp())
    user.jti = secrets.token_urlsafe(18)
    return keys.sign(
        {
            "iss": current_settings().issuer,
            "sub": user.user.id,
            "aud": client.client_id,
            "client_id": client.client_id,
            "iat": now,
            "exp": now + access_token_seconds(),
            "jti": user.jti,
            "scope": scope,
            "org_id": user.org.id,
            "org": user.org.slug,
            "role": user.membership.role,
            "sid": user.session.id,
        }
    )


def _save_token(token: dict[str, Any], request: Any) -> None:
    principal: Principal = request.user
    previous: OAuthToken | None = getattr(request, "refresh_token", None)
    code = getattr(request, "authorization_code", None)
    now = utcnow()
    session = principal.session
    row = OAuthToken(
        id=new_id("tok"),
        access_token_jti=principal.jti,
        refresh_token_digest=token_digest(token["refresh_token"])
        if token.get("refresh_token")
        else None,
        family_id=previous.family_id if previous is not None else new_id("fam"),
        authorization_code_id=code.id
        if code is not None
        else getattr(previous, "authorization_code_id", None),
        client_id=request.client.id,
        user_id=principal.user.id,
        org_id=principal.org.id,
        session_id=session.id,
        scope=token.get("scope", ""),
        auth_time=session.auth_time,
        issued_at=now,
        access_expires_at=now + _seconds(token.get("expires_in")),
        refresh_expires_at=min(session.expires_at, now + REFRESH_TTL),
    )
    db.session.add(row)
    db.session.flush()
    request.saved_token = row


def _seconds(value: Any) -> timedelta:
    return timedelta(seconds=int(value or access_token_seconds()))


@dataclass
class Presented:
    """A token presented at revocation or introspection, and which kind it is."""

    row: OAuthToken
    kind: str  # "access_token" or "refresh_token"
    claims: dict[str, Any] | None = None

    def check_client(self, client: OAuthClient) -> bool:
        return self.row.client_id == client.id

    def is_active(self) -> bool:
        now = utcnow()
        if self.kind == "refresh_token":
            alive = self.row.rotated_at is None and (
                self.row.refresh_expires_at is not None and self.row.refresh_expires_at > now
            )
        else:
            alive = self.row.access_expires_at > now and self.claims is not None
        return alive and live_principal(self.row) is not None


def query_presented(token: str, hint: str | None) -> Presented | None:
    """Find a token by its value: a refresh token by digest, an access token by its JWT."""
    if not token or len(token) > 4096:
        return None
    row = find_by_refresh_token(token)
    if row is not None:
        return Presented(row, "refresh_token")
    claims = keys.verify(token, check_exp=False)
    if claims is None or not isinstance(claims.get("jti"), str):
        return None
    row = find_by_jti(claims["jti"])
    if row is None:
        return None
    fresh = claims.get("exp", 0) > int(utcnow().timestamp())
    return Presented(row, "access_token", claims if fresh else None)


class Revocation(RevocationEndpoint):
    """RFC 7009: a refresh token revokes its whole family, an access token its own grant."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Presented | None:
        return query_presented(token_string, token_type_hint)

    def revoke_token(self, token: Presented, request: Any) -> None:
        if token.kind == "refresh_token":
            revoke_family(token.row.family_id, "revoked_by_client")
        elif token.row.revoked_at is None:
            token.row.revoked_at, token.row.revoked_reason = utcnow(), "revoked_by_client"
        db.session.flush()


class Introspection(IntrospectionEndpoint):
    """RFC 7662, for confidential clients of the workspace. Inactive when the token is
    revoked or expired, its session revoked, or the membership no longer ACTIVE."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Presented | None:
        return query_presented(token_string, token_type_hint)

    def check_permission(self, token: Presented, client: OAuthClient, request: Any) -> bool:
        owner = db.session.get(OAuthClient, token.row.client_id)
        return owner is not None and owner.workspace_id == client.workspace_id

    def create_introspection_payload(self, token: Presented | None) -> dict[str, Any]:
        if token is None or not token.is_active():
            return {"active": False}
        return self.introspect_token(token)

    def introspect_token(self, token: Presented) -> dict[str, Any]:
        principal = live_principal(token.row)
        assert principal is not None  # noqa: S101 - checked by is_active just before
        row = token.row
        owner = db.session.get(OAuthClient, row.client_id)
        expires = row.refresh_expires_at if token.kind == "refresh_token" else row.access_expires_at
        return {
            "active": True,
            "token_type": token.kind,
            "client_id": owner.client_id if owner else None,
            "scope": row.scope,
            "sub": row.user_id,
            "username": principal.user.email,
            "iss": current_settings().issuer,
            "iat": int(row.issued_at.timestamp()),
            "exp": int(expires.timestamp()) if expires else None,
            "sid": row.session_id,
            "org": {"id": principal.org.id, "slug": principal.org.slug},
            "role": principal.membership.role,
        }


def init_oauth(app: Flask) -> AuthorizationServer:
    """Build the authorization server for ``app`` (kept in ``app.extensions``)."""
    server = AuthorizationServer(app, query_client=find_client, save_token=_save_token)
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=_access_token,
            refresh_token_generator=lambda **_kw: new_refresh_token(),
            expires_generator=access_token_seconds,
        ),
    )
    server.register_grant(
        AuthorizationCodeGrant, [S256CodeChallenge(required=True), OpenIDCode(require_nonce=False)]
    )
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions[EXTENSION] = server
    return server


def authorization_server() -> AuthorizationServer:
    return current_app.extensions[EXTENSION]
