"""Forward-auth (``GET /auth/check``): a reverse proxy asks whether a browser may pass.

nginx ``auth_request``, Traefik ``forwardAuth`` and Caddy ``forward_auth`` send the
browser's request headers here: 200 with ``X-Gatehouse-*`` headers lets it through, 401
carries ``X-Gatehouse-Login-URL`` for the proxy's redirect. This is the hot path: it asks the
database one indexed query, which evaluates the same admission rule as
:func:`idp.people.signin.admission` in SQL (``tests/login/test_forward_auth.py`` checks that the
two agree) and reads the org's effective policy, which the one policy function then applies
to the session (SSO and MFA required, maximum age, idle timeout, the person's email domain).
It writes nothing, except
``last_seen_at`` once a minute for orgs with an idle timeout.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, quote, urlencode, urlsplit

from flask import Blueprint, Response, redirect, request
from sqlalchemy import (
    Select,
    and_,
    bindparam,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from idp.config import current_settings, parse_forward_auth_hosts
from idp.connections.models import Connection, Domain
from idp.crypto import token_digest
from idp.db import WORKSPACE_WIDE, db, declare_on_connection, declare_workspace_wide, utcnow
from idp.errors import BadRequest, GatehouseError
from idp.login.cookies import (
    app_credential,
    clear_state_cookie,
    presented_state,
    session_token,
    set_app_cookie,
    state_cookie_header,
)
from idp.login.pages import page
from idp.login.redirects import safe_return_to
from idp.orgs.models import Membership, Organization, Workspace
from idp.orgs.role_book import cached_permissions
from idp.policies.chain import org_policy
from idp.policies.enforcement import violation
from idp.policies.registry import Policy
from idp.sessions.forward import (
    derive_app_credential,
    host_binding,
    issue_forward_code,
    redeem_forward_code,
)
from idp.sessions.models import Session
from idp.sessions.services import SESSION_TOKEN_PREFIX, TOUCH_EVERY, session_attempt
from idp.users.models import User

bp = Blueprint("forward_auth", __name__)

# The callback pattern (apps on their own domains): /auth/start on Gatehouse issues a code
# and sends the browser to CALLBACK_PATH on the app's host, which the proxy passes to
# Gatehouse's /auth/callback.
START_PATH = "/auth/start"
CALLBACK_PATH = "/_gatehouse/callback"

# nginx's auth_request subrequest keeps the original method; Traefik and Caddy send GET.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ORG_HEADER = "X-Gatehouse-Org"
_STATE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")  # secrets.token_urlsafe(32): 43 characters
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # as orgs.services.SLUG


def _inline(value: str) -> ColumnElement[str]:
    # Inline, not a parameter: a generic (prepared) plan can still use partial indexes.
    return literal_column(f"'{value}'")


def _email_domain(dialect: str, email: ColumnElement[str]) -> ColumnElement[str]:
    """The domain part of a normalized email, in the dialect's own string functions."""
    if dialect == "postgresql":
        return func.split_part(email, "@", 2)
    return func.substr(email, func.instr(email, "@") + 1)


def check_statement(dialect: str, *, by_slug: bool, by_session_id: bool = False) -> Select:
    """The one query: live session, user, org, active membership and admission rule together.

    ``by_slug``: the org is named (``:slug``); otherwise it is the session's current org.
    ``by_session_id``: the session is named by id (an app-host credential, whose proof the
    caller checks against the selected token digest); otherwise by its token's digest.
    The admission rule (``signin.admission``): no connection and an email link; or the
    connection's own org; or a live org of the connection that verified the email's domain.
    Core tables, not ORM entities: the ORM's result machinery would double the time taken.
    """
    s, u, m = Session.__table__.c, User.__table__.c, Membership.__table__.c
    o, c, d = Organization.__table__.c, Connection.__table__.c, Domain.__table__.c
    w = Workspace.__table__.c
    connection_org = Organization.__table__.alias("connection_org")
    org_match = (
        and_(o.slug == bindparam("slug"), o.workspace_id == s.workspace_id)
        if by_slug
        else o.id == s.org_id
    )
    admitted = case(
        (s.connection_id.is_(None), s.method == _inline("email_link")),
        (c.org_id == o.id, true()),
        (and_(d.id.is_not(None), connection_org.c.deleted_at.is_(None)), true()),
        else_=false(),
    )
    return (
        select(
            u.id,
            u.email,
            o.slug,
            m.role,
            admitted.label("admitted"),
            # What the org's policy asks of a session (idp.policies.enforcement).
            o.id.label("org_id"),
            o.effective_policy,
            o.workspace_id,
            w.roles_version,
            c.org_id.label("connection_org_id"),
            s.id.label("session_id"),
            s.token_digest,
            s.expires_at,
            s.mfa,
            s.created_at,
            s.last_seen_at,
        )
        .select_from(Session.__table__)
        .join(User.__table__, u.id == s.user_id)
        .join(Organization.__table__, org_match)
        .join(Workspace.__table__, w.id == o.workspace_id)
        .join(
            Membership.__table__,
            and_(m.org_id == o.id, m.user_id == u.id, m.status == _inline("active")),
        )
        .outerjoin(Connection.__table__, c.id == s.connection_id)
        .outerjoin(connection_org, connection_org.c.id == c.org_id)
        .outerjoin(
            Domain.__table__,
            and_(
                d.workspace_id == s.workspace_id,
                d.domain == _email_domain(dialect, u.email_normalized),
                d.status == _inline("verified"),
                d.org_id == c.org_id,
            ),
        )
        .where(
            s.id == bindparam("session_id")
            if by_session_id
            else s.token_digest == bindparam("digest"),
            s.revoked_at.is_(None),
            s.expires_at > bindparam("now"),
            u.status == _inline("active"),
            o.deleted_at.is_(None),
        )
    )


