"""Outgoing mail: queued with the transaction, sent over SMTP only after it commits, and
after the response, off the request's path.

The one way every mail leaves: ``queue_mail`` (or ``queue_work`` for work that decides
whether to mail at all) puts it in the session's outbox; on commit the outbox is handed to
the ``Courier``, at the end of the request, which sends it on its own thread. A rollback
drops it. Nothing here is durable yet: a process that dies with mail in its queue loses it
(the database outbox and worker of CONVENTIONS #17 will replace the courier's inside).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import smtplib
import ssl
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Flask, current_app, g, has_app_context, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from idp.config import ConfigError, Settings
from idp.db import db, declared_as, declared_org

log = logging.getLogger(__name__)
OUTBOX = "gatehouse.outbox"
SMTP_TIMEOUT = 10
QUEUE_SIZE = 1000  # batches; beyond it a burst is refused (logged), never blocks a request
_AFTER_RESPONSE = "gatehouse_after_response"


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


Work = Callable[[], None]
Item = Mail | Work
_delivering: ContextVar[bool] = ContextVar("gatehouse_mail_delivering", default=False)


def queue_mail(session: Session, mail: Mail) -> None:
    """Send ``mail`` once the session's transaction commits; drop it on rollback."""
    session.info.setdefault(OUTBOX, []).append(mail)


def queue_work(session: Session, work: Work) -> None:
    """Run ``work`` after the commit, off the request's path, in its own transaction (what it
    mails goes out after its own commit): for work whose cost must not show in the answer,
    such as deciding whether an address gets a sign-in link at all. It runs under the
    row-level security declaration in force when it was queued: the courier's thread (or the
    request's end, once the request's own declaration is gone) inherits none."""
    declared = declared_org()

    def declared_work() -> None:
        with declared_as(declared):
            work()  # what it changed is flushed under it as the declaration ends

    session.info.setdefault(OUTBOX, []).append(declared_work)


class Courier:
    """Runs committed outbox items: on one background thread per process (a bounded queue),
    or inline for tests; each batch in a fresh app context and database session."""

    def __init__(self, app: Flask, mailer: Mailer, *, background: bool) -> None:
        self.app = app
        self.mailer = mailer
        self.background = background
        self._queue: queue.Queue[list[Item]] = queue.Queue(maxsize=QUEUE_SIZE)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, items: Iterable[Item]) -> None:
        """Hand committed items over; the caller never waits for SMTP."""
        batch = list(items)
        if not batch:
            return
        if not self.background:
            self.run(batch)
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            log.error("mail queue full: %d item(s) dropped", len(batch))

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted batch has run (tests, shutdown); False on timeout."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def run(self, batch: list[Item]) -> None:
        """Run one batch now, on this thread."""
        marker = _delivering.set(True)
        try:
            with self.app.app_context():
                try:
                    for item in batch:
                        self._run_one(item)
                finally:
                    db.session.remove()
        finally:
            _delivering.reset(marker)

    def _run_one(self, item: Item) -> None:
        if isinstance(item, Mail):
            try:
                self.mailer.send(item)
            except Exception as exc:  # after the commit, nothing may fail the request
                # The change is committed; the admin still has the link from the API response.
                log.error("mail to %s failed: %s", item.to, type(exc).__name__)
            return
        try:
            item()
            db.session.commit()  # what it mails goes out on this commit, on this thread
        except Exception as exc:
            db.session.rollback()
            log.error("deferred work failed: %s", type(exc).__name__)

    def _ensure_thread(self) -> None:
        with self._lock:
            # A forked worker (gunicorn) inherits the object but not the thread.
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="gatehouse-mail", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                self.run(batch)
            except Exception as exc:  # the thread must outlive any one batch
                log.error("mail batch failed: %s", type(exc).__name__)
            finally:
                self._queue.task_done()


def courier() -> Courier:
    """The running app's courier."""
    return current_app.extensions["gatehouse.courier"]


def init_app(app: Flask, settings: Settings) -> None:
    mailer = Mailer(settings)
    mode = settings.mail_delivery or ("inline" if settings.env == "testing" else "background")
    app.extensions["gatehouse.mailer"] = mailer
    delivery = Courier(app, mailer, background=mode == "background")
    app.extensions["gatehouse.courier"] = delivery
    if delivery.background:
        atexit.register(delivery.drain, 5.0)  # a clean shutdown sends what is queued

    @app.teardown_request
    def send_after_response(_exc: BaseException | None) -> None:
        """The response is built; what the request committed goes out now."""
        delivery.submit(g.pop(_AFTER_RESPONSE, ()))


@event.listens_for(Session, "after_commit")
def _deliver(session: Session) -> None:
    outbox = session.info.pop(OUTBOX, None)
    if not outbox or not has_app_context():
        return
    if has_request_context() and not _delivering.get():
        # Inside a request: held until its end, so neither SMTP nor the deferred work adds
        # to the answer's time (which would tell a known address from an unknown one).
        g.setdefault(_AFTER_RESPONSE, []).extend(outbox)
        return
    # The courier's own work committed, or a CLI command or a script did (no response to
    # wait for): sent now, on this thread, in a session of its own.
    courier().run(outbox)


@event.listens_for(Session, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(OUTBOX, None)
