"""Outgoing mail: invitations through a real SMTP server on loopback, and the mail plumbing.

The peer is aiosmtpd on 127.0.0.1 and a free port; the app under test sends to it exactly as
it would to a relay (``GATEHOUSE_SMTP_URL``), after the request's commit.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp import create_app
from idp.actors import system_actor
from idp.config import ConfigError, Settings
from idp.db import db
from idp.errors import BadRequest
from idp.mail import Mail, Mailer, SmtpTarget, parse_smtp_url, queue_mail, queue_work
from idp.orgs import invitations
from idp.orgs.models import Invitation, Membership
from idp.orgs.roles import Role
from tests.builders import auth, make_key, make_member, make_org

ACCEPT_URL = re.compile(r"http://gatehouse\.test/invitations/accept\?token=\S+")


# --- the SMTP peer ---------------------------------------------------------------------


@dataclass
class Received:
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        return self.message.get_content()

    @property
    def url(self) -> str:
        found = ACCEPT_URL.findall(self.body)
        assert len(found) == 1, self.body
        return found[0]


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    port: int = 0
    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(Received(list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A loopback port nothing listens on (the OS just handed it out and it is closed again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_smtp(**smtp_parameters: Any) -> tuple[Controller, Inbox]:
    inbox = Inbox(port=free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **smtp_parameters)
    controller.start()
    return controller, inbox


@pytest.fixture
def smtp_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Where the module's apps send mail: the loopback inbox, or (param ``down``) nowhere."""
    if getattr(request, "param", None) == "down":
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))  # held but never listening: connections are refused
            yield f"smtp://127.0.0.1:{sock.getsockname()[1]}"
    else:
        yield f"smtp://127.0.0.1:{request.getfixturevalue('inbox').port}"


@pytest.fixture
def settings_overrides(smtp_url: str) -> dict[str, Any]:
    return {"SMTP_URL": smtp_url}


# --- helpers ---------------------------------------------------------------------------


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def invite(client: FlaskClient, key: str, email: str, slug: str = "acme", **body: Any) -> Any:
    return client.post(
        f"/api/v1/orgs/{slug}/invitations", json={"email": email, **body}, headers=auth(key)
    )


def accept(client: FlaskClient, token: str) -> Any:
    return client.post("/api/v1/invitations/accept", json={"token": token})


def invitation_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Invitation))


# --- invitations through SMTP ----------------------------------------------------------


def test_invitation_is_mailed_with_the_accept_url(
    app: Flask, client: FlaskClient, root_key: str, inbox: Inbox
) -> None:
    make_org("acme", "Acme Corp")

    response = invite(client, root_key, "ada@example.com", role="admin")

    assert response.status_code == 201, response.json
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail.rcpt_tos == ["ada@example.com"]
    assert mail.message["To"] == "ada@example.com"
    assert mail.message["From"] == app.extensions["gatehouse.settings"].mail_from
    assert "Acme Corp" in mail.message["Subject"]
    # The mail's link is the API's, plus a proof secret that only the mail carries.
    assert mail.url.startswith(response.json["url"] + "&proof=")
    assert mail.url.split("&proof=")[1] not in response.text

    accepted = accept(client, token_of(mail.url))

    assert accepted.status_code == 200, accepted.json
    assert (accepted.json["email"], accepted.json["role"]) == ("ada@example.com", "admin")
    assert len(inbox.messages) == 1  # accepting sends nothing


def test_resend_mails_a_new_token_and_retires_the_old_one(
    app: Flask, client: FlaskClient, root_key: str, inbox: Inbox
) -> None:
    make_org("acme")
    created = invite(client, root_key, "ada@example.com")

    resent = client.post(
        f"/api/v1/orgs/acme/invitations/{created.json['id']}/resend", headers=auth(root_key)
    )

    assert resent.status_code == 200, resent.json
    assert [m.rcpt_tos for m in inbox.messages] == [["ada@example.com"]] * 2
    first, second = (token_of(m.url) for m in inbox.messages)
    assert first != second
    assert inbox.messages[1].url.startswith(resent.json["url"] + "&proof=")
    assert inbox.messages[1].url.split("&proof=")[1] != inbox.messages[0].url.split("&proof=")[1]
    stale = accept(client, first)
    assert (stale.status_code, stale.json["error"]) == (404, "invitation_not_found")
    assert accept(client, second).status_code == 200


