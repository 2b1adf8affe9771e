"""Gatehouse as an OIDC provider: the apps (clients), signing keys, codes, tokens, consents.

Secrets are never stored: client secrets, codes and refresh tokens as SHA-256 digests, the
signing keys' private halves encrypted at rest. Access tokens are JWTs, tracked by ``jti``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.crypto import digests_match, register_encrypted_column
from idp.db import (
    UTCDateTime,
    created_column,
    db,
    enum_column,
    id_column,
    updated_column,
    utcnow,
)
from idp.sessions.models import Session


class OAuthClient(db.Model):
    """An app that signs people in through Gatehouse (RFC 6749 §2)."""

    __tablename__ = "oauth_clients"

    id: Mapped[str] = id_column("cli")
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_digest: Mapped[str | None] = mapped_column(String(64))  # None: a public client
    name: Mapped[str] = mapped_column(String(200))
    # Matched exactly (RFC 9700 §4.1.1): no wildcards, no prefix matching.
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_public: Mapped[bool] = mapped_column(default=False)
    first_party: Mapped[bool] = mapped_column(default=True)  # False: consent is asked
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(10), default="RS256")
    # OIDC Registration §2 ``initiate_login_uri``: where a person signed in at Gatehouse
    # itself (no app asked) is sent, for the app to begin its own login.
    initiate_login_uri: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = created_column()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # --- authlib's ClientMixin ---

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        from idp.oauth.claims import SCOPES  # the scope table lives with the claims

        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_digest is None or not client_secret:
            return False
        return digests_match(client_secret, self.secret_digest)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            # A public client has no secret; it may only name itself (introspection refused).
            return method == "none" and endpoint in ("token", "revocation")
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")

    @property
    def token_endpoint_auth_method(self) -> str:
        return "none" if self.is_public else "client_secret_basic"


class SigningAlg(StrEnum):
    RS256 = "RS256"
    ES256 = "ES256"


class SigningKey(db.Model):
    """A key signing ID and access tokens; published in the JWKS until its tokens expire."""

    __tablename__ = "oauth_signing_keys"

    id: Mapped[str] = id_column("sk")
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[SigningAlg] = mapped_column(enum_column(SigningAlg, "signing_alg"))
    private_key: Mapped[str] = mapped_column(Text)  # a PEM, encrypted (PRIVATE_KEY)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_column()
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


PRIVATE_KEY = register_encrypted_column(SigningKey.private_key)


class AuthorizationCode(db.Model):
    """A code issued at the authorization endpoint (RFC 6749 §4.1.2): 60 s, single use."""

    __tablename__ = "oauth_authorization_codes"

    id: Mapped[str] = id_column("code")
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[str] = mapped_column(ForeignKey(Session.id, ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(1000), default="")
    nonce: Mapped[str | None] = mapped_column(String(512))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))  # S256 only
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    acr: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()

    # --- authlib's AuthorizationCodeMixin ---

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_amr(self) -> list[str] | None:
        return list(self.amr) or None

    def get_acr(self) -> str | None:
        return self.acr


class OAuthToken(db.Model):
    """One token response: the access token (a JWT, by ``jti``) and the refresh token (by
    digest). Rotation links each to the next in its ``family_id`` (RFC 9700 §4.14.2)."""

    __tablename__ = "oauth_tokens"
    __table_args__ = (Index("ix_oauth_tokens_user_id_org_id", "user_id", "org_id"),)

    id: Mapped[str] = id_column("tok")
    access_token_jti: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(40), index=True)
    # The code this family was issued from: a replayed code revokes the family (RFC 6749 §4.1.2).
    authorization_code_id: Mapped[str | None] = mapped_column(
        ForeignKey("oauth_authorization_codes.id", ondelete="SET NULL"), index=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[str] = mapped_column(ForeignKey(Session.id, ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(1000), default="")
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_at: Mapped[datetime] = created_column()
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_by: Mapped[str | None] = mapped_column(String(40))

    # --- authlib's TokenMixin ---

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int((self.access_expires_at - self.issued_at).total_seconds())

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self) -> bool:
        return self.access_expires_at <= utcnow()


class Consent(db.Model):
    """What a person allowed a third-party app to have (the scopes, as a sorted set)."""

    __tablename__ = "oauth_consents"
    __table_args__ = (UniqueConstraint("client_id", "user_id"),)

    id: Mapped[str] = id_column("cns")
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
