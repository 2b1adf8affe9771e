"""Who performs an action: passed explicitly to every service that changes state."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from idp.orgs.roles import BUILTIN_ROLES, OWNER, TEAM_SCOPE, Decision, Role, RoleDef, decide


class ActorKind(StrEnum):
    USER = "user"
    API_KEY = "api_key"
    SCIM_TOKEN = "scim_token"  # noqa: S105 - a kind of actor, not a secret
    CONNECTION = "connection"  # an org's IdP, provisioning just in time at sign-in
    SETUP_LINK = "setup_link"  # a customer's IT admin, holding a setup link of the org
    OPERATOR = "operator"  # a person of the SaaS team, in the console's operator pages
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Actor:
    """A principal and the authority it holds in the org being acted on.

    ``role`` is the actor's role in that org (``None``: no access). Workspace-wide principals
    (the CLI, workspace API keys) hold owner authority in every org; ``user_id`` is set when
    the actor is a person.
    """

    kind: ActorKind
    id: str | None
    label: str
    role: RoleDef | None = None  # a built-in Role given here is read as its RoleDef
    user_id: str | None = None
    org_id: str | None = None
    request_id: str | None = None
    workspace_id: str | None = None
    team_id: str | None = None  # a team's own API key: it acts on that team only

    def __post_init__(self) -> None:
        if isinstance(self.role, Role):  # a built-in role named by its key
            object.__setattr__(self, "role", BUILTIN_ROLES[self.role.value])

    @property
    def is_workspace(self) -> bool:
        return self.kind in (ActorKind.SYSTEM, ActorKind.OPERATOR) or (
            self.kind is ActorKind.API_KEY and self.org_id is None
        )

    def authority_in(self, org_id: str) -> RoleDef | None:
        """The role a credential acts with in ``org_id``: owner for workspace-wide ones."""
        if self.is_workspace:
            return OWNER
        if (
            self.kind in (ActorKind.API_KEY, ActorKind.SCIM_TOKEN, ActorKind.SETUP_LINK)
            and self.org_id == org_id
        ):
            return self.role  # None for a team's key: it holds nothing org-wide
        return None

    def authority_on_team(self, org_id: str, team_id: str) -> RoleDef | None:
        """The role a team's own key acts with on that team (``TEAM_SCOPE``); else none."""
        if self.kind is ActorKind.API_KEY and self.org_id == org_id and self.team_id == team_id:
            return TEAM_SCOPE
        return None

    def can(self, permission: str) -> Decision:
        return decide(self.role, permission)

    @property
    def permissions(self) -> frozenset[str]:
        return self.role.permissions if self.role else frozenset()

    def in_org(self, role: RoleDef | Role | None) -> Actor:
        return replace(self, role=role)


def system_actor(label: str = "cli", request_id: str | None = None) -> Actor:
    """The operator at the console: workspace authority."""
    return Actor(ActorKind.SYSTEM, None, label, role=OWNER, request_id=request_id)


def anonymous_actor(request_id: str | None = None) -> Actor:
    """A caller who proves nothing but possession of a one-time token (invitation accept)."""
    return Actor(ActorKind.ANONYMOUS, None, "anonymous", request_id=request_id)
