"""WSGI entry point of the source tree: ``gunicorn wsgi:app`` (the package's is ``idp.wsgi``)."""

from idp.wsgi import app

__all__ = ["app"]
