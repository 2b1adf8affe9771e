"""Request and response schemas of the admin API."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from idp.connections.domains import verification_record
from idp.connections.models import ConnectionKind, DomainStatus
from idp.db import db
from idp.orgs.invitations import current_status
from idp.orgs.models import InvitationKind, InvitationStatus, MembershipStatus
from idp.orgs.roles import PERMISSION_KEY, ROLE_KEY, Role
from idp.policies.registry import KEYS
from idp.resources.models import ResourceRole, ResourceType
from idp.resources.services import resource_ref, type_roles
from idp.sso.setup import public_settings


class JsonBoolean(fields.Boolean):
    """JSON's true or false only: not 0, 1 or "yes" (``0 == False`` in Python, so marshmallow's
    ``truthy``/``falsy`` sets cannot tell them apart)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def role_key(**kwargs: Any) -> fields.String:
    """A role's key: built-in (owner, admin, member) or a custom role of the org."""
    return fields.String(
        validate=validate.Regexp(ROLE_KEY, error="not a role key"),
        metadata={"description": "a role key: owner, admin, member or a custom role's"},
        **kwargs,
    )


class PageQuery(Schema):
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


# --- organizations ---------------------------------------------------------------------


class OrgCreate(Schema):
    slug = fields.String(required=True)
    name = fields.String(required=True)
    parent = fields.String(load_default=None, metadata={"description": "slug of the parent org"})
    member_cap = fields.Integer(strict=True, load_default=None)


class OrgUpdate(Schema):
    name = fields.String()
    member_cap = fields.Integer(strict=True)
    nested_teams = JsonBoolean(
        metadata={"description": "departments: teams nested in teams (default on)"},
    )


class OrgOut(Schema):
    id = fields.String()
    slug = fields.String()
    name = fields.String()
    parent_id = fields.String(allow_none=True)
    member_cap = fields.Integer()
    nested_teams = JsonBoolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class TransferOwnership(Schema):
    to_user_id = fields.String(required=True)
    from_user_id = fields.String(load_default=None)
    confirm = fields.String(required=True, metadata={"description": "the org's slug, repeated"})


# --- members ---------------------------------------------------------------------------


class MemberQuery(PageQuery):
    role = fields.String(load_default=None, metadata={"description": "comma-separated roles"})
    q = fields.String(load_default=None, validate=validate.Length(max=200))

    @validates_schema
    def check_roles(self, data: dict[str, Any], **_: Any) -> None:
        for value in filter(None, (data.get("role") or "").split(",")):
            if not ROLE_KEY.match(value):
                raise ValidationError(f"not a role key: {value!r}", "role")


class MemberAdd(Schema):
    email = fields.String(required=True)
    role = role_key(load_default=Role.MEMBER.value)
    name = fields.String(load_default=None)


class MemberUpdate(Schema):
    role = role_key()
    status = fields.Enum(MembershipStatus, by_value=True)


class MemberOut(Schema):
    user_id = fields.String()
    # What this org set (idp.people): never another org's name for the person.
    email = fields.Function(lambda m: m.email or m.user.email)
    name = fields.String(allow_none=True)
    role = role_key()
    status = fields.Enum(MembershipStatus, by_value=True)
    source = fields.Function(lambda m: m.source.value)
    joined_at = fields.DateTime(attribute="created_at")


# --- invitations -----------------------------------------------------------------------


