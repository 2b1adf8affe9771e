"""Secrets: bearer tokens stored only as digests, and secrets encrypted at rest (AES-GCM)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, select, update

from idp.config import current_settings, parse_encryption_keys
from idp.db import db
from idp.errors import GatehouseError

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


# --- secrets encrypted at rest -----------------------------------------------------------

# A token reads ``v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``, unpadded.
VERSION = "v1"
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID_LABEL = b"gatehouse key id"
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_BODY = re.compile(r"[A-Za-z0-9_-]+")


class DecryptionError(GatehouseError):
    """A stored secret cannot be decrypted; the message never holds plaintext or key material."""

    # The fault is ours (a dropped key, a damaged row), never the caller's.
    status = 500

    def __init__(self, message: str, code: str = "decryption_failed") -> None:
        super().__init__(code, message)


def key_id(key: bytes) -> str:
    """A short, non-secret fingerprint of a key: a keyed MAC, so it says nothing of the key."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class KeyRing:
    """The keys of ``GATEHOUSE_ENCRYPTION_KEY`` by key id; ``current_id`` encrypts."""

    current_id: str
    ciphers: Mapping[str, AESGCM]


@functools.lru_cache(maxsize=8)
def _key_ring(value: str) -> KeyRing:
    keys = parse_encryption_keys(value)
    ciphers = {key_id(key): AESGCM(key) for key in keys}
    return KeyRing(current_id=key_id(keys[0]), ciphers=ciphers)


def current_key_ring() -> KeyRing:
    """The running app's key ring, built once per distinct setting."""
    return _key_ring(current_settings().encryption_key)


def _associated_data(kid: str, context: str) -> bytes:
    if not context:
        # Without a context a ciphertext could be moved to any row or column unnoticed.
        raise ValueError("an encrypted secret needs a context naming where it is stored")
    # The header is authenticated too, so it cannot be edited to point at another key.
    return f"{VERSION}.{kid}:{context}".encode()


def encrypt_secret(plaintext: bytes | str, context: str) -> str:
    """AES-256-GCM under the current key, bound to ``context`` (e.g. ``"table.column:row id"``).

    Random 96-bit nonces (NIST SP 800-38D §8.2.2) are safe for far more than the 2**32
    encryptions per key that a store of secrets will ever make.
    """
    if isinstance(plaintext, str):
        plaintext = plaintext.encode()
    ring = current_key_ring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = ring.ciphers[ring.current_id].encrypt(
        nonce, plaintext, _associated_data(ring.current_id, context)
    )
    body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
    return f"{VERSION}.{ring.current_id}.{body}"


def _split(token: str) -> tuple[str, str]:
    """The key id and body of a well-formed token."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != VERSION:
        raise DecryptionError(f"not a {VERSION} encrypted secret")
    if not _KEY_ID.fullmatch(parts[1]) or not _BODY.fullmatch(parts[2]):
        raise DecryptionError("malformed encrypted secret")
    return parts[1], parts[2]


def needs_reencryption(token: str) -> bool:
    """Whether ``token`` was encrypted under a key other than the current one.

    Raises ``DecryptionError`` for a token that is not an encrypted secret at all.
    """
    kid, _ = _split(token)
    return kid != current_key_ring().current_id


def decrypt_secret(token: str, context: str) -> bytes:
    """The plaintext of ``token``, checked against the ``context`` it was encrypted for."""
    kid, body = _split(token)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("malformed encrypted secret") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("malformed encrypted secret")
    cipher = current_key_ring().ciphers.get(kid)
    if cipher is None:
        raise DecryptionError(
            f"encrypted under key id {kid}, which is not in GATEHOUSE_ENCRYPTION_KEY",
            code="unknown_encryption_key",
        )
    try:
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(kid, context))
    except InvalidTag:
        # One message for every cause, so a failure reveals nothing about which check failed.
        raise DecryptionError(
            "a stored secret could not be decrypted: it was altered, or moved from the row or "
            "column it was encrypted for"
        ) from None


# --- the registry of encrypted columns, and key rotation -----------------------------------


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding ``encrypt_secret`` tokens, each bound to its row by ``context(row id)``."""

    column: Column[Any]
    context: Callable[[Any], str]

    @property
    def name(self) -> str:
        return f"{self.column.table.name}.{self.column.name}"

    @property
    def primary_key(self) -> Column[Any]:
        [pk] = self.column.table.primary_key.columns
        return pk

    def encrypt(self, row_id: Any, plaintext: bytes | str) -> str:
        """The token to store in this column of row ``row_id``."""
        return encrypt_secret(plaintext, self.context(row_id))

    def decrypt(self, row_id: Any, token: str) -> bytes:
        """The plaintext stored in this column of row ``row_id``."""
        return decrypt_secret(token, self.context(row_id))


ENCRYPTED_COLUMNS: dict[str, EncryptedColumn] = {}
"""Every registered column by ``table.column``; filled as the model modules are imported."""


def register_encrypted_column(
    model_column: Any, context: Callable[[Any], str] | None = None
) -> EncryptedColumn:
    """Register a model's column (``Model.attr`` or a Core ``Column``) for key rotation.

    The row must have a single-column primary key, set before encrypting (the context names
    it); ``context`` defaults to ``"<table>.<column>:<row id>"``. Use the returned handle's
    ``encrypt``/``decrypt`` so writes and rotation agree on the associated data.
    """
    column = model_column if isinstance(model_column, Column) else model_column.property.columns[0]
    table = column.table
    if len(table.primary_key.columns) != 1:
        raise ValueError(f"{table.name}: an encrypted column needs a single-column primary key")
    label = f"{table.name}.{column.name}"
    entry = EncryptedColumn(column, context or (lambda row_id: f"{label}:{row_id}"))
    if entry.name in ENCRYPTED_COLUMNS:
        raise ValueError(f"{entry.name} is already registered as an encrypted column")
    ENCRYPTED_COLUMNS[entry.name] = entry
    return entry


@dataclass
class Rotation:
    """What ``reencrypt_column`` did: rows re-encrypted, and why rows could not be (by row id)."""

    reencrypted: int = 0
    failed: dict[Any, str] = field(default_factory=dict)


def reencrypt_column(entry: EncryptedColumn, batch_size: int = 500) -> Rotation:
    """Re-encrypt under the current key every value of ``entry`` that is under an older one.

    Walks the table by primary key and commits each batch, so a long rotation holds no long
    transaction and an interrupted one keeps its progress; a re-run picks up what is left.
    Each update only applies if the row still holds the token read, so a secret written
    meanwhile by a running app is never overwritten with the old one.
    """
    pk, column = entry.primary_key, entry.column
    current = f"{VERSION}.{current_key_ring().current_id}."
    result, after = Rotation(), None
    while True:
        query = (
            select(pk, column)
            .where(column.is_not(None), ~column.startswith(current, autoescape=True))
            .order_by(pk)
            .limit(batch_size)
        )
        if after is not None:
            query = query.where(pk > after)
        rows = db.session.execute(query).all()
        if not rows:
            return result
        for row_id, token in rows:
            try:
                fresh = entry.encrypt(row_id, entry.decrypt(row_id, token))
            except DecryptionError as exc:
                result.failed[row_id] = exc.message
                continue
            done = db.session.execute(
                update(column.table)
                .where(pk == row_id, column == token)
                .values({column.name: fresh})
            )
            result.reencrypted += done.rowcount
        db.session.commit()
        after = rows[-1][0]
