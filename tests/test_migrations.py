"""The migrations build the schema the models describe, on the database under test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import check, downgrade, upgrade
from sqlalchemy import text

from idp import create_app
from idp.db import db, declare_nothing, declare_workspace_wide
from idp.orgs.models import Organization
from idp.people.services import list_duplicates
from idp.policies.chain import org_levels, policy_of
from tests.conftest import _postgres_database, _settings


def test_models_and_migrations_agree(app: Flask) -> None:
    check()  # exits non-zero (failing this test) if autogenerate finds any difference


def test_saml_toolkit_imports() -> None:
    """python3-saml loads: lxml and xmlsec link the same libxml2."""
    import lxml.etree
    import xmlsec
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    assert xmlsec.get_libxml_version() == lxml.etree.LIBXML_VERSION
    assert OneLogin_Saml2_Auth is not None


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind under test, apart from the session's migrated one; the
    test reads it as the operator (workspace-wide under row-level security)."""
    configured = os.environ.get("GATEHOUSE_DATABASE_URL", "")
    declare_workspace_wide()
    try:
        if configured.startswith("postgresql"):
            yield from _postgres_database(configured)
        else:
            yield f"sqlite:///{tmp_path / 'fresh.db'}"
    finally:
        declare_nothing()


def test_0006_fills_every_existing_orgs_effective_policy(
    fresh_database: str, tmp_path: Path
) -> None:
    app = create_app(_settings(fresh_database, str(tmp_path / "instance")))
    with app.app_context():
        upgrade(revision="0005")
        now = datetime.now(UTC)
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workspaces (id, slug, name, baseline_policy, created_at,"
                    " updated_at) VALUES ('ws_1', 'default', 'Default', '{}', :now, :now)"
                ),
                {"now": now},
            )
            for org_id, cap in (("org_1", 500), ("org_2", 25)):
                conn.execute(
                    text(
                        "INSERT INTO organizations (id, workspace_id, slug, name, member_cap,"
                        " policy_overrides, created_at, updated_at) VALUES (:id, 'ws_1', :id,"
                        " :id, :cap, '{}', :now, :now)"
                    ),
                    {"id": org_id, "cap": cap, "now": now},
                )
        upgrade()
        for org_id in ("org_1", "org_2"):
            org = db.session.get(Organization, org_id)
            # What the migration wrote is what the code computes from the chain.
            assert org.effective_policy == policy_of(org_levels(org)).to_json()
        assert db.session.get(Organization, "org_2").effective_policy["member_cap"] == 25
        db.session.remove()
        db.engine.dispose()


def test_0008_keys_memberships_by_address_leaving_earlier_duplicates_to_merge(
    fresh_database: str, tmp_path: Path
) -> None:
    app = create_app(_settings(fresh_database, str(tmp_path / "instance")))
    with app.app_context():
        upgrade(revision="0007")
        now = datetime.now(UTC)
        later = now + timedelta(seconds=1)
        with db.engine.begin() as conn:
            run = conn.execute
            run(
                text(
                    "INSERT INTO workspaces (id, slug, name, baseline_policy, created_at,"
                    " updated_at) VALUES ('ws_1', 'default', 'Default', '{}', :now, :now)"
                ),
                {"now": now},
            )
            run(
                text(
                    "INSERT INTO organizations (id, workspace_id, slug, name, member_cap,"
                    " policy_overrides, effective_policy, created_at, updated_at) VALUES"
                    " ('org_1', 'ws_1', 'acme', 'Acme', 500, '{}', '{}', :now, :now)"
                ),
                {"now": now},
            )
            # An earlier release's split person: one linked user, one unlinked, same address.
            for user_id, normalized, name in (
                ("usr_1", "ann@acme.example", "Ann"),
                ("usr_2", None, "Ann (SSO)"),
            ):
                run(
                    text(
                        "INSERT INTO users (id, workspace_id, email, email_normalized, name,"
                        " email_verified, status, created_at, updated_at) VALUES (:id, 'ws_1',"
                        " 'Ann@acme.example', :normalized, :name, false, 'active', :now, :now)"
                    ),
                    {"id": user_id, "normalized": normalized, "name": name, "now": now},
                )
            for membership_id, user_id, role, at in (
                ("mem_1", "usr_1", "owner", now),
                ("mem_2", "usr_2", "member", later),
            ):
                run(
                    text(
                        "INSERT INTO memberships (id, org_id, user_id, role, assigned_role,"
                        " source, status, created_at, updated_at) VALUES (:id, 'org_1', :user,"
                        " :role, :role, 'invite', 'active', :at, :at)"
                    ),
                    {"id": membership_id, "user": user_id, "role": role, "at": at},
                )
        upgrade()
        rows = {
            row.id: row
            for row in db.session.execute(
                text("SELECT id, email, email_key, name FROM memberships ORDER BY id")
            )
        }
        # What the org showed is kept; the oldest holds the address, the other awaits a merge.
        assert (rows["mem_1"].email_key, rows["mem_1"].name) == ("ann@acme.example", "Ann")
        assert (rows["mem_2"].email_key, rows["mem_2"].name) == (None, "Ann (SSO)")
        assert rows["mem_2"].email == "Ann@acme.example"

        [duplicate] = list_duplicates("ws_1")
        assert [m["user_id"] for m in duplicate["members"]] == ["usr_1", "usr_2"]
        db.session.remove()
        db.engine.dispose()


def test_0014_row_level_security_goes_both_ways(fresh_database: str, tmp_path: Path) -> None:
    """PostgreSQL: the policies come with 0014 and go with its downgrade; SQLite: nothing."""
    app = create_app(_settings(fresh_database, str(tmp_path / "instance")))
    with app.app_context():

        def policies() -> int:
            if db.engine.dialect.name != "postgresql":
                return 0
            count = db.session.scalar(
                text("SELECT count(*) FROM pg_policies WHERE policyname LIKE '%_declared_org'")
            )
            db.session.commit()
            return count

        upgrade()
        assert policies() == (22 if db.engine.dialect.name == "postgresql" else 0)
        downgrade(revision="0012")
        assert policies() == 0
        upgrade()
        check()
        db.session.remove()
        db.engine.dispose()
