"""Gunicorn settings for ``make run``; override any of them with GUNICORN_CMD_ARGS."""

import sys

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
# gunicorn's control socket is one path per user (~/.gunicorn/gunicorn.ctl) that every
# instance would fight over; Gatehouse is driven by signals and its CLI, not by gunicornc.
control_socket_disable = True