class InvitationCreate(Schema):
    kind = fields.Enum(InvitationKind, by_value=True, load_default=InvitationKind.EMAIL)
    email = fields.String(load_default=None)
    role = role_key(load_default=None)
    team_ids = fields.List(fields.String(), load_default=list)
    expires_in = fields.Integer(
        strict=True, load_default=None, metadata={"description": "seconds (default 7 days)"}
    )
    max_uses = fields.Integer(strict=True, load_default=None)
    resource = fields.Nested(
        "ResourceRef",
        load_default=None,
        metadata={"description": "a tenant or project as the invitation's target"},
    )
    resource_role = fields.String(
        load_default=None, metadata={"description": "the role there (of the resource's type)"}
    )

    @validates_schema
    def check_kind(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("resource") is not None and data.get("role") is not None:
            raise ValidationError("an invitation to a resource names its resource_role", "role")
        if data["kind"] is InvitationKind.EMAIL:
            if not data.get("email"):
                raise ValidationError("an email invitation needs an email", "email")
            if data.get("max_uses") is not None:
                raise ValidationError("only link invitations have max_uses", "max_uses")
        else:
            if data.get("email"):
                raise ValidationError("a link invitation is not addressed to anyone", "email")
            if data.get("role") not in (None, Role.MEMBER):
                raise ValidationError("a link invitation always grants the member role", "role")
            if data.get("team_ids"):
                raise ValidationError("a link invitation does not assign teams", "team_ids")
            if data.get("resource") is not None:
                raise ValidationError("a link invitation is for the org", "resource")


class InvitationQuery(PageQuery):
    status = fields.Enum(InvitationStatus, by_value=True, load_default=None)


class InvitationOut(Schema):
    id = fields.String()
    kind = fields.Enum(InvitationKind, by_value=True)
    email = fields.String(allow_none=True)
    role = role_key()
    resource = fields.Function(lambda inv: resource_ref(inv.resource_id))
    resource_role = fields.Function(lambda inv: _resource_role_key(inv.resource_role_id))
    status = fields.Function(lambda inv: current_status(inv).value)
    team_ids = fields.List(fields.String())
    expires_at = fields.DateTime()
    max_uses = fields.Integer(allow_none=True)
    use_count = fields.Integer()
    invited_by = fields.String()
    created_at = fields.DateTime()


class InvitationCreated(InvitationOut):
    url = fields.String(metadata={"description": "the accept link, in this response only"})


class InvitationToken(Schema):
    token = fields.String(required=True)


class InvitationAccept(InvitationToken):
    email = fields.String(load_default=None)
    name = fields.String(load_default=None)


# --- teams -----------------------------------------------------------------------------


class TeamCreate(Schema):
    name = fields.String(required=True)
    parent_id = fields.String(load_default=None)


class TeamUpdate(Schema):
    name = fields.String()
    parent_id = fields.String(allow_none=True)


class TeamOut(Schema):
    id = fields.String()
    name = fields.String()
    parent_id = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    source = fields.Function(lambda t: t.source.value)
    created_at = fields.DateTime()


class TeamMemberAdd(Schema):
    user_id = fields.String(required=True)
    is_lead = JsonBoolean(load_default=False)


class TeamMemberUpdate(Schema):
    is_lead = JsonBoolean(required=True)


class TeamMemberOut(Schema):
    user_id = fields.Function(lambda tm: tm.membership.user_id)
    email = fields.Function(lambda tm: tm.membership.user.email)
    is_lead = JsonBoolean()
    added_at = fields.DateTime(attribute="created_at")


# --- audit -----------------------------------------------------------------------------


class AuditQuery(PageQuery):
    action = fields.String(load_default=None)
    actor = fields.String(load_default=None)
    since = fields.AwareDateTime(load_default=None, default_timezone=UTC)


class AuditExportQuery(Schema):
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "jsonl"]))
    action = fields.String(load_default=None)
    actor = fields.String(load_default=None)
    since = fields.AwareDateTime(load_default=None, default_timezone=UTC)


class AuditEventOut(Schema):
    id = fields.String()
    action = fields.String()
    actor = fields.Function(
        lambda e: {"type": e.actor_type, "id": e.actor_id, "label": e.actor_label}
    )
    target = fields.Function(lambda e: {"type": e.target_type, "id": e.target_id})
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)
    request_id = fields.String(allow_none=True)
    created_at = fields.DateTime()


# --- API keys --------------------------------------------------------------------------


class ApiKeyCreate(Schema):
    name = fields.String(required=True)
    role = role_key(load_default=Role.ADMIN.value)


