"""Secrets encrypted at rest: the cipher, the key ring, and key rotation through the CLI."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Column, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from idp import crypto
from idp.config import ConfigError, Settings, load_settings
from idp.crypto import (
    ENCRYPTED_COLUMNS,
    DecryptionError,
    EncryptedColumn,
    decrypt_secret,
    encrypt_secret,
    key_id,
    needs_reencryption,
    reencrypt_column,
    register_encrypted_column,
)
from idp.db import db

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
TOKEN = re.compile(r"^v1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+$")
CONTEXT = "connections.client_secret:con_1"
SECRETS = {f"row_{i:02d}": f"client-secret-{i}-{'x' * i}" for i in range(8)}


def kid(key: str) -> str:
    return key_id(base64.urlsafe_b64decode(key))


def use_keys(app: Flask, *keys: str) -> None:
    """Restart-free stand-in for changing GATEHOUSE_ENCRYPTION_KEY."""
    settings = app.extensions["gatehouse.settings"]
    app.extensions["gatehouse.settings"] = replace(settings, encryption_key=",".join(keys))


def unpack(token: str) -> tuple[str, str, bytes]:
    version, key, body = token.split(".")
    return version, key, base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def pack(version: str, key: str, raw: bytes) -> str:
    return f"{version}.{key}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


@pytest.fixture
def keyring() -> Iterator[Flask]:
    """A bare app holding only settings: the cipher needs no database."""
    app = Flask(__name__)
    app.extensions["gatehouse.settings"] = Settings(encryption_key=KEY_A)
    with app.app_context():
        yield app


# --- the cipher --------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", ["s3cret", "", "pâté 🔑", b"\x00\xff binary"])
def test_roundtrip(keyring: Flask, plaintext: str | bytes) -> None:
    token = encrypt_secret(plaintext, CONTEXT)

    assert TOKEN.match(token), token
    assert unpack(token)[1] == kid(KEY_A)
    expected = plaintext.encode() if isinstance(plaintext, str) else plaintext
    assert decrypt_secret(token, CONTEXT) == expected
    if expected:
        assert base64.urlsafe_b64encode(expected).decode().rstrip("=") not in token


def test_key_id_is_a_keyed_fingerprint_not_a_hash() -> None:
    raw = base64.urlsafe_b64decode(KEY_A)

    assert kid(KEY_A) == kid(KEY_A) != kid(KEY_B)
    assert kid(KEY_A) not in hashlib.sha256(raw).hexdigest()
    assert kid(KEY_A) not in KEY_A


def test_tampering_with_any_byte_fails(keyring: Flask) -> None:
    """Every byte of nonce (0-11), ciphertext and tag (last 16) is covered by the tag."""
    version, key, raw = unpack(encrypt_secret("s3cret", CONTEXT))

    for position in range(len(raw)):
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        with pytest.raises(DecryptionError) as caught:
            decrypt_secret(pack(version, key, bytes(flipped)), CONTEXT)
        assert caught.value.code == "decryption_failed"
        assert "s3cret" not in caught.value.message


def test_truncated_or_extended_ciphertext_fails(keyring: Flask) -> None:
    version, key, raw = unpack(encrypt_secret("s3cret", CONTEXT))

    for changed in (raw[:-1], raw + b"\x00", raw[:12] + raw[13:]):
        with pytest.raises(DecryptionError):
            decrypt_secret(pack(version, key, changed), CONTEXT)


def test_another_context_fails(keyring: Flask) -> None:
    """A ciphertext copied to another row or column does not decrypt there."""
    token = encrypt_secret("s3cret", CONTEXT)

    for other in ("connections.client_secret:con_2", "saml_sps.private_key:con_1", "x"):
        with pytest.raises(DecryptionError, match="moved from the row or column"):
            decrypt_secret(token, other)


def test_an_empty_context_is_refused(keyring: Flask) -> None:
    with pytest.raises(ValueError, match="context"):
        encrypt_secret("s3cret", "")


def test_relabelling_the_key_id_fails(keyring: Flask) -> None:
    """The header is authenticated: pointing a token at another key of the ring fails."""
    token = encrypt_secret("s3cret", CONTEXT)
    use_keys(keyring, KEY_B, KEY_A)
    _, _, raw = unpack(token)

    with pytest.raises(DecryptionError, match="could not be decrypted"):
        decrypt_secret(pack("v1", kid(KEY_B), raw), CONTEXT)


def test_unknown_key_id_is_named(keyring: Flask) -> None:
    token = encrypt_secret("s3cret", CONTEXT)
    use_keys(keyring, KEY_B)

    with pytest.raises(DecryptionError) as caught:
        decrypt_secret(token, CONTEXT)

    assert caught.value.code == "unknown_encryption_key"
    assert kid(KEY_A) in caught.value.message
    assert KEY_A not in caught.value.message and KEY_B not in caught.value.message


def _malformed() -> list[Any]:
    key, body = "0123456789abcdef", "A" * 40
    return [
        "",
        "v1",
        "plaintext secret",
        f"v1.{key}",
        f"v1.{key}.{body}.extra",
        f"v2.{key}.{body}",
        f"V1.{key}.{body}",
        f"v1.{key[:-1]}.{body}",
        f"v1.{key.upper()}.{body}",
        f"v1..{body}",
        f"v1.{key}.",
        f"v1.{key}.{body}!",
        f"v1.{key}.{body}=",
        f"v1.{key}.{body}\n",
        f"v1.{key}\n.{body}",
        f"v1.{key}.{body[:-1]}é",
        f"v1.{key}.A",  # not a base64 length
        f"v1.{key}.AAAA",  # shorter than nonce and tag
        f"v1.{key}.{'A' * 36}",  # 27 bytes: one short of nonce and tag
        None,
        b"v1.0123456789abcdef.AAAA",
    ]


@pytest.mark.parametrize("token", _malformed())
def test_malformed_tokens_raise_decryption_error_only(keyring: Flask, token: Any) -> None:
    with pytest.raises(DecryptionError):
        decrypt_secret(token, CONTEXT)


@pytest.mark.parametrize("token", ["", "v2.0123456789abcdef.AAAA", "v1.x.AAAA", None])
def test_needs_reencryption_refuses_malformed_tokens(keyring: Flask, token: Any) -> None:
    with pytest.raises(DecryptionError):
        needs_reencryption(token)


def test_nonces_are_unique(keyring: Flask) -> None:
    tokens = [encrypt_secret("same", CONTEXT) for _ in range(5000)]

    assert len(set(tokens)) == len(tokens)
    assert len({unpack(t)[2][:12] for t in tokens}) == len(tokens)


def test_the_first_key_encrypts_and_all_decrypt(keyring: Flask) -> None:
    old = encrypt_secret("old", CONTEXT)
    use_keys(keyring, KEY_B, KEY_A)
    new = encrypt_secret("new", CONTEXT)

    assert (unpack(old)[1], unpack(new)[1]) == (kid(KEY_A), kid(KEY_B))
    assert (decrypt_secret(old, CONTEXT), decrypt_secret(new, CONTEXT)) == (b"old", b"new")
    assert (needs_reencryption(old), needs_reencryption(new)) == (True, False)


# --- the key ring in configuration -------------------------------------------------------


def settings_with(tmp_path: Path, value: str) -> Settings:
    return load_settings(
        {"ENV": "development", "ENCRYPTION_KEY": value, "INSTANCE_PATH": str(tmp_path)},
        environ={},
    )


def test_config_accepts_a_key_ring(tmp_path: Path) -> None:
    assert settings_with(tmp_path, f"{KEY_B},{KEY_A}").encryption_key == f"{KEY_B},{KEY_A}"
    assert settings_with(tmp_path, f"{KEY_B}, {KEY_A}")  # a space after a comma is fine


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not-a-key", r"^GATEHOUSE_ENCRYPTION_KEY must be 32 random bytes"),
        (KEY_B[:-4], r"^GATEHOUSE_ENCRYPTION_KEY must be 32 random bytes"),
        (f"{KEY_A},{KEY_B[:-4]}", r"^GATEHOUSE_ENCRYPTION_KEY: key 2 of 2 must be 32 random"),
        (f"{KEY_A},{KEY_B}x!", r"^GATEHOUSE_ENCRYPTION_KEY: key 2 of 2 must be 32 random"),
        (f"{KEY_A},,{KEY_B}", r"^GATEHOUSE_ENCRYPTION_KEY: key 2 of 3 is empty"),
        (f"{KEY_A},", r"^GATEHOUSE_ENCRYPTION_KEY: key 2 of 2 is empty"),
        (f" ,{KEY_A}", r"^GATEHOUSE_ENCRYPTION_KEY: key 1 of 2 is empty"),
        (f"{KEY_A},{KEY_B},{KEY_A}", r"^GATEHOUSE_ENCRYPTION_KEY: key 3 of 3 repeats key 1$"),
    ],
)
def test_config_refuses_a_bad_key_ring_without_echoing_it(
    tmp_path: Path, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        settings_with(tmp_path, value)

    text = str(caught.value)
    for secret in (KEY_A, KEY_B, KEY_B[:-4], KEY_A[:16], KEY_B[:16], "not-a-key"):
        assert secret not in text


# --- the registry ------------------------------------------------------------------------


class _Base(DeclarativeBase):
    metadata = MetaData()


class _Vault(_Base):
    __tablename__ = "test_vault"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret: Mapped[str | None] = mapped_column(Text)


def test_register_an_orm_attribute(keyring: Flask) -> None:
    entry = register_encrypted_column(_Vault.secret)
    try:
        assert ENCRYPTED_COLUMNS["test_vault.secret"] is entry
        assert (entry.name, entry.primary_key.name) == ("test_vault.secret", "id")
        assert entry.context("v_1") == "test_vault.secret:v_1"
        token = entry.encrypt("v_1", "s3cret")
        assert decrypt_secret(token, "test_vault.secret:v_1") == b"s3cret"
        with pytest.raises(DecryptionError):
            entry.decrypt("v_2", token)
        with pytest.raises(ValueError, match="already registered"):
            register_encrypted_column(_Vault.__table__.c.secret)
    finally:
        del ENCRYPTED_COLUMNS[entry.name]


def test_register_refuses_a_composite_primary_key() -> None:
    table = Table(
        "test_pairs",
        MetaData(),
        Column("a", String(4), primary_key=True),
        Column("b", String(4), primary_key=True),
        Column("secret", Text),
    )

    with pytest.raises(ValueError, match="single-column primary key"):
        register_encrypted_column(table.c.secret)
    assert "test_pairs.secret" not in ENCRYPTED_COLUMNS


# --- rotation through the CLI, on the test database --------------------------------------


@pytest.fixture
def vault(app: Flask) -> Iterator[EncryptedColumn]:
    """A throwaway table with a registered encrypted column, outside the app's metadata."""
    table = Table(
        "test_encrypted_secrets",
        MetaData(),
        Column("id", String(40), primary_key=True),
        Column("secret", Text),
    )
    table.create(db.engine)
    entry = register_encrypted_column(table.c.secret)
    try:
        yield entry
    finally:
        del ENCRYPTED_COLUMNS[entry.name]
        # End this session's transaction first: PostgreSQL's DROP waits for its locks.
        db.session.remove()
        table.drop(db.engine)