# Built once per dialect and org source; each request only binds its parameters.
_STATEMENTS: dict[tuple[str, bool], Select] = {
    (dialect, by_slug): check_statement(dialect, by_slug=by_slug)
    for dialect in ("sqlite", "postgresql")
    for by_slug in (True, False)
}
# The same, the session named by id (the app-host cookie of the callback pattern).
_BY_SESSION_ID: dict[tuple[str, bool], Select] = {
    (dialect, by_slug): check_statement(dialect, by_slug=by_slug, by_session_id=True)
    for dialect in ("sqlite", "postgresql")
    for by_slug in (True, False)
}


@functools.lru_cache(maxsize=8)
def _host_map(value: str) -> dict[str, str]:
    return parse_forward_auth_hosts(value)


def original_url() -> str | None:
    """The URL the browser asked the proxy for: ``X-Original-URL`` (nginx), else
    ``X-Forwarded-Proto``/``-Host``/``-Uri`` (Traefik, Caddy)."""
    given = request.headers.get("X-Original-URL")
    if given:
        return given
    host = request.headers.get("X-Forwarded-Host")
    if not host:
        return None
    proto = request.headers.get("X-Forwarded-Proto", "https").split(",")[0].strip()
    uri = request.headers.get("X-Forwarded-Uri", "/")
    return f"{proto}://{host.split(',')[0].strip()}{uri}"


def _mapped_org(url: str | None) -> str | None:
    """The org of the proxied host in ``FORWARD_AUTH_HOSTS`` (``host:port``, then ``host``)."""
    hosts = _host_map(current_settings().forward_auth_hosts)
    if not hosts or not url:
        return None
    try:
        parts = urlsplit(url)
        netloc, name = parts.netloc.lower().rpartition("@")[2], (parts.hostname or "")
    except ValueError:
        return None
    return hosts.get(netloc) or hosts.get(name)


def _hostname(url: str | None) -> str | None:
    try:
        return (urlsplit(url).hostname or None) if url else None
    except ValueError:
        return None


def needs_callback(url: str | None) -> bool:
    """Whether ``url`` is on a mapped host the session cookie cannot reach (neither the
    issuer's host nor within ``COOKIE_DOMAIN``): its sign-in returns through the callback."""
    host = _hostname(url)
    if host is None or _mapped_org(url) is None:
        return False
    settings = current_settings()
    if host == (urlsplit(settings.issuer).hostname or "").lower():
        return False
    domain = settings.cookie_domain
    return not (domain and (host == domain or host.endswith("." + domain)))


def login_url(slug: str | None, url: str | None, state: str | None = None) -> str:
    """Where the proxy sends the browser to sign in, coming back to ``url`` if allowed;
    through ``/auth/start`` (with the sign-in's ``state``) for a callback host."""
    if url and state:
        query = urlencode({"next": url, "state": state})
        return f"{current_settings().issuer}{START_PATH}?{query}"
    query = {}
    if slug:
        query["org"] = slug
    if url and safe_return_to(url) == url:
        query["next"] = url
    base = f"{current_settings().issuer}/login"
    return f"{base}?{urlencode(query)}" if query else base


def _header_value(value: str) -> str:
    # Header values are Latin-1 on the wire: anything beyond ASCII is percent-encoded UTF-8.
    return value if value.isascii() else quote(value, safe="@!#$&'*+-./=?^_`{|}~")


