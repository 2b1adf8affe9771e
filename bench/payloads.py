"""SCIM request bodies as identity providers send them; stdlib only, load processes import it."""

from __future__ import annotations

from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DOMAIN = "bench.example"
GIVEN = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
FAMILY = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")


def person(n: int) -> tuple[str, str]:
    """A given and a family name for the ``n``-th user (not unique; userNames are)."""
    return GIVEN[n % len(GIVEN)], FAMILY[(n // len(GIVEN)) % len(FAMILY)]


def okta_user_name(tag: str, n: int) -> str:
    """The userName (an email, as Okta's login is) of user ``n`` of ``tag``: unique per pair."""
    given, family = person(n)
    return f"{given}.{family}.{tag}.{n:07d}@{DOMAIN}".lower()


def okta_user(tag: str, n: int) -> dict[str, Any]:
    """Okta's create (tests/data/okta-create-user.json) for user ``n`` of batch ``tag``."""
    given, family = person(n)
    user_name = okta_user_name(tag, n)
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": f"00u{tag}{n:07d}",
        "groups": [],
        "password": f"pw-{n:07d}-not-stored",
        "active": True,
    }


def okta_group(display_name: str) -> dict[str, Any]:
    """Okta's group push: a name and no members (tests/data/okta-create-group.json)."""
    return {"schemas": [GROUP_SCHEMA], "displayName": display_name, "members": []}


def members_patch(op: str, ids: list[str] | None) -> dict[str, Any]:
    """A PATCH adding (``op="add"``) the users ``ids``, or removing all members (``ids`` None)."""
    operation: dict[str, Any] = {"op": op, "path": "members"}
    if ids is not None:
        operation["value"] = [{"value": i} for i in ids]
    return {"schemas": [PATCH_OP], "Operations": [operation]}
