"""The composition root: ``create_app`` builds the app and registers every blueprint."""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, g, jsonify, request
from werkzeug.exceptions import HTTPException

from idp import edge, mail, observability, ratelimit
from idp.config import ConfigError, Settings, load_settings
from idp.db import db, install_row_security
from idp.extensions import migrate, render_migration_item

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
# A wheel carries the migrations inside the package (build_hooks.py copies them there); a
# source checkout, or an editable install of one, keeps them at the top of the tree.
IS_INSTALLED = (PACKAGE_DIR / "migrations").is_dir()
MIGRATIONS_DIR = PACKAGE_DIR / "migrations" if IS_INSTALLED else PROJECT_ROOT / "migrations"
# The instance folder (SQLite file, development keys) when GATEHOUSE_INSTANCE_PATH is unset:
# the checkout's instance/, or, installed, Flask's place for an installed app beside (never
# inside) site-packages: <prefix>/var/gatehouse-instance, the virtualenv's own var/.
DEFAULT_INSTANCE_PATH = (
    Path(sys.prefix) / "var" / "gatehouse-instance" if IS_INSTALLED else PROJECT_ROOT / "instance"
)
MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(config: Mapping[str, Any] | Settings | None = None) -> Flask:
    """Build the app from ``GATEHOUSE_*`` variables, with ``config`` overriding them."""
    settings = (
        config
        if isinstance(config, Settings)
        else load_settings(config, default_instance_path=str(DEFAULT_INSTANCE_PATH))
    )
    app = Flask(__name__, instance_path=settings.instance_path)
    try:
        Path(settings.instance_path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"GATEHOUSE_INSTANCE_PATH: cannot create {settings.instance_path} "
            f"({exc.strerror}); set it to a folder this user may write"
        ) from None
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        # hide_parameters: statement values (emails, digests) stay out of errors and logs.
        # A ping before each checkout finds server connections that died; a SQLite file has
        # none, and the hot paths (forward-auth) would pay a round trip for nothing.
        SQLALCHEMY_ENGINE_OPTIONS={
            "pool_pre_ping": not settings.database_url.startswith("sqlite"),
            "hide_parameters": True,
            "pool_size": settings.database_pool_size,
            "max_overflow": settings.database_max_overflow,
        },
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        # Flask's own (signed) session holds only the pages' CSRF secret (Flask-WTF).
        SESSION_COOKIE_NAME="gatehouse_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.issuer.startswith("https://"),
        TESTING=settings.env == "testing",
        JSON_SORT_KEYS=False,
    )
    app.extensions["gatehouse.settings"] = settings

    db.init_app(app)
    # First: its after-request hook then runs after every other, timing the whole answer.
    observability.init_app(app, settings)
    migrate.init_app(
        app,
        db,
        directory=str(MIGRATIONS_DIR),
        render_as_batch=True,
        compare_type=True,
        render_item=render_migration_item,
    )
    mail.init_app(app, settings)
    install_row_security(app)
    ratelimit.init_app(app, settings)
    _install_request_id(app)
    edge.init_app(app)  # CSRF wall, security headers, CORS: every request and response
    _install_error_handlers(app)

    from idp import health
    from idp.admin import bp as admin_bp
    from idp.console import bp as console_bp
    from idp.console.pages import render_error_page
    from idp.login.forward_auth import bp as forward_auth_bp
    from idp.login.views import bp as login_bp
    from idp.oauth.views import install as install_oauth
    from idp.sso import views_oidc, views_saml  # noqa: F401 - their routes register on sso.bp
    from idp.sso.views import bp as sso_bp
    from scim import init_app as init_scim

    app.register_blueprint(health.bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(sso_bp)
    app.register_blueprint(login_bp)
    app.register_blueprint(forward_auth_bp)
    app.register_blueprint(console_bp)
    register_error_renderer(app, "/setup", render_error_page)
    register_error_renderer(app, "/console", render_error_page)
    install_oauth(app)
    init_scim(app)

    from idp.cli import register_commands

    register_commands(app)
    return app


def _install_request_id(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
        if "\x00" in request.path:
            abort(404)  # no resource is named with a NUL, and no database could look one up

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response


ErrorRenderer = Callable[[int, str], Response]


def register_error_renderer(app: Flask, prefix: str, render: ErrorRenderer) -> None:
    """Let a surface (SCIM) answer errors under its URL prefix in its own format."""
    app.extensions.setdefault("gatehouse.error_renderers", []).append((prefix, render))


def _render_error(app: Flask, status: int, code: str, message: str) -> Response:
    for prefix, render in app.extensions.get("gatehouse.error_renderers", []):
        if request.path.startswith(prefix):
            return render(status, message)
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def _install_error_handlers(app: Flask) -> None:
    """HTTP errors outside a blueprint's own handler (unknown URL, wrong method), and crashes.

    JSON by default; a 5xx body never carries exception text.
    """

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        response = _render_error(app, exc.code or 500, code, exc.description or exc.name)
        valid = getattr(exc, "valid_methods", None)
        if exc.code == 405 and valid:
            response.headers["Allow"] = ", ".join(valid)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error (request %s)", g.get("request_id"))
        return _render_error(app, 500, "internal_error", "Something went wrong on our side")
