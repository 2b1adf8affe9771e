"""Setup links: a customer's IT admin connects the org's IdP, directory or domains alone."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.credentials import setup_links
from idp.credentials.models import SetupLink
from idp.orgs.roles import Permission


@operation(
    "/orgs/<slug>/setup-links",
    "POST",
    permission=Permission.OWNERS_MANAGE,
    body=s.SetupLinkCreate,
    response=s.SetupLinkCreated,
    status=201,
)
def create_setup_link(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Create a setup link; its URL is in this response only."""
    link, url = setup_links.create_setup_link(ctx.actor, ctx.org, **data)
    return {**s.SetupLinkOut().dump(link), "url": url}, 201


@operation(
    "/orgs/<slug>/setup-links",
    permission=Permission.OWNERS_MANAGE,
    response=s.SetupLinkOut,
    many=True,
)
def list_setup_links(ctx: Ctx) -> dict[str, Any]:
    """List the org's setup links (never the links themselves)."""
    return {"data": s.SetupLinkOut(many=True).dump(setup_links.list_setup_links(ctx.org.id))}


@operation(
    "/orgs/<slug>/setup-links/<link_id>",
    "DELETE",
    permission=Permission.OWNERS_MANAGE,
    response=s.SetupLinkOut,
)
def revoke_setup_link(ctx: Ctx, link_id: str) -> SetupLink:
    """Revoke a setup link: it opens nothing from now on."""
    link = setup_links.get_setup_link(ctx.org.id, link_id)
    return setup_links.revoke_setup_link(ctx.actor, ctx.org, link)