def store(entry: EncryptedColumn, secrets: dict[str, str | None]) -> None:
    """Write each row's secret encrypted under the current key (None stays NULL)."""
    table = entry.column.table
    db.session.execute(
        insert(table),
        [
            {"id": row_id, "secret": None if value is None else entry.encrypt(row_id, value)}
            for row_id, value in secrets.items()
        ],
    )
    db.session.commit()


def stored(entry: EncryptedColumn) -> dict[str, str | None]:
    pk, column = entry.primary_key, entry.column
    rows = db.session.execute(select(pk, column).order_by(pk)).all()
    db.session.commit()
    return dict(rows)


def rotate(runner: FlaskCliRunner, *args: str, exit_code: int = 0) -> Result:
    result = runner.invoke(args=["keys", "rotate-encryption", *args])
    assert result.exit_code == exit_code, (result.stdout, result.stderr, result.exception)
    for text in (result.stdout, result.stderr):
        for secret in (KEY_A, KEY_B, *SECRETS.values()):
            assert secret not in text
    return result


def count_line(result: Result, entry: EncryptedColumn) -> str:
    [line] = [line for line in result.stdout.splitlines() if line.startswith(entry.name + "\t")]
    return line


def test_rotation_moves_every_row_to_the_new_key(
    app: Flask, runner: FlaskCliRunner, vault: EncryptedColumn
) -> None:
    use_keys(app, KEY_A)
    store(vault, {**SECRETS, "row_null": None})
    before = stored(vault)

    use_keys(app, KEY_B, KEY_A)
    first = rotate(runner, "--batch-size", "3")
    again = rotate(runner)

    assert count_line(first, vault) == f"{vault.name}\t{len(SECRETS)}"
    assert count_line(again, vault) == f"{vault.name}\t0"
    assert kid(KEY_B) in first.stderr
    after = stored(vault)
    assert after["row_null"] is None
    for row_id, plaintext in SECRETS.items():
        assert unpack(after[row_id])[1] == kid(KEY_B)
        assert after[row_id] != before[row_id]
        assert vault.decrypt(row_id, after[row_id]) == plaintext.encode()

    use_keys(app, KEY_B)  # the old key is dropped: everything still decrypts
    assert {r: vault.decrypt(r, after[r]).decode() for r in SECRETS} == SECRETS
    use_keys(app, KEY_A)  # and the old key alone no longer can
    for row_id in SECRETS:
        with pytest.raises(DecryptionError, match=kid(KEY_B)):
            vault.decrypt(row_id, after[row_id])


