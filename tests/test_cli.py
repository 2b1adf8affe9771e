"""The ``gatehouse`` command: through Flask's CLI runner on the test app, and once for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.cli import ScriptInfo
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, update

from idp.actors import system_actor
from idp.audit.models import AuditEvent
from idp.cli import main
from idp.credentials.models import ApiKey
from idp.crypto import token_digest
from idp.db import db, utcnow
from idp.orgs import invitations
from idp.orgs.models import Invitation, InvitationStatus, Membership, Organization
from idp.orgs.roles import Role
from idp.orgs.services import create_org
from tests.builders import auth, make_key, make_member, make_org, workspace

KEY = re.compile(r"^ghk_[A-Za-z0-9_-]{40,}$")
ACCEPT_URL = re.compile(r"^http://gatehouse\.test/invitations/accept\?token=ghi_[A-Za-z0-9_-]+$")


def ok(runner: FlaskCliRunner, *args: str) -> Result:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def fails(runner: FlaskCliRunner, *args: str) -> Result:
    """A refused command: exit 1, the error code on stderr, nothing on stdout."""
    result = runner.invoke(args=list(args))
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    return result


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def only_line(result: Result) -> str:
    [line] = lines(result)
    return line


def org_by_slug(slug: str) -> Organization:
    return db.session.scalar(select(Organization).where(Organization.slug == slug))


# --- org -------------------------------------------------------------------------------


def test_org_create_prints_the_id(app: Flask, runner: FlaskCliRunner) -> None:
    result = ok(runner, "org", "create", "acme", "--name", "Acme Corp")

    org = org_by_slug("acme")
    assert only_line(result) == org.id
    assert (org.name, org.parent_id) == ("Acme Corp", None)
    assert (
        db.session.scalar(select(AuditEvent.actor_label).where(AuditEvent.action == "org.created"))
        == "cli"
    )


def test_org_create_with_a_parent(app: Flask, runner: FlaskCliRunner) -> None:
    parent_id = only_line(ok(runner, "org", "create", "acme", "--name", "Acme"))

    child_id = only_line(ok(runner, "org", "create", "acme-eu", "--name", "EU", "--parent", "acme"))

    assert org_by_slug("acme-eu").id == child_id
    assert org_by_slug("acme-eu").parent_id == parent_id


def test_org_create_refuses_a_taken_slug(app: Flask, runner: FlaskCliRunner) -> None:
    ok(runner, "org", "create", "acme", "--name", "Acme")

    result = fails(runner, "org", "create", "ACME", "--name", "Other")

    assert "slug_taken" in result.stderr
    assert db.session.scalar(select(func.count()).select_from(Organization)) == 1


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["org", "create", "no_underscores", "--name", "X"], "invalid_slug"),
        (["org", "create", "acme", "--name", "  "], "invalid_name"),
        (["org", "create", "acme", "--name", "X", "--parent", "nope"], "org_not_found"),
    ],
)
def test_org_create_refusals_leave_nothing(
    app: Flask, runner: FlaskCliRunner, args: list[str], code: str
) -> None:
    result = fails(runner, *args)

    assert f"error: {code}:" in result.stderr
    assert db.session.scalar(select(func.count()).select_from(Organization)) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_org_list(app: Flask, runner: FlaskCliRunner) -> None:
    acme, globex = make_org("acme", "Acme Corp"), make_org("globex", "Globex")
    deleted = make_org("gone")
    ok(runner, "org", "create", "acme-eu", "--name", "Acme EU", "--parent", "acme")
    org_by_slug("gone").deleted_at = utcnow()
    db.session.commit()

    result = ok(runner, "org", "list")

    assert sorted(lines(result)) == sorted(
        [
            f"acme\t{acme.id}\tAcme Corp",
            f"acme-eu\t{org_by_slug('acme-eu').id}\tAcme EU",
            f"globex\t{globex.id}\tGlobex",
        ]
    )
    assert deleted.id not in result.stdout


def test_org_list_reads_every_page(app: Flask, runner: FlaskCliRunner) -> None:
    """The command pages through the service 200 at a time; nothing is lost at the seams."""
    slugs = {f"org-{i:03d}" for i in range(401)}
    for slug in slugs:
        create_org(system_actor(), workspace(), slug=slug, name=slug)
    db.session.commit()

    listed = [line.split("\t")[0] for line in lines(ok(runner, "org", "list"))]

    assert len(listed) == len(slugs) and set(listed) == slugs


# --- api-key ---------------------------------------------------------------------------


def test_api_key_create_prints_only_a_working_workspace_key(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    make_org("acme")

    result = ok(runner, "api-key", "create", "--name", "deploy")

    key = only_line(result)
    assert KEY.match(key)
    assert key not in result.stderr
    listed = client.get("/api/v1/orgs", headers=auth(key))
    assert listed.status_code == 200 and [o["slug"] for o in listed.json["data"]] == ["acme"]
    created = client.post("/api/v1/orgs", json={"slug": "globex", "name": "G"}, headers=auth(key))
    assert created.status_code == 201, created.json
    stored = db.session.scalar(select(ApiKey).where(ApiKey.name == "deploy"))
    assert (stored.org_id, stored.hint) == (None, key[-4:])
    assert key not in {stored.token_digest, stored.hint}


def test_api_key_create_for_an_org_is_limited_to_it(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    make_org("acme")
    make_org("globex")

    key = only_line(
        ok(runner, "api-key", "create", "--org", "acme", "--name", "app", "--role", "member")
    )

    assert KEY.match(key)
    listed = client.get("/api/v1/orgs", headers=auth(key))
    assert [o["slug"] for o in listed.json["data"]] == ["acme"]
    assert client.get("/api/v1/orgs/acme", headers=auth(key)).status_code == 200
    assert client.get("/api/v1/orgs/globex", headers=auth(key)).status_code == 404
    # A member key holds member permissions only, and no workspace authority.
    assert client.get("/api/v1/orgs/acme/members", headers=auth(key)).status_code == 403
    created = client.post("/api/v1/orgs", json={"slug": "x", "name": "X"}, headers=auth(key))
    assert created.status_code == 404
    stored = db.session.scalar(select(ApiKey).where(ApiKey.name == "app"))
    assert (stored.org_id, stored.role) == (org_by_slug("acme").id, Role.MEMBER)


def test_api_key_create_for_an_org_defaults_to_admin(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    make_org("acme")

    key = only_line(ok(runner, "api-key", "create", "--org", "acme", "--name", "app"))

    assert client.get("/api/v1/orgs/acme/members", headers=auth(key)).status_code == 200
    assert client.delete("/api/v1/orgs/acme", headers=auth(key)).status_code == 403


def test_api_key_create_refusals(app: Flask, runner: FlaskCliRunner) -> None:
    assert "org_not_found" in fails(runner, "api-key", "create", "--org", "x", "--name", "n").stderr
    assert "invalid_name" in fails(runner, "api-key", "create", "--name", " ").stderr
    bad_role = runner.invoke(args=["api-key", "create", "--name", "n", "--role", "root"])
    assert bad_role.exit_code == 2 and "root" in bad_role.stderr  # click's usage error
    assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 0


# --- invite and member -----------------------------------------------------------------


def test_invite_create_prints_a_url_that_makes_an_admin(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    make_org("acme")

    url = only_line(ok(runner, "invite", "create", "acme", "ada@example.com", "--role", "admin"))

    assert ACCEPT_URL.match(url), url
    token = parse_qs(urlsplit(url).query)["token"][0]
    accepted = client.post("/api/v1/invitations/accept", json={"token": token})
    assert accepted.status_code == 200, accepted.json
    membership = db.session.scalar(select(Membership))
    assert (membership.user.email, membership.role, membership.source.value) == (
        "ada@example.com",
        Role.ADMIN,
        "invite",
    )


def test_invite_create_refusals(app: Flask, runner: FlaskCliRunner) -> None:
    org = make_org("acme")
    make_member(org, "bob@example.com")

    assert "org_not_found" in fails(runner, "invite", "create", "nope", "a@example.com").stderr
    assert "invalid_email" in fails(runner, "invite", "create", "acme", "not-an-email").stderr
    assert "already_member" in fails(runner, "invite", "create", "acme", "bob@example.com").stderr
    ok(runner, "invite", "create", "acme", "cy@example.com")
    again = fails(runner, "invite", "create", "acme", "cy@example.com")
    assert "invitation_pending" in again.stderr
    assert db.session.scalar(select(func.count()).select_from(Invitation)) == 1


def test_member_list(app: Flask, runner: FlaskCliRunner) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    owner = make_member(acme, "ada@example.com", Role.OWNER)
    member = make_member(acme, "bob@example.com")
    make_member(globex, "eve@example.com")

    result = ok(runner, "member", "list", "acme")

    assert lines(result) == [
        f"{owner.user_id}\tada@example.com\towner\tactive",
        f"{member.user_id}\tbob@example.com\tmember\tactive",
    ]
    assert "org_not_found" in fails(runner, "member", "list", "nope").stderr


def test_invite_expire_marks_only_expired_invitations(app: Flask, runner: FlaskCliRunner) -> None:
    org = make_org("acme")
    stale, _ = invitations.invite_by_email(
        system_actor(), org, email="ada@example.com", ttl=timedelta(minutes=5)
    )
    fresh, _ = invitations.invite_by_email(system_actor(), org, email="bob@example.com")
    db.session.commit()
    stale_id, fresh_id = stale.id, fresh.id
    # Time moves on: the short invitation's expiry is now in the past.
    db.session.execute(
        update(Invitation)
        .where(Invitation.id == stale_id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()

    assert only_line(ok(runner, "invite", "expire")) == "1"
    assert only_line(ok(runner, "invite", "expire")) == "0"

    statuses = dict(db.session.execute(select(Invitation.id, Invitation.status)).all())
    assert statuses == {stale_id: InvitationStatus.EXPIRED, fresh_id: InvitationStatus.PENDING}
    expired = db.session.scalars(
        select(AuditEvent.target_id).where(AuditEvent.action == "invitation.expired")
    ).all()
    assert expired == [stale_id]


# --- bootstrap -------------------------------------------------------------------------


def test_bootstrap_prints_a_key_once(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    first = ok(runner, "bootstrap")
    second = ok(runner, "bootstrap")

    key = only_line(first)
    assert KEY.match(key)
    assert "shown once" in first.stderr
    assert client.get("/api/v1/orgs", headers=auth(key)).status_code == 200
    assert second.stdout == ""
    assert "exists" in second.stderr
    assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_bootstrap_ignores_org_keys_and_revoked_keys(app: Flask, runner: FlaskCliRunner) -> None:
    """Only a live workspace key counts as "already bootstrapped"."""
    make_key(make_org("acme"), Role.OWNER)
    revoked = make_key()
    db.session.execute(
        update(ApiKey)
        .where(ApiKey.token_digest == token_digest(revoked))
        .values(revoked_at=utcnow())
    )
    db.session.commit()

    assert KEY.match(only_line(ok(runner, "bootstrap")))


# --- the real console script -----------------------------------------------------------


def gatehouse_script() -> str:
    """The ``gatehouse`` console script installed beside this interpreter (``idp.cli:main``)."""
    script = shutil.which("gatehouse", path=str(Path(sys.executable).parent))
    assert script, "no gatehouse console script: install the project (pip install -e .)"
    return script


def test_console_script_from_an_empty_instance(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env: dict[str, Any] = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEHOUSE_", "FLASK_"))
    }
    env |= {
        "GATEHOUSE_ENV": "development",
        "GATEHOUSE_INSTANCE_PATH": str(instance),
        "GATEHOUSE_DATABASE_URL": f"sqlite:///{tmp_path / 'gatehouse.db'}",
    }

    def gatehouse(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603 - fixed arguments, our own console script
            [gatehouse_script(), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    gatehouse("db", "upgrade")
    key = gatehouse("bootstrap").stdout.strip()
    org_id = gatehouse("org", "create", "acme", "--name", "Acme").stdout.strip()
    listed = gatehouse("org", "list").stdout
    again = gatehouse("bootstrap").stdout

    assert KEY.match(key), key
    assert org_id.startswith("org_")
    assert listed.splitlines() == [f"acme\t{org_id}\tAcme"]
    assert again == ""
    # Development generated its secrets into the instance folder on first use.
    assert (instance / "secret_key").exists() and (instance / "encryption_key").exists()


# --- the operator's commands of the admin API (member, org delete, api-key, client) -------


def test_member_add_adds_a_new_person_through_the_admin_rules(
    app: Flask, runner: FlaskCliRunner
) -> None:
    make_org("acme")

    user_id, email, role, status = only_line(
        ok(runner, "member", "add", "acme", "Ada@Example.com", "--role", "admin", "--name", "Ada")
    ).split("\t")

    membership = db.session.get(Membership, _membership_id("acme", user_id))
    assert (email.lower(), role, status) == ("ada@example.com", "admin", "active")
    assert (membership.role, membership.name, membership.source.value) == ("admin", "Ada", "admin")
    assert (
        db.session.scalar(select(AuditEvent.actor_label).where(AuditEvent.action == "member.added"))
        == "cli"
    )


def _membership_id(slug: str, user_id: str) -> str:
    org = org_by_slug(slug)
    return db.session.scalar(
        select(Membership.id).where(Membership.org_id == org.id, Membership.user_id == user_id)
    )


def test_member_add_refusals(app: Flask, runner: FlaskCliRunner) -> None:
    org = make_org("acme")
    make_member(org, "ada@example.com")

    assert "already_member" in fails(runner, "member", "add", "acme", "ada@example.com").stderr
    assert "org_not_found" in fails(runner, "member", "add", "nope", "bob@example.com").stderr
    bad_role = fails(runner, "member", "add", "acme", "bob@example.com", "--role", "czar")
    assert "czar" in bad_role.stderr and "Traceback" not in bad_role.stderr
    # No SLUG and no profile to take it from: a usage error, nothing added.
    missing = runner.invoke(args=["member", "add", "bob@example.com"])
    assert missing.exit_code == 2 and "SLUG" in missing.stderr
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 1


def test_member_suspend_and_reactivate(app: Flask, runner: FlaskCliRunner) -> None:
    org = make_org("acme")
    make_member(org, "owner@example.com", Role.OWNER)
    ada = make_member(org, "ada@example.com")

    suspended = only_line(ok(runner, "member", "suspend", "acme", ada.user_id))
    assert suspended == f"{ada.user_id}\tada@example.com\tmember\tsuspended"
    db.session.expire_all()
    assert db.session.get(Membership, ada.id).status.value == "suspended"

    again = only_line(ok(runner, "member", "reactivate", "acme", ada.user_id))
    assert again.endswith("\tactive")


def test_member_suspend_and_remove_keep_the_last_owner(app: Flask, runner: FlaskCliRunner) -> None:
    org = make_org("acme")
    owner = make_member(org, "owner@example.com", Role.OWNER)

    for verb in ("suspend", "remove"):
        refused = fails(runner, "member", verb, "acme", owner.user_id)
        assert refused.stderr.startswith("error: last_owner: "), refused.stderr
    assert "member_not_found" in fails(runner, "member", "remove", "acme", "usr_nope").stderr
    db.session.expire_all()
    assert db.session.get(Membership, owner.id).status.value == "active"


def test_member_remove(app: Flask, runner: FlaskCliRunner) -> None:
    org = make_org("acme")
    make_member(org, "owner@example.com", Role.OWNER)
    ada = make_member(org, "ada@example.com")

    assert ok(runner, "member", "remove", "acme", ada.user_id).stdout == ""

    assert [line.split("\t")[1] for line in lines(ok(runner, "member", "list", "acme"))] == [
        "owner@example.com"
    ]


def test_org_delete_asks_first_and_keeps_parents_of_live_orgs(
    app: Flask, runner: FlaskCliRunner
) -> None:
    parent = make_org("acme")
    make_org("acme-eu", parent_slug="acme")

    declined = runner.invoke(args=["org", "delete", "acme-eu"], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.stderr
    refused = fails(runner, "org", "delete", "acme", "--yes")
    assert refused.stderr.startswith("error: org_has_children: ")

    ok(runner, "org", "delete", "acme-eu", "--yes")
    ok(runner, "org", "delete", "acme", "--yes")

    assert lines(ok(runner, "org", "list")) == []
    db.session.expire_all()
    assert db.session.get(Organization, parent.id).deleted_at is not None
    assert "org_not_found" in fails(runner, "org", "delete", "acme", "--yes").stderr


def test_api_key_list_and_revoke(app: Flask, client: FlaskClient, runner: FlaskCliRunner) -> None:
    org = make_org("acme")
    keep = make_key()
    spare = make_key()
    org_key = make_key(org, Role.MEMBER)
    ids = {row.hint: row.id for row in db.session.scalars(select(ApiKey))}

    workspace_keys = [line.split("\t") for line in lines(ok(runner, "api-key", "list"))]
    org_keys = [line.split("\t") for line in lines(ok(runner, "api-key", "list", "--org", "acme"))]

    assert sorted(k[4] for k in workspace_keys) == sorted(f"...{t[-4:]}" for t in (keep, spare))
    assert [(k[2], k[3], k[4], k[6]) for k in org_keys] == [
        (org.id, "member", f"...{org_key[-4:]}", "active")
    ]
    assert not any(token in runner.invoke(args=["api-key", "list"]).stdout for token in (keep,))

    ok(runner, "api-key", "revoke", ids[spare[-4:]])
    ok(runner, "api-key", "revoke", ids[org_key[-4:]], "--org", "acme")

    assert client.get("/api/v1/orgs", headers=auth(spare)).status_code == 401
    assert client.get("/api/v1/orgs/acme", headers=auth(org_key)).status_code == 401
    assert client.get("/api/v1/orgs", headers=auth(keep)).status_code == 200
    last = fails(runner, "api-key", "revoke", ids[keep[-4:]])
    assert last.stderr.startswith("error: last_workspace_key: ")
    # An org key is revoked through its org only.
    other = make_org("globex")
    assert (
        "not_found" in fails(runner, "api-key", "revoke", ids[keep[-4:]], "--org", "globex").stderr
    )
    assert other.id


def test_client_list_and_delete(app: Flask, runner: FlaskCliRunner) -> None:
    created = json.loads(
        only_line(
            ok(
                runner,
                "client",
                "create",
                "--name",
                "Tunnels",
                "--redirect-uri",
                "https://t.example/cb",
            )
        )
    )

    [listed] = [line.split("\t") for line in lines(ok(runner, "client", "list"))]
    assert listed == [created["client_id"], "Tunnels", "confidential", "https://t.example/cb"]
    assert created["client_secret"] not in ok(runner, "client", "list", "--json").stdout

    ok(runner, "client", "delete", created["client_id"])

    assert lines(ok(runner, "client", "list")) == []
    assert "not_found" in fails(runner, "client", "delete", created["client_id"]).stderr


def test_json_output_is_the_admin_apis_representation(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, root_key: str
) -> None:
    org = make_org("acme")
    make_member(org, "ada@example.com", Role.OWNER)
    ok(runner, "scim-token", "create", "acme")

    for args, path in [
        (("org", "list"), "/api/v1/orgs"),
        (("member", "list", "acme"), "/api/v1/orgs/acme/members"),
        (("api-key", "list"), "/api/v1/api-keys"),
        (("scim-token", "list", "acme"), "/api/v1/orgs/acme/scim-tokens"),
    ]:
        printed = json.loads(ok(runner, *args, "--json").stdout)
        api = client.get(path, headers=auth(root_key)).get_json()["data"]
        # last_used_at moves as the API reads with its key; the rest is the same document.
        strip = lambda rows: [{k: v for k, v in r.items() if k != "last_used_at"} for r in rows]  # noqa: E731
        assert strip(printed) == strip(api), args

    made = json.loads(ok(runner, "org", "create", "globex", "--name", "Globex", "--json").stdout)
    assert made == client.get("/api/v1/orgs/globex", headers=auth(root_key)).get_json()


# --- the script itself: version, help ---------------------------------------------------


def test_version_is_gatehouses() -> None:
    result = CliRunner().invoke(main, ["--version"], env={"FLASK_RUN_FROM_CLI": None})

    assert result.exit_code == 0
    assert result.stdout == f"gatehouse, version {version('gatehouse')}\n"


def test_help_hides_flasks_development_commands_and_run_is_refused(app: Flask) -> None:
    runner = CliRunner(env={"FLASK_RUN_FROM_CLI": None})  # FlaskGroup sets it; put back after
    listed = runner.invoke(main, ["--help"], obj=ScriptInfo(create_app=lambda: app))
    commands = {
        line.split()[0]
        for line in listed.stdout.split("Commands:", 1)[1].splitlines()
        if line.startswith("  ") and line.split()
    }

    assert {"org", "member", "api-key", "client", "bootstrap"} <= commands
    assert not commands & {"run", "shell", "routes"}
    refused = runner.invoke(main, ["run"])
    assert refused.exit_code == 2 and "gunicorn" in refused.stderr
    assert runner.invoke(main, ["routes", "--help"]).exit_code == 0  # hidden, still there
