"""Email domains of an organization: claim, list, verify by DNS TXT, remove."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.connections import domains as service
from idp.connections.models import Domain
from idp.orgs.roles import Permission


@operation(
    "/orgs/<slug>/domains", permission=Permission.CONNECTIONS_READ, response=s.DomainOut, many=True
)
def list_domains(ctx: Ctx) -> dict[str, Any]:
    """List the org's domains, pending and verified, with the TXT record each needs."""
    return {"data": s.DomainOut(many=True).dump(service.list_domains(ctx.org.id))}


@operation(
    "/orgs/<slug>/domains",
    "POST",
    permission=Permission.CONNECTIONS_WRITE,
    body=s.DomainClaim,
    response=s.DomainOut,
    status=201,
)
def claim_domain(ctx: Ctx, data: dict[str, Any]) -> Domain:
    """Claim a domain; publish the returned TXT record, then verify."""
    return service.claim_domain(ctx.actor, ctx.org, data["domain"])


@operation(
    "/orgs/<slug>/domains/<domain_id>/verify",
    "POST",
    permission=Permission.CONNECTIONS_WRITE,
    response=s.DomainOut,
    errors=("422",),
)
def verify_domain(ctx: Ctx, domain_id: str) -> Domain:
    """Look up the TXT record (at the domain or ``_gatehouse-challenge.<domain>``) and verify."""
    return service.verify_domain(ctx.actor, ctx.org, domain_id)


@operation("/orgs/<slug>/domains/<domain_id>", "DELETE", permission=Permission.CONNECTIONS_WRITE)
def remove_domain(ctx: Ctx, domain_id: str) -> None:
    """Remove a domain claim, verified or not."""
    service.remove_domain(ctx.actor, ctx.org, domain_id)
