"""OAuth clients: the apps that sign people in through Gatehouse (workspace keys)."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas as s
from idp.admin.api import Ctx, operation
from idp.oauth import services


@operation("/clients", scope="workspace", response=s.ClientOut, many=True)
def list_clients(ctx: Ctx) -> dict[str, Any]:
    """List the workspace's OAuth clients (never their secrets)."""
    return {"data": s.ClientOut(many=True).dump(services.list_clients(ctx.workspace_id))}


@operation(
    "/clients", "POST", scope="workspace", body=s.ClientCreate, response=s.ClientCreated, status=201
)
def create_client(ctx: Ctx, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Register an OAuth client; a confidential client's secret is in this response only."""
    client, secret = services.create_client(ctx.workspace_id, **data)
    body: dict[str, Any] = s.ClientOut().dump(client)
    if secret is not None:
        body["client_secret"] = secret
    return body, 201


@operation("/clients/<client_id>", "DELETE", scope="workspace")
def revoke_client(ctx: Ctx, client_id: str) -> None:
    """Revoke an OAuth client and every token issued to it."""
    services.revoke_client(ctx.workspace_id, client_id)
