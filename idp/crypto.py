"""Secrets: bearer tokens shown once and stored only as digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token(prefix: str) -> str:
    """A bearer token: a recognisable prefix (for secret scanners) and 256 random bits."""
    return f"{prefix}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_digest(token: str) -> str:
    """SHA-256 of a high-entropy token, the only form stored.

    A fast hash is right here: the token has 256 bits of entropy, so a stolen digest cannot be
    brute-forced, and a lookup by digest leaks nothing through timing that an attacker could
    use to learn a token they do not hold.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def digests_match(token: str, digest: str) -> bool:
    """Constant-time check of a presented token against a stored digest."""
    return hmac.compare_digest(token_digest(token), digest)
