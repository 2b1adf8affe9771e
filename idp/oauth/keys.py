"""Signing keys (RFC 7517 JWKs): made on first use, rotated by command, private halves
encrypted at rest, published until every token they signed has expired."""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import or_, select

from idp.apps.models import PRIVATE_KEY, SigningAlg, SigningKey
from idp.config import current_settings
from idp.db import db, new_id, utcnow

ID_TOKEN_SECONDS = 600
DEFAULT_ALG = SigningAlg.RS256


def max_token_lifetime() -> timedelta:
    """The longest a token signed by a key stays valid: how long a retired key is published."""
    return timedelta(seconds=max(current_settings().access_token_seconds, ID_TOKEN_SECONDS))


def _generate(alg: SigningAlg) -> SigningKey:
    kid = f"{alg.value.lower()}-{secrets.token_hex(8)}"
    params = {"kid": kid, "alg": alg.value, "use": "sig"}
    if alg is SigningAlg.RS256:
        key: Any = RSAKey.generate_key(2048, parameters=params, private=True)
    else:
        key = ECKey.generate_key("P-256", parameters=params, private=True)
    row = SigningKey(id=new_id("sk"), kid=kid, alg=alg, public_jwk={})
    row.public_jwk = {**key.as_dict(private=False), "alg": alg.value, "use": "sig"}
    row.private_key = PRIVATE_KEY.encrypt(row.id, key.as_pem(private=True))
    db.session.add(row)
    db.session.flush()
    return row


def current_key(alg: SigningAlg = DEFAULT_ALG) -> SigningKey:
    """The newest unretired key of ``alg``; made now if there is none (first use)."""
    found = db.session.scalar(
        select(SigningKey)
        .where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
        .limit(1)
    )
    return found or _generate(alg)


def rotate_keys() -> list[SigningKey]:
    """A new key of each algorithm; the old ones stop signing but stay published a while."""
    now = utcnow()
    for key in db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        key.retired_at = now
    return [_generate(alg) for alg in SigningAlg]


def published_keys() -> list[SigningKey]:
    """Keys whose tokens may still be live: unretired, or retired within the max lifetime."""
    cutoff = utcnow() - max_token_lifetime()
    return list(
        db.session.scalars(
            select(SigningKey)
            .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > cutoff))
            .order_by(SigningKey.created_at)
        )
    )


def jwks() -> dict[str, Any]:
    """The public JWK Set (RFC 7517 §5); makes the first keys if there are none yet."""
    keys = published_keys()
    if not any(k.retired_at is None for k in keys):
        keys += [current_key(alg) for alg in SigningAlg]
    return {"keys": [dict(k.public_jwk) for k in keys]}


@functools.lru_cache(maxsize=64)
def _private(kid: str, alg: str, sealed: str, row_id: str) -> Any:
    pem = PRIVATE_KEY.decrypt(row_id, sealed)
    cls = RSAKey if alg == SigningAlg.RS256 else ECKey
    return cls.import_key(pem, parameters={"kid": kid, "alg": alg})


def private_key(row: SigningKey) -> Any:
    """The joserfc key of ``row`` (decrypted once per process and key)."""
    return _private(row.kid, row.alg.value, row.private_key, row.id)


def sign(claims: dict[str, Any], alg: SigningAlg = DEFAULT_ALG) -> str:
    """A JWS compact JWT over ``claims`` with the current key of ``alg``."""
    row = current_key(alg)
    header = {"alg": row.alg.value, "kid": row.kid, "typ": "JWT"}
    return jwt.encode(header, claims, private_key(row), algorithms=[row.alg.value])


def verify(token: str, *, check_exp: bool = True) -> dict[str, Any] | None:
    """The claims of a JWT signed by a published key and issued here, or ``None``.

    A key retired longer ago than the longest token lifetime is no longer published, so what
    it signed is refused too.
    """
    try:
        header = jws.extract_compact(token.encode()).protected
    except (JoseError, ValueError, UnicodeError):
        return None
    kid = header.get("kid")
    row = next((k for k in published_keys() if k.kid == kid), None)
    if row is None or header.get("alg") != row.alg.value:
        return None
    cls = RSAKey if row.alg is SigningAlg.RS256 else ECKey
    try:
        decoded = jwt.decode(token, cls.import_key(row.public_jwk), algorithms=[row.alg.value])
    except (JoseError, ValueError):
        return None
    claims = dict(decoded.claims)
    if claims.get("iss") != current_settings().issuer:
        return None
    exp = claims.get("exp")
    if check_exp and (not isinstance(exp, int) or exp <= int(utcnow().timestamp())):
        return None
    return claims
