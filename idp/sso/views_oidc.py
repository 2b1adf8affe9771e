"""OIDC routes of the SSO blueprint (the flow lands with its tests)."""

from __future__ import annotations

from idp.sso.views import bp  # noqa: F401
