"""The reference server (PyPI ``scim2-server``) as a WSGI app for ``gunicorn``: ``application``.

scim2-server has no module-level app, so this builds its test server's application: every
resource lives in this process's memory (run it with one worker), and only the bearer tokens
in ``SCIM_BEARER_TOKENS`` (comma-separated) are accepted.
"""

from __future__ import annotations

import os

from scim2_server.memory import InMemoryStorage
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import load_default_provider

application = BearerTokenApplication(
    InMemoryStorage(),
    load_default_provider(),
    bearer_tokens=[token for token in os.environ["SCIM_BEARER_TOKENS"].split(",") if token],
)