class ApiKeyOut(Schema):
    id = fields.String()
    name = fields.String()
    org_id = fields.String(allow_none=True)
    role = role_key(allow_none=True)
    team_id = fields.String(allow_none=True, metadata={"description": "a team's own key"})
    hint = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class ApiKeyCreated(ApiKeyOut):
    key = fields.String(metadata={"description": "the key itself, in this response only"})


class TeamKeyCreate(Schema):
    name = fields.String(required=True)


class ScimTokenCreate(Schema):
    name = fields.String(load_default="scim")


class ScimTokenOut(Schema):
    id = fields.String()
    name = fields.String()
    hint = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class ScimTokenCreated(ScimTokenOut):
    token = fields.String(metadata={"description": "the token itself, in this response only"})
    scim_base_url = fields.String(metadata={"description": "the org's SCIM base URL"})


class SetupLinkCreate(Schema):
    intents = fields.List(
        fields.String(validate=validate.OneOf(["sso", "scim", "domains"])),
        required=True,
        validate=validate.Length(min=1, max=3),
    )
    expires_in = fields.Integer(
        strict=True,
        load_default=None,
        metadata={"description": "seconds, 300 to 30 days (default 72 hours)"},
    )


class SetupLinkOut(Schema):
    id = fields.String()
    intents = fields.List(fields.String())
    expires_at = fields.DateTime()
    created_by = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class SetupLinkCreated(SetupLinkOut):
    url = fields.String(metadata={"description": "the link, shown in this response only"})


class RoleMappingSet(Schema):
    group = fields.String(required=True, metadata={"description": "displayName or externalId"})
    role = role_key(required=True)  # with a resource: a role of the resource's type
    resource = fields.Nested(
        "ResourceRef",
        load_default=None,
        metadata={"description": "map to a role at this tenant or project, not org-wide"},
    )


class RoleMappingOut(Schema):
    id = fields.String()
    group = fields.String()
    role = role_key()
    resource = fields.Function(lambda mapping: resource_ref(mapping.resource_id))
    created_at = fields.DateTime()


# --- roles and the app's permissions --------------------------------------------------


def permission_list(**kwargs: Any) -> fields.List:
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=127)),
        validate=validate.Length(max=200),
        **kwargs,
    )


class RoleCreate(Schema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True)
    description = fields.String(load_default=None)
    permissions = permission_list(required=True)
    rank = fields.Integer(
        strict=True,
        load_default=None,
        metadata={
            "description": "where the role stands among the org's roles (1 to 299; Member is "
            "100, Admin 200, Owner 300; default 150): the higher of a member's hand-set and "
            "mapped roles wins"
        },
    )


class RoleUpdate(Schema):
    name = fields.String()
    description = fields.String(allow_none=True)
    permissions = permission_list()
    rank = fields.Integer(strict=True)


class RoleOut(Schema):
    key = fields.String()
    name = fields.String()
    description = fields.String()
    rank = fields.Integer()
    permissions = fields.Function(lambda r: sorted(r.permissions))
    builtin = fields.Function(lambda r: getattr(r, "is_builtin", False))
    org_id = fields.String(allow_none=True, metadata={"description": "null: workspace-wide"})
    holders = fields.Integer(
        metadata={"description": "members holding it (in the org, or in every org)"}
    )


class PermissionCreate(Schema):
    key = fields.String(
        required=True,
        validate=validate.Regexp(PERMISSION_KEY, error="a permission is <resource>:<action>"),
    )
    description = fields.String(load_default=None)
    granted_from = fields.Enum(
        Role,
        by_value=True,
        load_default=Role.OWNER,
        validate=validate.OneOf([Role.MEMBER, Role.ADMIN, Role.OWNER]),
        metadata={
            "description": "the lowest built-in role holding it (member, admin or owner; Owner "
            "holds all, a guest none)"
        },
    )


