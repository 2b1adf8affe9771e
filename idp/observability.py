"""Metrics, logs and traces: ``/metrics`` (Prometheus), JSON log lines, OpenTelemetry.

- ``/metrics`` speaks the Prometheus text format. Under gunicorn every worker writes its
  values to ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn.conf.py sets it) and a scrape sums them.
  It is closed unless ``GATEHOUSE_METRICS_TOKEN`` (a bearer token, compared in constant
  time) or ``GATEHOUSE_METRICS_ALLOW`` (client networks) opens it: route names and counts
  say what a deployment serves, and a loopback default would open it to the world behind
  a reverse proxy on the same host (every request would come from 127.0.0.1).
- Logs: one JSON object per line (``GATEHOUSE_LOG_FORMAT=json``, production's default) with
  timestamp, level, logger, message, request_id, org, actor and event.
- Traces: only when OpenTelemetry's own variables ask for them (``OTEL_TRACES_EXPORTER``,
  ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); otherwise
  nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import sys
import time
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    jsonify,
    request,
)
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from pythonjsonlogger.json import JsonFormatter

from idp import telemetry
from idp.config import ConfigError, Settings, parse_networks

bp = Blueprint("observability", __name__)
EXTENSION = "gatehouse.observability"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The methods a route label is kept for; anything else is counted as OTHER.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CONTEXT_FIELDS = ("request_id", "org", "actor", "event")


class LogFormatter(JsonFormatter):
    """python-json-logger's formatter with the fields every Gatehouse line carries."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        for name in _CONTEXT_FIELDS:
            log_data.setdefault(name, None)
        if log_data["request_id"] is None and has_request_context():
            log_data["request_id"] = g.get("request_id")


def log_format(settings: Settings) -> str:
    """``json`` or ``text``: as set, else JSON in production and text elsewhere."""
    return settings.log_format or ("json" if settings.is_production else "text")


def log_handler(settings: Settings, stream: Any = None) -> logging.Handler:
    """A handler writing Gatehouse's lines in the configured format (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format(settings) == "json":
        handler.setFormatter(LogFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def init_app(app: Flask, settings: Settings) -> None:
    """Logging first (before anything logs), then request metrics, ``/metrics`` and tracing."""
    root = logging.getLogger()
    # Someone configured logging already (a test runner, an embedding app): theirs stands.
    if not app.debug and not root.handlers:
        root.addHandler(log_handler(settings))
        root.setLevel(logging.INFO)
    networks = parse_networks("METRICS_ALLOW", settings.metrics_allow)
    app.extensions[EXTENSION] = {"token": settings.metrics_token, "networks": networks}
    app.before_request(_start_timer)
    app.after_request(_count_request)
    app.register_blueprint(bp)
    if tracing_requested(os.environ):
        _install_tracing(app)


# --- request metrics ------------------------------------------------------------------------


def _start_timer() -> None:
    g.observability_started = time.perf_counter()


def _count_request(response: Response) -> Response:
    started = g.pop("observability_started", None)
    if started is not None:
        method = request.method if request.method in _METHODS else "OTHER"
        # The URL rule, never the path: a path holds ids, slugs and sometimes tokens.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        telemetry.http_request(method, route, response.status_code, time.perf_counter() - started)
    return response


# --- /metrics ----------------------------------------------------------------------------


def _allowed() -> bool:
    """The bearer token, or a client in the allowed networks: either one opens."""
    access = current_app.extensions[EXTENSION]
    token = access["token"]
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return True
    if access["networks"]:
        try:
            client = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            return False
        return any(client in network for network in access["networks"])
    return False


@bp.get("/metrics")
def metrics() -> Response:
    """Every counter and histogram of this deployment's processes, in Prometheus text format."""
    if not _allowed():
        has_token = bool(current_app.extensions[EXTENSION]["token"])
        refusal = jsonify(
            error="unauthorized" if has_token else "forbidden",
            message="Metrics need the bearer token of GATEHOUSE_METRICS_TOKEN"
            if has_token
            else "Metrics are closed: set GATEHOUSE_METRICS_TOKEN or GATEHOUSE_METRICS_ALLOW",
        )
        refusal.status_code = 401 if has_token else 403
        if has_token:
            refusal.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refusal
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    response = Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- tracing ------------------------------------------------------------------------------

_OTEL_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def tracing_requested(environ: Any) -> bool:
    """Whether OpenTelemetry's standard variables ask for traces (and the SDK is not off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _OTEL_VARIABLES)


def _install_tracing(app: Flask) -> None:
    """A tracer provider for this app, its exporter chosen by ``OTEL_TRACES_EXPORTER``
    (``otlp``, the default, over HTTP/protobuf; or ``console``), a span per request.
    """
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    # OTEL_RESOURCE_ATTRIBUTES is read by Resource.create too.
    service = os.environ.get("OTEL_SERVICE_NAME", "").strip() or "gatehouse"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    for name in (part.strip() for part in names.split(",")):
        if name == "console":
            exporter: Any = ConsoleSpanExporter()
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            raise ConfigError(f"OTEL_TRACES_EXPORTER: {name!r} is not otlp or console")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    # Spans per request; opentelemetry-instrumentation-sqlalchemy does not support
    # SQLAlchemy 2.1 yet, so queries are not spans of their own.
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    app.extensions["gatehouse.tracer_provider"] = provider
