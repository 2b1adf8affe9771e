"""The JSON admin API under ``/api/v1``, a thin layer over the domain services."""

from idp.admin import (  # noqa: F401
    api_keys,
    audit,
    authorize,
    clients,
    connections,
    domains,
    invitations,
    members,
    openapi,
    orgs,
    policies,
    resources,
    roles,
    setup_links,
    teams,
)
from idp.admin.api import bp

__all__ = ["bp"]