def test_a_refused_invitation_sends_no_mail(
    app: Flask, client: FlaskClient, root_key: str, inbox: Inbox
) -> None:
    org = make_org("acme")
    make_member(org, "bob@example.com")
    admin_key = make_key(org, Role.ADMIN)

    owner = invite(client, admin_key, "ada@example.com", role="owner")
    member = invite(client, root_key, "bob@example.com")
    twice = [invite(client, root_key, "cy@example.com") for _ in range(2)]

    assert (owner.status_code, owner.json["error"]) == (403, "owner_protected")
    assert (member.status_code, member.json["error"]) == (409, "already_member")
    assert [r.status_code for r in twice] == [201, 409]
    assert [m.rcpt_tos for m in inbox.messages] == [["cy@example.com"]]


def test_a_rolled_back_invitation_sends_no_mail(app: Flask, inbox: Inbox) -> None:
    """The mail is queued by the service, but only a commit releases it."""
    org = make_org("acme")
    invitations.invite_by_email(system_actor(), org, email="ada@example.com")
    db.session.rollback()
    make_org("other")  # a later commit in the same session must not release the dropped mail

    assert inbox.messages == []
    assert invitation_count() == 0

    invitations.invite_by_email(system_actor(), org, email="ada@example.com")
    db.session.commit()
    assert [m.rcpt_tos for m in inbox.messages] == [["ada@example.com"]]


def test_an_org_name_with_a_line_break_is_refused(app: Flask) -> None:
    with pytest.raises(BadRequest):
        make_org("acme", "Acme\r\nBcc: mallory@evil.example")


