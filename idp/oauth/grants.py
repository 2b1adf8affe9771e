"""The grants Gatehouse offers: authorization code (+ OpenID Connect, + PKCE S256) and
refresh token with rotation. No implicit, no password grant (RFC 9700 §2.1.2, §2.4)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, grants
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import grants as oidc_grants
from sqlalchemy import select, update

from idp.apps.models import AuthorizationCode, OAuthClient, OAuthToken, SigningAlg
from idp.apps.tokens import revoke_code_tokens, revoke_family
from idp.config import current_settings
from idp.crypto import token_digest
from idp.db import db, new_id, utcnow
from idp.oauth import keys
from idp.oauth.claims import Principal, user_claims
from idp.oauth.services import live_principal, principal_for
from idp.sessions.services import touch_session

CODE_TTL = timedelta(seconds=60)
REFRESH_TTL = timedelta(days=30)  # and never beyond the session behind it
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """RFC 6749 §4.1; codes live 60 s, are stored as digests and work once."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        principal: Principal = request.user
        data = request.payload.data
        session = principal.session
        db.session.add(
            AuthorizationCode(
                id=new_id("code"),
                code_digest=token_digest(code),
                client_id=request.client.id,
                user_id=principal.user.id,
                org_id=principal.org.id,
                session_id=session.id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=session.auth_time,
                amr=list(session.amr),
                acr=session.acr,
                expires_at=utcnow() + CODE_TTL,
            )
        )
        db.session.flush()

    def query_authorization_code(self, code: str, client: OAuthClient) -> AuthorizationCode | None:
        """The code, claimed for this request; a code seen before revokes what it issued."""
        row = db.session.scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_digest == token_digest(code))
        )
        if row is None or row.client_id != client.id:
            return None
        now = utcnow()
        claimed = db.session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == row.id, AuthorizationCode.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            revoke_code_tokens(row.id)
            return None
        return row if row.expires_at > now else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Already marked used when it was claimed."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Principal | None:
        return principal_for(
            authorization_code.user_id, authorization_code.org_id, authorization_code.session_id
        )

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """As authlib's, without its debug log of the token response (no tokens in logs)."""
        code = self.request.authorization_code
        principal = self.authenticate_user(code)
        if not principal:
            raise InvalidGrantError("The grant behind this code is no longer valid.")
        self.request.user = principal
        token = self.generate_token(
            user=principal, scope=code.get_scope(), include_refresh_token=True
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class S256CodeChallenge(CodeChallenge):
    """PKCE (RFC 7636) with S256 only; required of public clients (RFC 9700 §2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if grant.request.client.is_public and not challenge:
            raise InvalidRequestError("Public clients must send a PKCE code_challenge (S256).")
        if challenge and method != "S256":
            # A missing method means "plain" (RFC 7636 §4.3), which is refused.
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class OpenIDCode(oidc_grants.OpenIDCode):
    """OpenID Connect Core §3.1: an ID token beside the access token."""

    def resolve_client_private_key(self, client: OAuthClient) -> Any:
        return keys.private_key(keys.current_key(SigningAlg(self.get_client_algorithm(client))))

    def get_client_algorithm(self, client: OAuthClient) -> str:
        return client.id_token_signed_response_alg or SigningAlg.RS256.value

    def get_encode_header(self, client: OAuthClient) -> dict[str, str]:
        key = keys.current_key(SigningAlg(self.get_client_algorithm(client)))
        return {"alg": key.alg.value, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: OAuthClient) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": current_settings().issuer,
            "aud": [client.client_id],
            "azp": client.client_id,
            "iat": now,
            "exp": now + keys.ID_TOKEN_SECONDS,
        }

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return (
            db.session.scalar(
                select(AuthorizationCode.id)
                .where(
                    AuthorizationCode.client_id == request.client.id,
                    AuthorizationCode.nonce == nonce,
                )
                .limit(1)
            )
            is not None
        )

    def generate_user_info(self, user: Principal, scope: str) -> dict[str, Any]:
        return user_claims(user, scope)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """RFC 6749 §6 with rotation: each refresh token works once; presenting a rotated one
    again revokes its whole family (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> OAuthToken | None:
        from idp.oauth.services import find_by_refresh_token

        row = find_by_refresh_token(refresh_token)
        if row is None:
            return None
        now = utcnow()
        claimed = db.session.execute(
            update(OAuthToken)
            .where(
                OAuthToken.id == row.id,
                OAuthToken.rotated_at.is_(None),
                OAuthToken.revoked_at.is_(None),
            )
            .values(rotated_at=now)
            .execution_options(synchronize_session="fetch")
        )
        if claimed.rowcount != 1:
            db.session.refresh(row)  # a concurrent request may have rotated it just now
            if row.rotated_at is not None:
                revoke_family(row.family_id, "refresh_reused")
            return None
        if row.refresh_expires_at is None or row.refresh_expires_at <= now:
            return None
        return row

    def authenticate_user(self, refresh_token: OAuthToken) -> Principal | None:
        return live_principal(refresh_token)

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """As authlib's, without its debug log of the token response (no tokens in logs)."""
        old = self.request.refresh_token
        principal = self.authenticate_user(old)
        if not principal:
            raise InvalidGrantError("The grant behind this refresh token is no longer valid.")
        touch_session(principal.session)  # a refresh is the app using the session
        self.request.user = principal
        token = self.issue_token(principal, old)
        self.save_token(token)
        self.revoke_old_credential(old)
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def revoke_old_credential(self, refresh_token: OAuthToken) -> None:
        successor = getattr(self.request, "saved_token", None)
        refresh_token.replaced_by = successor.id if successor is not None else None
        db.session.flush()
