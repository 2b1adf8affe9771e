"""WSGI entry point of the installed package: ``gunicorn idp.wsgi:app``."""

from idp import create_app

app = create_app()
