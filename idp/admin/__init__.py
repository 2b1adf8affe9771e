"""The JSON admin API under ``/api/v1``, a thin layer over the domain services."""

from idp.admin import api_keys, audit, invitations, members, openapi, orgs, teams  # noqa: F401
from idp.admin.api import bp

__all__ = ["bp"]