def _denied(slug: str | None, url: str | None) -> Response:
    # ``?redirect=1`` (Traefik, whose forwardAuth hands a refusal to the browser as it is):
    # a 302 to the sign-in page instead of the 401 that nginx and Caddy turn into one.
    redirecting = request.args.get("redirect") == "1"
    response = Response(status=302 if redirecting else 401)
    state = None
    if url and needs_callback(url):
        # The sign-in starts here, so its state is bound to this browser here: a cookie of the
        # app's host that the proxy passes on (X-Gatehouse-Set-Cookie; Traefik, redirected,
        # passes the response's own), checked at the callback.
        state = secrets.token_urlsafe(32)
        https = url.lower().startswith("https://")
        cookie = state_cookie_header(state, secure=https, path=CALLBACK_PATH)
        response.headers["X-Gatehouse-Set-Cookie"] = cookie
        if redirecting:
            response.headers["Set-Cookie"] = cookie
    response.headers["X-Gatehouse-Login-URL"] = login_url(slug, url, state)
    if redirecting:
        response.headers["Location"] = response.headers["X-Gatehouse-Login-URL"]
    response.headers["Cache-Control"] = "no-store"
    return response


def _touch(session_id: str, now: datetime) -> None:
    """The one write of forward-auth: at most once a minute per session, and only for orgs
    with an idle timeout, so that a session in use through the proxy stays alive."""
    sessions = Session.__table__
    with db.engine.begin() as conn:
        conn.execute(
            sessions.update()
            .where(
                sessions.c.id == session_id,
                or_(
                    sessions.c.last_seen_at.is_(None),
                    sessions.c.last_seen_at <= now - TOUCH_EVERY,
                ),
            )
            .values(last_seen_at=now)
        )


def verdict(
    slug: str | None, url: str | None, *, digest: str | None = None, session_id: str | None = None
) -> tuple[Any, str | None]:
    """The check's row when the session (by token digest, or by id) may pass in ``slug``'s
    org (or its own), else ``None``; and the org to name in the login URL."""
    params: dict[str, Any] = {"now": utcnow()}
    if digest is not None:
        params["digest"] = digest
    else:
        params["session_id"] = session_id
    if slug:
        params["slug"] = slug
    engine = db.engine
    dialect = engine.dialect.name
    statements = _STATEMENTS if digest is not None else _BY_SESSION_ID
    # Row-level security: the check reads one person's session across their orgs, and a
    # fallback below may read through the ORM session.
    declare_workspace_wide()
    # A pooled connection, not the ORM session: one read, nothing to flush or commit.
    with engine.connect() as conn:
        if dialect == "postgresql":
            # The declaration is transaction-local, so the read runs in a transaction that
            # declares it first (the connection's end rolls it back). psycopg's prepared
            # statement (after 5 uses on a connection) spares planning this 7-table join
            # every time (measured: 1 ms instead of 4 to 5 ms a query).
            declare_on_connection(conn, WORKSPACE_WIDE)
        row = conn.execute(statements[(dialect, slug is not None)], params).first()
    if row is None or not row.admitted:
        return None, slug or (row.slug if row else None)
    if row.effective_policy:
        policy = Policy.from_json(row.effective_policy)
    else:  # not computed yet (a row from an older release): the chain says
        policy = org_policy(db.session.get(Organization, row.org_id))
    now = params["now"]
    attempt = session_attempt(row, row.org_id, row.connection_org_id, now, email=row.email)
    if violation(policy, attempt):
        return None, row.slug
    if policy.session_idle_timeout is not None and (
        row.last_seen_at is None or now - row.last_seen_at >= TOUCH_EVERY
    ):
        _touch(row.session_id, now)
    return row, row.slug


def _app_session(url: str | None) -> tuple[str, str] | None:
    """The session id and proof of the app-host cookie, when the proxied host is one."""
    credential = app_credential()
    host = _hostname(url)
    if not credential or host is None:
        return None
    session_id, _, proof = credential.partition(".")
    return (session_id, proof) if session_id and proof else None


