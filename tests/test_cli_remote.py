"""``gatehouse --profile NAME ...``: the operator's commands over a live admin API.

Gatehouse serves on a loopback port (werkzeug, threaded); the command reads a profile from a
temporary ``$XDG_CONFIG_HOME/gatehouse/profiles.toml`` and its API key from an environment
variable (or the OS keyring), as an operator's laptop would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from idp.audit.models import AuditEvent
from idp.cli import main
from idp.credentials import setup_links
from idp.credentials.models import ApiKey
from idp.db import db
from idp.oauth.services import create_client
from idp.orgs.models import Membership, MembershipStatus, Organization
from idp.orgs.roles import Role
from tests.builders import make_key, make_member, make_org, workspace
from tests.proxies import echo_upstream, free_port, serve_app
from tests.test_cli import ACCEPT_URL, gatehouse_script

KEY_ENV = "GATEHOUSE_TEST_ACME_KEY"
# FlaskGroup sets this for its process; the runner puts it back as it was after each command.
PROCESS_ENV = {"FLASK_RUN_FROM_CLI": None}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """Gatehouse on a loopback port; yields its base URL."""
    with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


def write_profiles(config_home: Path, text: str, mode: int = 0o644) -> Path:
    path = config_home / "gatehouse" / "profiles.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def acme(app: Flask, server: str, config_home: Path) -> dict[str, Any]:
    """The org acme with an owner; a profile ``acme`` of the live server, its org acme and a
    workspace key in an environment variable."""
    org = make_org("acme")
    owner = make_member(org, "owner@example.com", Role.OWNER)
    write_profiles(
        config_home,
        f'[acme]\nurl = "{server}"\norg = "acme"\napi_key_env = "{KEY_ENV}"\n',
    )
    return {"org": org, "owner": owner, "key": make_key()}


def remote(
    config_home: Path, key: str | None, *args: str, profile: str = "acme", **env: str
) -> Result:
    environment = {"XDG_CONFIG_HOME": str(config_home), KEY_ENV: key, **PROCESS_ENV, **env}
    options = ["--profile", profile] if profile else []
    return CliRunner().invoke(main, [*options, *args], env=environment)


def ok(acme: dict[str, Any], config_home: Path, *args: str) -> Result:
    result = remote(config_home, acme["key"], *args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def refused(acme: dict[str, Any], config_home: Path, *args: str, key: str | None = None) -> str:
    """A refusal: exit 1, nothing on stdout, one clear line on stderr (never a traceback)."""
    result = remote(config_home, key or acme["key"], *args)
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and not isinstance(result.exception, KeyError)
    return result.stderr


def fresh(model: Any, row_id: str) -> Any:
    db.session.expire_all()
    return db.session.get(model, row_id)


# --- orgs ---------------------------------------------------------------------------------


def test_org_create_list_delete(acme: dict[str, Any], config_home: Path) -> None:
    org_id = ok(acme, config_home, "org", "create", "globex", "--name", "Globex").stdout.strip()

    assert fresh(Organization, org_id).name == "Globex"
    listed = ok(acme, config_home, "org", "list").stdout.splitlines()
    assert listed == [f"acme\t{acme['org'].id}\tAcme", f"globex\t{org_id}\tGlobex"]

    ok(acme, config_home, "org", "delete", "globex", "--yes")

    assert fresh(Organization, org_id).deleted_at is not None
    # The change is the API key's, audited as such.
    key_id = db.session.scalar(select(ApiKey.id))
    assert (
        db.session.scalar(select(AuditEvent.actor_id).where(AuditEvent.action == "org.deleted"))
        == key_id
    )
    assert "error: org_not_found: " in refused(
        acme, config_home, "org", "delete", "globex", "--yes"
    )
    assert "error: slug_taken" in refused(acme, config_home, "org", "create", "acme", "--name", "A")


# --- members ------------------------------------------------------------------------------


def test_member_add_suspend_remove_with_the_profiles_org(
    acme: dict[str, Any], config_home: Path
) -> None:
    line = ok(acme, config_home, "member", "add", "ada@example.com", "--role", "admin")
    user_id, email, role, status = line.stdout.strip().split("\t")
    assert (email, role, status) == ("ada@example.com", "admin", "active")

    listed = ok(acme, config_home, "member", "list").stdout.splitlines()
    assert sorted(row.split("\t")[1] for row in listed) == ["ada@example.com", "owner@example.com"]

    suspended = ok(acme, config_home, "member", "suspend", user_id).stdout.strip()
    assert suspended.endswith("\tsuspended")
    membership = db.session.scalar(select(Membership).where(Membership.user_id == user_id))
    assert membership.status is MembershipStatus.SUSPENDED

    ok(acme, config_home, "member", "remove", "acme", user_id)  # SLUG given explicitly too

    assert fresh(Membership, membership.id) is None


def test_member_invariants_hold_remotely(acme: dict[str, Any], config_home: Path) -> None:
    owner = acme["owner"]

    for verb in ("suspend", "remove"):
        assert refused(acme, config_home, "member", verb, owner.user_id).startswith(
            "error: last_owner: An organization must keep at least one owner"
        )
    assert "already_member" in refused(acme, config_home, "member", "add", "owner@example.com")
    assert "org_not_found" in refused(acme, config_home, "member", "list", "nope")
    assert fresh(Membership, owner.id).status is MembershipStatus.ACTIVE


def test_invite_create_prints_the_accept_url(acme: dict[str, Any], config_home: Path) -> None:
    url = ok(acme, config_home, "invite", "create", "bob@example.com", "--role", "admin")

    assert ACCEPT_URL.match(url.stdout.strip()), url.stdout


# --- credentials and clients ---------------------------------------------------------------


def test_api_key_list_and_revoke(acme: dict[str, Any], config_home: Path) -> None:
    spare = make_key()
    make_key(acme["org"], Role.MEMBER)

    workspace_keys = ok(acme, config_home, "api-key", "list").stdout.splitlines()
    [org_line] = ok(acme, config_home, "api-key", "list", "--org", "acme").stdout.splitlines()
    assert sorted(line.split("\t")[4] for line in workspace_keys) == sorted(
        f"...{token[-4:]}" for token in (acme["key"], spare)
    )
    org_key_id = org_line.split("\t")[0]
    spare_id = db.session.scalar(select(ApiKey.id).where(ApiKey.hint == spare[-4:]))
    own_id = db.session.scalar(select(ApiKey.id).where(ApiKey.hint == acme["key"][-4:]))

    ok(acme, config_home, "api-key", "revoke", spare_id)
    ok(acme, config_home, "api-key", "revoke", org_key_id, "--org", "acme")

    assert fresh(ApiKey, spare_id).revoked_at is not None
    assert fresh(ApiKey, org_key_id).revoked_at is not None
    assert refused(acme, config_home, "api-key", "revoke", own_id).startswith(
        "error: last_workspace_key: "
    )


def test_client_list_and_delete(acme: dict[str, Any], config_home: Path) -> None:
    client, _secret = create_client(
        workspace().id, name="Tunnels", redirect_uris=["https://t.example/cb"]
    )
    db.session.commit()

    [line] = ok(acme, config_home, "client", "list").stdout.splitlines()
    assert line == f"{client.client_id}\tTunnels\tconfidential\thttps://t.example/cb"

    ok(acme, config_home, "client", "delete", client.client_id)

    assert ok(acme, config_home, "client", "list").stdout == ""
    assert "not_found" in refused(acme, config_home, "client", "delete", client.client_id)


def test_scim_token_create_list_revoke(acme: dict[str, Any], config_home: Path) -> None:
    token = ok(acme, config_home, "scim-token", "create", "--name", "okta").stdout.strip()

    [line] = ok(acme, config_home, "scim-token", "list").stdout.splitlines()
    token_id, name, hint, used, state = line.split("\t")
    assert (name, hint, used, state) == ("okta", f"...{token[-4:]}", "never", "active")

    ok(acme, config_home, "scim-token", "revoke", token_id)

    assert ok(acme, config_home, "scim-token", "list").stdout.strip().endswith("\trevoked")


def test_setup_link_create_prints_only_the_url(acme: dict[str, Any], config_home: Path) -> None:
    url = ok(acme, config_home, "setup-link", "create", "--intent", "scim").stdout

    assert url.count("\n") == 1 and "/setup/ghsetup_" in url
    link, _ = setup_links.open_setup_link(url.strip().rsplit("/", 1)[1])
    assert (link.org_id, link.intents) == (acme["org"].id, ["scim"])


# --- --json: the same document remotely and here ----------------------------------------------


def test_json_is_the_same_remotely_and_locally(
    acme: dict[str, Any], config_home: Path, runner: FlaskCliRunner
) -> None:
    make_member(acme["org"], "ada@example.com")

    for args in (("org", "list"), ("member", "list", "acme"), ("api-key", "list")):
        over_http = json.loads(ok(acme, config_home, *args, "--json").stdout)
        here = runner.invoke(args=[*args, "--json"])
        assert here.exit_code == 0, here.stderr
        without_use = lambda rows: [  # noqa: E731 - the key's last use moves as it calls
            {k: v for k, v in row.items() if k != "last_used_at"} for row in rows
        ]
        assert without_use(over_http) == without_use(json.loads(here.stdout)), args

    added = json.loads(ok(acme, config_home, "member", "add", "bob@example.com", "--json").stdout)
    assert set(added) == {"user_id", "email", "name", "role", "status", "source", "joined_at"}


# --- errors: keys, servers, profiles ---------------------------------------------------------


def test_a_bad_key_or_too_little_authority_is_a_clear_error(
    acme: dict[str, Any], config_home: Path
) -> None:
    member_key = make_key(acme["org"], Role.MEMBER)

    assert refused(acme, config_home, "org", "list", key="ghk_" + "x" * 43).startswith(
        "error: unauthorized: A valid API key is required"
    )
    assert "error: forbidden: " in refused(
        acme, config_home, "member", "add", "eve@example.com", key=member_key
    )
    # An org key does not see workspace resources at all.
    assert "error: not_found: " in refused(acme, config_home, "client", "list", key=member_key)


def test_an_unreachable_or_foreign_server_is_a_clear_error(
    acme: dict[str, Any], config_home: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    write_profiles(config_home, f'[down]\nurl = "{closed}"\napi_key_env = "{KEY_ENV}"\n')
    down = remote(config_home, acme["key"], "org", "list", profile="down")
    assert down.exit_code == 1 and down.stderr.startswith(
        f"error: unreachable: cannot reach {closed}"
    )

    with echo_upstream() as port:  # answers JSON, but not the admin API's
        write_profiles(
            config_home, f'[other]\nurl = "http://127.0.0.1:{port}"\napi_key_env = "{KEY_ENV}"\n'
        )
        other = remote(config_home, acme["key"], "org", "list", profile="other")
        posted = remote(
            config_home, acme["key"], "org", "create", "x", "--name", "X", profile="other"
        )
    assert other.exit_code == 1 and "error: unexpected_response: " in other.stderr
    assert posted.exit_code == 1 and "error: http_501: " in posted.stderr
    assert "Traceback" not in other.stderr + posted.stderr


def test_profile_selection_and_its_errors(acme: dict[str, Any], config_home: Path) -> None:
    # GATEHOUSE_PROFILE picks the profile when --profile is not given.
    by_env = remote(config_home, acme["key"], "org", "list", profile="", GATEHOUSE_PROFILE="acme")
    assert by_env.exit_code == 0 and by_env.stdout.startswith("acme\t")

    unknown = remote(config_home, acme["key"], "org", "list", profile="globex")
    assert unknown.exit_code == 1 and "no profile 'globex'" in unknown.stderr
    unset = CliRunner().invoke(
        main,
        ["--profile", "acme", "org", "list"],
        env={"XDG_CONFIG_HOME": str(config_home), **PROCESS_ENV},
    )
    assert unset.exit_code == 1 and f"{KEY_ENV} is not set" in unset.stderr
    missing = remote(config_home.parent / "elsewhere", acme["key"], "org", "list")
    assert missing.exit_code == 1 and "no profiles file" in missing.stderr
    # Commands with not offered in remote mode say so, and load no local app.
    local_only = remote(config_home, acme["key"], "policy", "show")
    assert local_only.exit_code == 2 and "not offered in remote mode" in local_only.stderr
    # A profile with no org and a command given no SLUG: a usage error.
    write_profiles(
        config_home, f'[bare]\nurl = "{acme_url(config_home)}"\napi_key_env = "{KEY_ENV}"\n'
    )
    bare = remote(config_home, acme["key"], "member", "list", profile="bare")
    assert bare.exit_code == 2 and "SLUG" in bare.stderr


def acme_url(config_home: Path) -> str:
    text = (config_home / "gatehouse" / "profiles.toml").read_text()
    return re.search(r'url = "([^"]+)"', text).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('url = "http://gatehouse.example"\napi_key_env = "K"\n', "url must be https://"),
        ('url = "ftp://127.0.0.1"\napi_key_env = "K"\n', "url must be https://"),
        ('api_key_env = "K"\n', "url is required"),
        ('url = "https://g.example"\napi_key_env = "K"\ntoken = "x"\n', "unknown keys token"),
        ('url = "https://g.example"\napi_key_env = 3\n', "api_key_env must be"),
        ('url = "https://g.example"\napi_key_env = "K"\napi_key = "k"\n', "not both"),
    ],
)
def test_profiles_refused(app: Flask, config_home: Path, body: str, message: str) -> None:
    write_profiles(config_home, f"[p]\n{body}")

    result = remote(config_home, "k", "org", "list", profile="p", K="ghk_x")

    assert result.exit_code == 1 and message in result.stderr, result.stderr


def test_a_key_in_the_file_only_when_no_one_else_can_read_it(
    acme: dict[str, Any], config_home: Path
) -> None:
    url = acme_url(config_home)
    text = f'[acme]\nurl = "{url}"\napi_key = "{acme["key"]}"\n'
    path = write_profiles(config_home, text, mode=0o644)

    readable = remote(config_home, None, "org", "list")
    assert readable.exit_code == 1 and f"chmod 600 {path}" in readable.stderr

    path.chmod(0o600)
    assert remote(config_home, None, "org", "list").stdout.startswith("acme\t")

    broken = write_profiles(config_home, "[acme\n", mode=0o600)
    result = remote(config_home, None, "org", "list")
    assert result.exit_code == 1 and str(broken) in result.stderr


# --- the installed script, with the key in the OS keyring --------------------------------------


def _script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed arguments, our own console script
        [gatehouse_script(), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_installed_script_reads_its_key_from_the_keyring(
    acme: dict[str, Any], config_home: Path, tmp_path: Path
) -> None:
    write_profiles(config_home, f'[acme]\nurl = "{acme_url(config_home)}"\norg = "acme"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEHOUSE_", "FLASK_"))} | {
        "XDG_CONFIG_HOME": str(config_home),
        "XDG_DATA_HOME": str(tmp_path / "data"),  # where keyrings.alt's file keyring lives
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
    }
    stored = subprocess.run(
        [
            sys.executable,
            "-c",
            "import keyring, sys; keyring.set_password('gatehouse', 'acme', sys.stdin.read())",
        ],
        input=acme["key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert stored.returncode == 0

    members = _script(env, "--profile", "acme", "member", "list", "--json")
    migrate = _script(env, "--profile", "acme", "db", "upgrade")  # never the local database
    assert migrate.returncode == 2 and "not offered in remote mode" in migrate.stderr
    assert members.returncode == 0, members.stderr
    assert [m["email"] for m in json.loads(members.stdout)] == ["owner@example.com"]

    no_backend = _script(
        env | {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
        "--profile",
        "acme",
        "member",
        "list",
    )
    assert no_backend.returncode == 1
    assert "the OS keyring is unavailable" in no_backend.stderr
    assert "Traceback" not in no_backend.stderr