def test_a_mail_that_cannot_be_built_neither_injects_headers_nor_fails_the_commit(
    app: Flask, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    queue_mail(db.session, Mail("ada@example.com", "Hi\r\nBcc: mallory@evil.example", "body"))
    with caplog.at_level(logging.ERROR):
        db.session.commit()
    assert inbox.messages == []
    assert any("ada@example.com" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("smtp_url", ["down"], indirect=True)
def test_smtp_down_keeps_the_invitation_and_logs_no_token(
    app: Flask, client: FlaskClient, root_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_org("acme")

    with caplog.at_level(logging.DEBUG):
        response = invite(client, root_key, "ada@example.com")

    assert response.status_code == 201, response.json
    assert invitation_count() == 1
    failures = [r for r in caplog.records if r.name == "idp.mail" and r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert "ada@example.com" in failures[0].getMessage()
    token = token_of(response.json["url"])
    secret = token.split("_", 1)[1]
    for record in caplog.records:
        logged = f"{record.getMessage()} {record.exc_text or ''} {record.args!r}"
        assert secret not in logged, record
    # The admin still has the link from the response: it works.
    assert accept(client, token).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"ENV": "development", "SMTP_URL": ""}])
def test_development_without_smtp_logs_the_mail(
    app: Flask, client: FlaskClient, root_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_org("acme")

    with caplog.at_level(logging.INFO, logger="idp.mail"):
        response = invite(client, root_key, "ada@example.com")
        # Development sends on the courier's thread, after the response.
        assert app.extensions["gatehouse.courier"].drain()

    assert response.status_code == 201, response.json
    logged = [r.getMessage() for r in caplog.records if r.name == "idp.mail"]
    assert len(logged) == 1
    assert "to=ada@example.com" in logged[0]
    [logged_url] = ACCEPT_URL.findall(logged[0])
    assert logged_url.startswith(response.json["url"] + "&proof=")


def test_production_without_smtp_warns_without_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailer = Mailer(Settings(env="production", smtp_url=""))

    with caplog.at_level(logging.INFO, logger="idp.mail"):
        mailer.send(Mail(to="ada@example.com", subject="Hi", body="secret-link-ghi_abc"))

    [record] = [r for r in caplog.records if r.name == "idp.mail"]
    assert record.levelno == logging.WARNING
    assert "ada@example.com" in record.getMessage()
    assert "secret-link" not in record.getMessage()


def test_mailer_logs_in_with_the_unescaped_credentials() -> None:
    logins: list[LoginPassword] = []

    def authenticator(*args: Any) -> AuthResult:
        auth_data = args[-1]
        logins.append(auth_data)
        return AuthResult(success=True, auth_data=auth_data)

    controller, inbox = start_smtp(authenticator=authenticator, auth_require_tls=False)
    try:
        url = f"smtp://mailer%40example.com:p%40ss%3Aw%2Fd@127.0.0.1:{inbox.port}"
        Mailer(Settings(env="testing", smtp_url=url)).send(
            Mail(to="ada@example.com", subject="Hi", body="Hello")
        )
    finally:
        controller.stop()

    assert [(x.login, x.password) for x in logins] == [(b"mailer@example.com", b"p@ss:w/d")]
    assert [m.rcpt_tos for m in inbox.messages] == [["ada@example.com"]]
    assert inbox.messages[0].body.strip() == "Hello"


# --- parse_smtp_url --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpTarget("mail.example.com", 25, False, False, None, None)),
        ("smtp://127.0.0.1:2525", SmtpTarget("127.0.0.1", 2525, False, False, None, None)),
        (
            "smtp://mail.example.com:587?starttls=1",
            SmtpTarget("mail.example.com", 587, False, True, None, None),
        ),
        (
            "smtp://mail.example.com:587?starttls=TRUE",
            SmtpTarget("mail.example.com", 587, False, True, None, None),
        ),
        (
            "smtp://mail.example.com?starttls=0",
            SmtpTarget("mail.example.com", 25, False, False, None, None),
        ),
        ("smtps://mail.example.com", SmtpTarget("mail.example.com", 465, True, False, None, None)),
        (
            "smtps://apikey:s3cret@mail.example.com:2465",
            SmtpTarget("mail.example.com", 2465, True, False, "apikey", "s3cret"),
        ),
        (
            "smtp://user%40example.com:p%40ss%3Aw%2Fd%25@mail.example.com:587?starttls=yes",
            SmtpTarget("mail.example.com", 587, False, True, "user@example.com", "p@ss:w/d%"),
        ),
        (
            "smtp://user@mail.example.com",
            SmtpTarget("mail.example.com", 25, False, False, "user", None),
        ),
    ],
)
def test_parse_smtp_url(url: str, expected: SmtpTarget) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp+tls://mail.example.com",
        "mail.example.com:25",
        "smtp://",
        "smtp:///path-only",
        "",
    ],
)
def test_parse_smtp_url_refuses_what_is_not_smtp(url: str) -> None:
    with pytest.raises(ConfigError, match="GATEHOUSE_SMTP_URL"):
        parse_smtp_url(url)


@pytest.mark.parametrize("url", ["smtp://mail.example.com:99999", "smtp://mail.example.com:x"])
def test_parse_smtp_url_refuses_a_bad_port(url: str) -> None:
    with pytest.raises(ConfigError, match="GATEHOUSE_SMTP_URL"):
        parse_smtp_url(url)


def test_a_bad_smtp_url_stops_start_up(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="GATEHOUSE_SMTP_URL"):
        create_app(
            {
                "ENV": "development",
                "INSTANCE_PATH": str(tmp_path),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                "SMTP_URL": "http://mail.example.com",
            }
        )


def test_membership_from_mailed_token_is_one_row(
    app: Flask, client: FlaskClient, root_key: str, inbox: Inbox
) -> None:
    """Replaying the mailed link after accepting it answers 410 and adds nothing."""
    make_org("acme")
    invite(client, root_key, "ada@example.com")
    token = token_of(inbox.messages[0].url)

    assert accept(client, token).status_code == 200
    again = accept(client, token)

    assert (again.status_code, again.json["error"]) == (410, "invitation_not_pending")
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 1


def test_deferred_work_that_fails_is_logged_and_the_rest_still_goes(
    app: Flask, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("secret-detail")

    queue_work(db.session(), broken)
    queue_mail(db.session(), Mail(to="ada@example.com", subject="Hi", body="after"))
    with caplog.at_level(logging.ERROR, logger="idp.mail"):
        db.session.commit()
    assert [m.rcpt_tos for m in inbox.messages] == [["ada@example.com"]]
    assert "deferred work failed: RuntimeError" in caplog.text
    assert "secret-detail" not in caplog.text  # the exception's text never reaches the log
