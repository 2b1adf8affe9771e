"""Server-rendered pages over the domain services: the setup portal for a customer's IT admin
(and, beside it, the org console)."""

from idp.console import console, operator, org_pages, setup  # noqa: F401 - their routes register on bp
from idp.console.pages import bp

__all__ = ["bp"]
