"""Outgoing mail: queued with the transaction, sent over SMTP only after it commits."""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from idp.config import ConfigError, Settings

log = logging.getLogger(__name__)
OUTBOX = "gatehouse.outbox"
SMTP_TIMEOUT = 10


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    use_tls: bool
    starttls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://[user:pass@]host[:port][?starttls=1]`` or ``smtps://...`` (implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ConfigError("GATEHOUSE_SMTP_URL must look like smtp://user:pass@host:587?starttls=1")
    query = parse_qs(parts.query)
    use_tls = parts.scheme == "smtps"
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError("GATEHOUSE_SMTP_URL has an invalid port")
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if use_tls else 25),
        use_tls=use_tls,
        starttls=query.get("starttls", ["0"])[0].lower() in {"1", "true", "yes"},
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class Mailer:
    """Delivers mail through the configured SMTP server, or to the log in development."""

    def __init__(self, settings: Settings) -> None:
        self.sender = settings.mail_from
        self.target = parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
        self.log_bodies = not settings.is_production

    def send(self, mail: Mail) -> None:
        if self.target is None:
            if self.log_bodies:
                log.info(
                    "mail (no SMTP configured) to=%s subject=%s\n%s",
                    mail.to,
                    mail.subject,
                    mail.body,
                )
            else:
                log.warning("mail to %s not sent: GATEHOUSE_SMTP_URL is not set", mail.to)
            return
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        target = self.target
        context = ssl.create_default_context()
        smtp_class = smtplib.SMTP_SSL if target.use_tls else smtplib.SMTP
        kwargs = {"context": context} if target.use_tls else {}
        with smtp_class(target.host, target.port, timeout=SMTP_TIMEOUT, **kwargs) as smtp:
            if target.starttls:
                smtp.starttls(context=context)
            if target.username:
                smtp.login(target.username, target.password or "")
            smtp.send_message(message)


def queue_mail(session: Session, mail: Mail) -> None:
    """Send ``mail`` once the session's transaction commits; drop it on rollback."""
    session.info.setdefault(OUTBOX, []).append(mail)


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["gatehouse.mailer"] = Mailer(settings)


@event.listens_for(Session, "after_commit")
def _deliver(session: Session) -> None:
    outbox = session.info.pop(OUTBOX, None)
    if not outbox or not has_app_context():
        return
    mailer: Mailer = current_app.extensions["gatehouse.mailer"]
    for mail in outbox:
        try:
            mailer.send(mail)
        except Exception as exc:  # after the commit, nothing may fail the request
            # The change is committed; the admin still has the link from the API response.
            log.error("mail to %s failed: %s", mail.to, type(exc).__name__)


@event.listens_for(Session, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(OUTBOX, None)