@bp.route("/auth/check", methods=METHODS)
def check() -> Response:
    """200 with who the browser is in the request's org, or 401 with where to sign in."""
    url = original_url()
    slug = _mapped_org(url) or request.headers.get(ORG_HEADER, "").strip().lower() or None
    if slug is not None and not _SLUG.match(slug):
        return _denied(None, url)  # no org is named so: nothing to look up
    token = session_token()
    if token and token.startswith(SESSION_TOKEN_PREFIX + "_"):
        row, named = verdict(slug, url, digest=token_digest(token))
    elif (app := _app_session(url)) is not None:
        row, named = verdict(slug, url, session_id=app[0])
        # The cookie holds for the host it was made for, and only while the session lives.
        if row is not None and not hmac.compare_digest(
            app[1], host_binding(row.token_digest, _hostname(url) or "")
        ):
            row, named = None, slug
    else:
        return _denied(slug, url)
    if row is None:
        return _denied(named, url)
    response = Response(status=200)
    response.headers.update(
        {
            "X-Gatehouse-User": row.id,
            "X-Gatehouse-Email": _header_value(row.email or ""),
            "X-Gatehouse-Org": row.slug,
            "X-Gatehouse-Role": row.role,
            # Space-separated, as OAuth scopes: Gatehouse's and the app's (roles_version
            # keeps the org's roles per process until one of them changes).
            "X-Gatehouse-Permissions": " ".join(
                sorted(
                    cached_permissions(row.workspace_id, row.org_id, row.role, row.roles_version)
                )
            ),
            "Cache-Control": "no-store",
        }
    )
    return response


def _bad_url(url: str) -> bool:
    return not url or len(url) > 2000 or any(ord(c) < 0x21 or c == "\\" for c in url)


def _origin(parts: SplitResult, host: str) -> str:
    """``scheme://host[:port]`` rebuilt from the parsed parts, never a user-info ``@``."""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


@bp.get(START_PATH)
def start() -> Response:
    """Sign-in's way back to an app on its own domain: a one-time code, bound to this session
    and the app's host, sent to the host's callback; the sign-in page first if need be."""
    url = request.args.get("next", "")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        parts = None
    if _bad_url(url) or parts is None or parts.scheme not in ("http", "https"):
        raise BadRequest("unknown_host", "This is not an address Gatehouse signs in to")
    if not needs_callback(url):
        raise BadRequest("unknown_host", "This site is not one Gatehouse signs in to")
    state = request.args.get("state", "")
    if not _STATE.match(state):
        raise BadRequest("invalid_state", "This sign-in did not start at the site: open it again")
    slug, host = _mapped_org(url), (parts.hostname or "")
    token = session_token()
    row = None
    if token and token.startswith(SESSION_TOKEN_PREFIX + "_"):
        row, _ = verdict(slug, url, digest=token_digest(token))
    if row is None:  # not signed in, or not in a way this org lets pass: sign in for it
        again = f"{START_PATH}?{urlencode({'next': url, 'state': state})}"
        return _no_store(redirect(f"/login?{urlencode({'org': slug, 'next': again})}", code=303))
    code = issue_forward_code(db.session.get(Session, row.session_id), host, state)
    db.session.commit()
    query = urlencode({"code": code, "next": url})
    return _no_store(redirect(f"{_origin(parts, host)}{CALLBACK_PATH}?{query}", code=302))


def _app_host() -> tuple[str, str]:
    """The app's host name and scheme as the proxy forwarded the callback."""
    raw = request.headers.get("X-Forwarded-Host") or request.host
    proto = request.headers.get("X-Forwarded-Proto") or request.scheme
    try:
        host = urlsplit("//" + raw.split(",")[0].strip()).hostname or ""
    except ValueError:
        host = ""
    return host.lower(), proto.split(",")[0].strip().lower()


@bp.get("/auth/callback")
def callback() -> Response:
    """On the app's host (``CALLBACK_PATH``, through the proxy): trade the code for the
    app-host cookie and go on to ``next``, which must be on this same host."""
    host, proto = _app_host()
    if not host or not needs_callback(f"http://{host}/"):
        raise BadRequest("unknown_host", "This site is not one Gatehouse signs in to")
    session = redeem_forward_code(request.args.get("code", ""), host, presented_state())
    target = request.args.get("next", "")
    try:
        parts = urlsplit(target)
        same_host = parts.scheme in ("http", "https") and parts.hostname == host
    except ValueError:
        same_host = False
    if _bad_url(target) or not same_host:
        target = "/"  # this host's front page: never another site
    response = redirect(target, code=302)
    set_app_cookie(
        response,
        derive_app_credential(session, host),
        session.expires_at - utcnow(),
        secure=proto == "https",
    )
    clear_state_cookie(response, CALLBACK_PATH, secure=proto == "https")
    db.session.commit()
    return _no_store(response)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    # The code is in the callback's URL: it must not leave in a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.errorhandler(GatehouseError)
def error(exc: GatehouseError) -> Response:
    """A page naming what was refused (the stable code in ``X-Gatehouse-Error``)."""
    db.session.rollback()
    message = exc.message if exc.status < 500 else "Something went wrong on our side"
    response = page("Sign-in refused", "<p>{{ message }}</p>", exc.status, message=message)
    response.headers["X-Gatehouse-Error"] = exc.code
    return response
