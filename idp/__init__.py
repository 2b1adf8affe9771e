"""Gatehouse: an identity sidecar for multi-tenant applications."""

from idp.app import create_app

__all__ = ["create_app"]
