"""Gunicorn settings, shipped with the package: ``gunicorn --config python:idp.gunicorn_conf
idp.wsgi:app`` (systemd, an installed wheel); ``make run`` reads them through the checkout's
``gunicorn.conf.py``. Override any of them with GUNICORN_CMD_ARGS."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from idp.config import ConfigError, bind_address

# GATEHOUSE_BIND_HOST and GATEHOUSE_PORT (127.0.0.1:8000): the same settings give the
# development issuer its default, so the CLI beside this server prints links to it.
try:
    bind = bind_address()
except ConfigError as error:
    # SystemExit passes gunicorn's config loader, which would print a traceback for it.
    sys.exit(f"gatehouse: {error}")
workers = 2
# No access log by default: URLs can carry one-time tokens (invitation links).
accesslog = None
errorlog = "-"
# gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl) that
# every instance would fight over: off, unless systemd gave this instance a runtime directory
# of its own (RuntimeDirectory=, docs/deploy/gatehouse.service), where the unit's reload
# (gunicornc) finds it.
_RUNTIME_DIRECTORY = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
if _RUNTIME_DIRECTORY:
    control_socket = os.path.join(_RUNTIME_DIRECTORY, "gunicorn.ctl")
else:
    control_socket_disable = True

# Prometheus multiprocess mode (prometheus_client): each worker writes its values to files
# in this directory and a scrape of /metrics on any worker sums them. It must be set before
# a worker imports prometheus_client, so here, in the master; an operator's own directory
# (PROMETHEUS_MULTIPROC_DIR) is emptied at start, as the client requires between runs.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gatehouse-metrics-")


def on_starting(server):
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """A dead worker's live gauges leave the sums (its counters stay, as they should)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


# JSON lines (GATEHOUSE_LOG_FORMAT, json by default in production) from gunicorn itself too,
# with the keys of Gatehouse's own lines; the app puts its handler on the root logger.
def _log_format():
    chosen = os.environ.get("GATEHOUSE_LOG_FORMAT", "").strip().lower()
    production = os.environ.get("GATEHOUSE_ENV", "production").strip() == "production"
    return chosen or ("json" if production else "text")


if _log_format() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
            # Any logging config turns gunicorn's access lines on; they stay off (see above).
            "gunicorn.access": {"level": "INFO", "handlers": ["null"], "propagate": False},
        },
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "null": {"class": "logging.NullHandler"},
        },
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
                "timestamp": True,
                "static_fields": {"request_id": None, "org": None, "actor": None, "event": None},
            }
        },
    }