class PermissionOut(Schema):
    key = fields.String()
    description = fields.String()
    source = fields.String(metadata={"description": "gatehouse or app"})
    granted_from = fields.String(allow_none=True)


# --- scopes below the org: resource types, resources, grants --------------------------


class ResourceTypeRole(Schema):
    key = fields.String(required=True)
    name = fields.String(load_default=None)
    permissions = permission_list(required=True)


class ResourceTypeCreate(Schema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(load_default=None)
    parent = fields.String(load_default=None, metadata={"description": "the parent type's key"})
    roles = fields.List(fields.Nested(ResourceTypeRole), required=True)
    invite_outsiders = JsonBoolean(
        load_default=False,
        metadata={"description": "people outside the org may be invited to one (as guests)"},
    )


class ResourceRef(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    id = fields.String(required=True, validate=validate.Length(min=1, max=255))


class ResourceCreate(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    name = fields.String(load_default=None)
    parent = fields.Nested(ResourceRef, load_default=None)


class ResourceUpdate(Schema):
    name = fields.String(allow_none=True)
    parent = fields.Nested(ResourceRef, allow_none=True)


class ResourceQuery(PageQuery):
    type = fields.String(load_default=None)


class ResourceGrantSet(Schema):
    user_id = fields.String(load_default=None)
    team_id = fields.String(load_default=None)
    role = fields.String(required=True, validate=validate.Length(min=1, max=64))


class ResourceOut(Schema):
    type = fields.Function(lambda r: _type_key(r.type_id))
    id = fields.String(attribute="external_id")
    name = fields.String(allow_none=True)
    parent = fields.Function(lambda r: resource_ref(r.parent_id))
    created_at = fields.DateTime()


def _type_key(type_id: str) -> str:
    kind = db.session.get(ResourceType, type_id)  # identity-mapped after the first
    return kind.key if kind else ""


def _resource_role_key(role_id: str | None) -> str | None:
    found = db.session.get(ResourceRole, role_id) if role_id else None
    return found.key if found else None


class ResourceTypeOut(Schema):
    key = fields.String()
    name = fields.String()
    parent = fields.Function(lambda t: _type_key(t.parent_id) if t.parent_id else None)
    invite_outsiders = JsonBoolean()
    roles = fields.Function(
        lambda t: [
            {"key": r.key, "name": r.name, "permissions": sorted(r.permissions)}
            for r in type_roles(t.id)
        ]
    )


class ResourceGrantOut(Schema):
    user_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    role = fields.String()
    mapping_id = fields.String(
        allow_none=True,
        metadata={"description": "given by this role mapping of a group the member is in"},
    )


class ResourceLookup(PageQuery):
    user_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    org = fields.String(required=True, validate=validate.Length(min=1, max=63))
    permission = fields.String(required=True, validate=validate.Length(min=1, max=127))
    type = fields.String(required=True, validate=validate.Length(min=1, max=64))


# --- domains ---------------------------------------------------------------------------


class DomainClaim(Schema):
    domain = fields.String(
        required=True, metadata={"description": "e.g. example.com; IDNs are stored IDNA-encoded"}
    )


class DomainOut(Schema):
    id = fields.String()
    domain = fields.String()
    status = fields.Enum(DomainStatus, by_value=True)
    verification = fields.Function(
        verification_record,
        metadata={"description": "the TXT record to publish (type, name, value)"},
    )
    verified_at = fields.DateTime(allow_none=True)
    last_checked_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class _ConnectionCreateBase(Schema):
    name = fields.String(required=True)
    preset = fields.String(load_default="generic")
    jit = JsonBoolean(load_default=True, metadata={"description": "provision on first login"})


class OidcConnectionCreate(_ConnectionCreateBase):
    """An OIDC connection; without issuer and client, a draft."""

    kind = fields.String(required=True, validate=validate.OneOf(["oidc"]))
    issuer = fields.String(metadata={"description": "the issuer, discovered now"})
    client_id = fields.String()
    client_secret = fields.String(load_only=True, metadata={"description": "stored encrypted"})
    scopes = fields.List(fields.String())


class SamlConnectionCreate(_ConnectionCreateBase):
    """A SAML connection, from metadata or by hand; without either, a draft."""

    kind = fields.String(required=True, validate=validate.OneOf(["saml"]))
    metadata_xml = fields.String(metadata={"description": "the IdP's metadata"})
    metadata_url = fields.String(metadata={"description": "or where to fetch it (https)"})
    idp_entity_id = fields.String()
    sso_url = fields.String()
    idp_certs = fields.List(fields.String(), metadata={"description": "PEM; several for rollover"})
    authn_request_binding = fields.String(
        load_default="redirect", validate=validate.OneOf(["redirect", "post"])
    )
    allow_idp_initiated = JsonBoolean(load_default=False)


class ConnectionCreate(Schema):
    """One of the kinds' schemas, chosen by ``kind`` (the document's ``oneOf``)."""

    KINDS: dict[str, type[Schema]] = {"oidc": OidcConnectionCreate, "saml": SamlConnectionCreate}

    def load(self, data: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kind = data.get("kind") if isinstance(data, dict) else None
        schema = self.KINDS.get(kind) if isinstance(kind, str) else None
        if schema is None:
            raise ValidationError({"kind": [f"Must be one of: {', '.join(self.KINDS)}."]})
        return schema().load(data, **kwargs)


class ConnectionUpdate(Schema):
    name = fields.String()
    enabled = JsonBoolean(metadata={"description": "a draft cannot be enabled"})
    jit = JsonBoolean()
    # The IdP's values: they turn a draft into a connection that can be enabled.
    issuer = fields.String(metadata={"description": "OIDC: discovered again"})
    client_id = fields.String()
    scopes = fields.List(fields.String(), metadata={"description": "OIDC: openid is always asked"})
    claims = fields.Dict(
        metadata={"description": "OIDC: where subject, email, name, groups, external_id are read"}
    )
    metadata_xml = fields.String(metadata={"description": "SAML: the IdP's metadata"})
    metadata_url = fields.String(metadata={"description": "SAML: or where to fetch it (https)"})
    idp_entity_id = fields.String()
    sso_url = fields.String()
    attribute_map = fields.Dict(
        metadata={"description": "SAML: attribute names for email, name, groups, ..."}
    )
    trust_email = JsonBoolean(
        metadata={"description": "count the IdP's emails as proven for this org (owners only)"}
    )
    client_secret = fields.String(load_only=True)
    allow_idp_initiated = JsonBoolean()
    idp_certs = fields.List(fields.String(), metadata={"description": "SAML: replaces the list"})
    mfa_values = fields.List(
        fields.String(validate=validate.Length(min=1, max=200)),
        validate=validate.Length(max=20),
        metadata={
            "description": "acr / AuthnContextClassRef values that mean MFA at this IdP "
            "(workspace keys only: it decides whether mfa_required is met)"
        },
    )
    mfa_request = fields.List(
        fields.String(validate=validate.Length(min=1, max=200)),
        validate=validate.Length(max=20),
        allow_none=True,
        metadata={
            "description": "what to ask for when MFA is required (OIDC acr_values, SAML "
            "RequestedAuthnContext); null: the preset's; []: nothing"
        },
    )


class ConnectionOut(Schema):
    id = fields.String()
    kind = fields.Enum(ConnectionKind, by_value=True)
    name = fields.String()
    preset = fields.String()
    enabled = JsonBoolean()
    draft = JsonBoolean(metadata={"description": "waiting for the IdP's values"})
    settings = fields.Function(
        public_settings, metadata={"description": "the connection's public configuration"}
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class OidcConnectionOut(ConnectionOut):
    kind = fields.String(validate=validate.OneOf(["oidc"]))


class SamlConnectionOut(ConnectionOut):
    kind = fields.String(validate=validate.OneOf(["saml"]))


# The document describes a connection as one of its kinds (``oneOf`` on ``kind``).
ConnectionOut.KINDS = {"oidc": OidcConnectionOut, "saml": SamlConnectionOut}  # type: ignore[attr-defined]


# --- authorization ---------------------------------------------------------------------

MAX_AUTHORIZE_CHECKS = 100


class AuthorizeCheck(Schema):
    user_id = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    team_id = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "decide for a team (its own API key acts with its grants)"},
    )
    org = fields.String(
        required=True, validate=validate.Length(min=1, max=63), metadata={"description": "slug"}
    )
    permission = fields.String(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "`<resource>:<action>`; an unknown one is denied"},
    )
    resource = fields.Nested(
        ResourceRef,
        load_default=None,
        metadata={"description": "decide on this resource of the org (and what holds it)"},
    )

    @validates_schema
    def one_principal(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("user_id") is None) == (data.get("team_id") is None):
            raise ValidationError("name either user_id or team_id", "user_id")


class AuthorizeBatch(Schema):
    checks = fields.List(
        fields.Nested(AuthorizeCheck),
        required=True,
        validate=validate.Length(max=MAX_AUTHORIZE_CHECKS),
    )


class AuthorizeOut(Schema):
    allowed = JsonBoolean()
    role = fields.String(allow_none=True)
    scope = fields.Dict(
        allow_none=True,
        metadata={"description": "the resource whose role granted it (null: the org role)"},
    )
    reason = fields.String(
        metadata={
            "description": "granted, not_a_member, member_suspended, permission_not_in_role, "
            "unknown_permission or unknown_resource"
        }
    )


class AuthorizeBatchOut(Schema):
    results = fields.List(fields.Nested(AuthorizeOut))


# --- OAuth clients (the apps signing people in through Gatehouse) ----------------------


class ClientCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    redirect_uris = fields.List(
        fields.String(validate=validate.Length(max=2000)),
        required=True,
        validate=validate.Length(min=1, max=20),
    )
    post_logout_redirect_uris = fields.List(
        fields.String(validate=validate.Length(max=2000)),
        load_default=list,
        validate=validate.Length(max=20),
    )
    is_public = JsonBoolean(load_default=False)
    first_party = JsonBoolean(load_default=True)
    id_token_alg = fields.String(load_default="RS256", validate=validate.OneOf(["RS256", "ES256"]))
    initiate_login_uri = fields.String(
        load_default=None,
        validate=validate.Length(max=2000),
        metadata={"description": "where a person signed in at Gatehouse itself is sent"},
    )


class ClientOut(Schema):
    id = fields.String()
    client_id = fields.String()
    name = fields.String()
    redirect_uris = fields.List(fields.String())
    post_logout_redirect_uris = fields.List(fields.String())
    is_public = JsonBoolean()
    first_party = JsonBoolean()
    id_token_alg = fields.String(attribute="id_token_signed_response_alg")
    initiate_login_uri = fields.String(allow_none=True)
    created_at = fields.DateTime()


# --- policies --------------------------------------------------------------------------


# Policy keys and their values: any key of the registry, whose values it then validates.
PolicyDocument = Schema.from_dict(
    {
        name: fields.Raw(allow_none=True, metadata={"description": key.description})
        for name, key in KEYS.items()
    },
    name="PolicyDocument",
)


# What the policy operations answer: the document (keys and values, with what each one
# resolves to, and whom a change affects) is shaped by the registry's keys, not fixed here.
POLICY_ANSWER: dict[str, Any] = {
    "type": "object",
    "description": "the policy and, for a change, whom it affects (see the operation)",
}


class PolicyQuery(Schema):
    dry_run = fields.Boolean(load_default=False)


class EffectivePolicyQuery(Schema):
    explain = fields.Boolean(load_default=False)


class PolicyClearQuery(PolicyQuery):
    keys = fields.String(load_default=None, metadata={"description": "comma-separated keys"})


class ClientCreated(ClientOut):
    client_secret = fields.String(
        metadata={"description": "a confidential client's secret, in this response only"}
    )