def test_an_interrupted_rotation_finishes_on_a_rerun(
    app: Flask, runner: FlaskCliRunner, vault: EncryptedColumn, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(app, KEY_A)
    store(vault, SECRETS)
    use_keys(app, KEY_B, KEY_A)
    calls = []

    class Interrupted(Exception):
        pass

    def crash_on_the_fourth(plaintext: bytes | str, context: str) -> str:
        calls.append(context)
        if len(calls) == 4:
            raise Interrupted
        return encrypt_secret(plaintext, context)

    monkeypatch.setattr(crypto, "encrypt_secret", crash_on_the_fourth)
    with pytest.raises(Interrupted):
        reencrypt_column(vault, batch_size=3)
    db.session.rollback()
    monkeypatch.undo()

    # The first batch of three was committed before the crash; the rest is still under A.
    assert sum(needs_reencryption(t) for t in stored(vault).values()) == len(SECRETS) - 3
    assert count_line(rotate(runner, "--batch-size", "3"), vault) == f"{vault.name}\t5"
    assert not any(needs_reencryption(t) for t in stored(vault).values())


def test_rotation_reports_rows_it_cannot_decrypt_and_does_the_rest(
    app: Flask, runner: FlaskCliRunner, vault: EncryptedColumn
) -> None:
    use_keys(app, KEY_A)
    store(vault, SECRETS)
    table, rows = vault.column.table, stored(vault)
    # row_01 holds row_00's ciphertext (a copy between rows); row_02 holds a damaged one.
    _, key, raw = unpack(rows["row_02"])
    db.session.execute(update(table).where(table.c.id == "row_01").values(secret=rows["row_00"]))
    db.session.execute(
        update(table)
        .where(table.c.id == "row_02")
        .values(secret=pack("v1", key, raw[:-1] + bytes([raw[-1] ^ 1])))
    )
    db.session.commit()

    use_keys(app, KEY_B, KEY_A)
    result = rotate(runner, exit_code=1)

    assert count_line(result, vault) == f"{vault.name}\t{len(SECRETS) - 2}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert f"{vault.name} of row row_01" in errors[0] and "row_02" in errors[1]
    after = stored(vault)
    assert [r for r, t in after.items() if needs_reencryption(t)] == ["row_01", "row_02"]


def test_rotation_with_the_old_key_missing_changes_nothing(
    app: Flask, runner: FlaskCliRunner, vault: EncryptedColumn
) -> None:
    use_keys(app, KEY_A)
    store(vault, SECRETS)
    before = stored(vault)

    use_keys(app, KEY_B)  # the old key was dropped too early
    result = rotate(runner, exit_code=1)

    assert count_line(result, vault) == f"{vault.name}\t0"
    assert f"key id {kid(KEY_A)}" in result.stderr
    assert stored(vault) == before
