"""``make run``'s gunicorn settings: the package's own (idp/gunicorn_conf.py)."""

from idp.gunicorn_conf import *  # noqa: F403 - gunicorn reads this module's names
