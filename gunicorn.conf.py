"""Gunicorn settings for ``make run``; override any of them with GUNICORN_CMD_ARGS."""

bind = "127.0.0.1:8000"
workers = 2
# No access log by default: URLs can carry one-time tokens (invitation links).
accesslog = None
errorlog = "-"
