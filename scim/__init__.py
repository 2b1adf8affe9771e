"""SCIM 2.0 service provider (RFC 7643 / RFC 7644), one per organization.

Mounted at ``/scim/v2/<org_slug>``; each org's IdP authenticates with that org's token.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from idp.app import register_error_renderer
    from scim import discovery, groups, users  # noqa: F401 - they register the routes
    from scim.api import PREFIX, bp, render_http_error

    app.register_blueprint(bp)
    register_error_renderer(app, PREFIX, render_http_error)
