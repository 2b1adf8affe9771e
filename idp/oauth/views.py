"""The OIDC provider's endpoints: discovery, JWKS, authorize, token, userinfo, revocation,
introspection, RP-initiated logout. Protocol work is authlib's (``server.py``)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Response, current_app, g, jsonify, redirect, request
from sqlalchemy import select

from idp.actors import Actor, ActorKind
from idp.apps.models import Consent, OAuthClient, SigningAlg
from idp.audit.services import record_org_event
from idp.config import current_settings
from idp.db import db, declare_workspace_wide, finish_request, utcnow
from idp.errors import GatehouseError
from idp.login.cookies import clear_session_cookie, session_token
from idp.login.pages import page
from idp.oauth import keys
from idp.oauth.claims import CLAIMS_SUPPORTED, SCOPES, Principal, user_claims
from idp.oauth.server import authorization_server
from idp.oauth.services import find_by_jti, find_client, live_principal
from idp.orgs.models import Organization
from idp.people.signin import admission, reachable_memberships
from idp.ratelimit import (
    Credential,
    RateLimited,
    check_credential,
    check_throughput,
    count_throughput,
    fail_credential,
)
from idp.sessions.models import Session
from idp.sessions.services import (
    find_live_session,
    move_session,
    revoke_session,
    session_violation,
    touch_session,
)

bp = Blueprint("oauth", __name__)

AUTHORIZE_PATH = "/oauth/authorize"
AUTH_AFTER = "gh_auth_after"  # set by Gatehouse: a sign-in after this time is fresh enough
DENIED = "gh_denied"  # set by the consent form when the person says no
_ALWAYS_COMMIT = {"/oauth/token", "/oauth/revoke", "/oauth/introspect"}


@bp.before_request
def start_workspace_wide() -> None:
    """Row-level security: the provider serves a person and an app across orgs (the org is
    chosen at the authorization, codes and tokens are found by their digest)."""
    declare_workspace_wide()


@bp.after_request
def commit(response: Response) -> Response:
    """Commit once; the token endpoints also keep what their refusals did (a replayed code or
    refresh token revokes its family even though the request itself is refused)."""
    if request.path in _ALWAYS_COMMIT and response.status_code < 500:
        db.session.commit()
        return response
    return finish_request(response, lambda: Response(status=409))


@bp.errorhandler(GatehouseError)
def error(exc: GatehouseError) -> Response:
    db.session.rollback()
    message = exc.message if exc.status < 500 else "Something went wrong on our side"
    return page("Something is not right", "<p>{{ message }}</p>", exc.status, message=message)


def _url(path: str) -> str:
    return current_settings().issuer + path


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    """OpenID Connect Discovery 1.0 §3; RFC 8414 fields for revocation and introspection."""
    issuer = current_settings().issuer
    body = {
        "issuer": issuer,
        "authorization_endpoint": _url(AUTHORIZE_PATH),
        "token_endpoint": _url("/oauth/token"),
        "userinfo_endpoint": _url("/oauth/userinfo"),
        "jwks_uri": _url("/jwks"),
        "revocation_endpoint": _url("/oauth/revoke"),
        "introspection_endpoint": _url("/oauth/introspect"),
        "end_session_endpoint": _url("/oauth/logout"),
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [a.value for a in SigningAlg],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "claims_parameter_supported": False,
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/jwks")
def jwks() -> Response:
    """The public signing keys (RFC 7517 §5), retired ones until their tokens expire."""
    response = jsonify(keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.post("/oauth/token")
def token() -> Response:
    """RFC 6749 §3.2: authorization_code and refresh_token grants only."""
    return _limited(authorization_server().create_token_response, per_client=True)


@bp.post("/oauth/revoke")
def revoke() -> Response:
    """RFC 7009."""
    return _limited(lambda: authorization_server().create_endpoint_response("revocation"))


@bp.post("/oauth/introspect")
def introspect() -> Response:
    """RFC 7662."""
    return _limited(lambda: authorization_server().create_endpoint_response("introspection"))


def _presented_client_id() -> str:
    """The client_id of HTTP Basic (RFC 6749 §2.3.1) or of the form body."""
    basic = request.authorization
    if basic is not None and basic.type == "basic" and basic.username:
        return basic.username
    return request.form.get("client_id", "")


def _limited(respond: Any, *, per_client: bool = False) -> Response:
    """Client authentication's failures per client_id and per IP, and (the token endpoint)
    each client's requests, around authlib's endpoint."""
    client_id = _presented_client_id()
    try:
        check_credential(Credential.OAUTH_CLIENT, client_id)
        if per_client and client_id:
            check_throughput("token_requests", client_id)
    except RateLimited as exc:
        # RFC 6749 §5.2's shape; temporarily_unavailable is the registered code for a server
        # that cannot take the request now (§4.1.2.1); 429 and Retry-After: RFC 6585 §4.
        response = jsonify(error="temporarily_unavailable", error_description=exc.message)
        response.status_code = 429
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response
    response = respond()
    if (response.get_json(silent=True) or {}).get("error") == "invalid_client":
        fail_credential(Credential.OAUTH_CLIENT, client_id)
    elif per_client and client_id:
        count_throughput("token_requests", client_id)
    return response


# --- userinfo ---------------------------------------------------------------------------


def _bearer_principal() -> tuple[Principal, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    claims = keys.verify(value.strip())
    if claims is None or not isinstance(claims.get("jti"), str):
        return None
    row = find_by_jti(claims["jti"])
    if row is None or row.access_expires_at <= utcnow():
        return None
    principal = live_principal(row)
    return (principal, row.scope) if principal is not None else None


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """OIDC Core §5.3: the claims of the token's person in the token's org."""
    found = _bearer_principal()
    if found is None:
        response = jsonify(error="invalid_token", error_description="The access token is invalid")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    else:
        principal, scope = found
        response = jsonify(user_claims(principal, scope))
    response.headers["Cache-Control"] = "no-store"
    return response


# --- authorize ----------------------------------------------------------------------------


def _authorize_url(**changes: str | None) -> str:
    params = {k: v for k, v in request.args.items()}
    params.update(changes)
    return AUTHORIZE_PATH + "?" + urlencode({k: v for k, v in params.items() if v is not None})


def _to_login(**query: str) -> Response:
    return redirect("/login?" + urlencode(query), code=302)


def _with_iss(response: Response) -> Response:
    """RFC 9207: the issuer on every authorization response sent to the client."""
    location = response.headers.get("Location")
    if location and response.status_code in (302, 303):
        response.headers["Location"] = add_params_to_uri(
            location, [("iss", current_settings().issuer)]
        )
    return response


def _error(exc: OAuth2Error, state: str | None = None) -> Response:
    """To the client when its redirect URI is verified; else a page, never a redirect."""
    if exc.redirect_uri:
        params = [("error", exc.error)]
        if exc.description:
            params.append(("error_description", exc.description))
        if state or exc.state:
            params.append(("state", state or exc.state))
        params.append(("iss", current_settings().issuer))
        return redirect(add_params_to_uri(exc.redirect_uri, params), code=302)
    db.session.rollback()
    return page(
        "This sign-in request is not valid",
        "<p>{{ error }}: {{ description }}</p>",
        400,
        error=exc.error,
        description=exc.description or "",
    )


def _org_sign_in(org: Organization, redirect_uri: str, *, silent: bool, now: int) -> Response:
    """The org wants a (new) sign-in first: ``login_required`` for a silent request, else its
    login page, which sends the browser back here afterwards."""
    if silent:
        return _refuse("login_required", "The organization needs its sign-in", redirect_uri)
    next_url = _authorize_url(organization=org.slug, **{AUTH_AFTER: str(now)})
    return _to_login(org=org.slug, next=next_url)


def _refuse(code: str, description: str, redirect_uri: str) -> Response:
    exc = OAuth2Error(description=description, redirect_uri=redirect_uri)
    exc.error = code
    return _error(exc, request.args.get("state"))


_CHOOSER = """<p>Continue to {{ client }} as a member of:</p><ul>
{% for o in orgs %}<li><a href="{{ o.url }}">{{ o.name }}</a></li>{% endfor %}</ul>"""
_CONSENT = """<p><strong>{{ client }}</strong> asks to see: {{ scope }}.</p>
<form method="post" action="/oauth/consent">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="client_id" value="{{ client_id }}">
<input type="hidden" name="scope" value="{{ scope }}">
<input type="hidden" name="next" value="{{ next }}">
<button name="answer" value="allow">Allow</button>
<button name="answer" value="deny">Deny</button></form>"""


def _csrf(session: Session) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"oauth-consent:{session.id}".encode(), hashlib.sha256).hexdigest()


def _org_by_slug(workspace_id: str, slug: str) -> Organization | None:
    return db.session.scalar(
        select(Organization).where(
            Organization.workspace_id == workspace_id,
            Organization.slug == slug,
            Organization.deleted_at.is_(None),
        )
    )


def _fresh_after(session: Session) -> bool:
    """Whether this session began after the sign-in Gatehouse asked for."""
    raw = request.args.get(AUTH_AFTER, "")
    return raw.isdigit() and int(session.created_at.timestamp()) >= int(raw)


def _switch(session: Session, org: Organization) -> None:
    before = session.org_id
    move_session(session, org)
    user = session.user
    record_org_event(
        Actor(
            ActorKind.USER,
            user.id,
            user.email or user.id,
            user_id=user.id,
            org_id=org.id,
            request_id=g.get("request_id"),
            workspace_id=user.workspace_id,
        ),
        org,
        "session.org_switched",
        "user",
        user.id,
        before={"org_id": before},
        after={"org_id": org.id, "session_id": session.id, "via": "oauth_authorize"},
    )


@bp.get(AUTHORIZE_PATH)
def authorize() -> Response:
    """RFC 6749 §4.1.1 / OIDC Core §3.1.2: sign in (or reuse the session), pick the org,
    ask consent for third-party apps, then issue a code."""
    server = authorization_server()
    if not request.args.get("redirect_uri"):
        return page("This sign-in request is not valid", "<p>redirect_uri is required</p>", 400)
    token = session_token()
    session = find_live_session(token) if token else None
    try:
        grant = server.get_consent_grant(end_user=session)
    except OAuth2Error as exc:
        return _error(exc, request.args.get("state"))
    client: OAuthClient = grant.request.client
    redirect_uri = request.args["redirect_uri"]
    prompts = set(request.args.get("prompt", "").split())
    silent = "none" in prompts
    now = int(utcnow().timestamp())

    hint = (request.args.get("login_hint") or "").strip().lower()
    other_person = session is not None and (session.user.email or "").lower() != hint
    if hint and other_person and not _fresh_after(session):  # type: ignore[arg-type]
        session = None  # another person is expected: sign in again
    if session is None:
        if silent:
            return _refuse("login_required", "Sign-in required", redirect_uri)
        query = {"next": _authorize_url(**{AUTH_AFTER: str(now)} if hint else {})}
        if hint:
            query["login_hint"] = hint
        slug = request.args.get("organization") or request.args.get("org_hint")
        if slug:
            query = {"org": slug, **query}  # straight to that org's sign-in
        return _to_login(**query)

    max_age = request.args.get("max_age", "")
    # After Gatehouse sent the browser to sign in (AUTH_AFTER), only a newer session will do.
    stale = (
        "login" in prompts
        or AUTH_AFTER in request.args
        or (max_age.isdigit() and now - int(session.auth_time.timestamp()) > int(max_age))
    )
    if stale and not _fresh_after(session):
        if silent:
            return _refuse("login_required", "A fresh sign-in is required", redirect_uri)
        slug = request.args.get("organization") or request.args.get("org_hint")
        current = db.session.get(Organization, session.org_id) if session.org_id else None
        query = {"next": _authorize_url(prompt=None, **{AUTH_AFTER: str(now)})}
        if slug or current is not None:
            query = {"org": slug or current.slug, **query}  # type: ignore[union-attr]
        return _to_login(**query)

    orgs = reachable_memberships(session)  # only the orgs this sign-in speaks for
    slug = request.args.get("organization") or request.args.get("org_hint")
    if slug:
        org = _org_by_slug(session.workspace_id, slug)
        if org is None:
            return _refuse("invalid_request", "Unknown organization", redirect_uri)
    elif len(orgs) == 1:
        org = orgs[0][0]
    elif not orgs:
        return _refuse("access_denied", "This account belongs to no organization", redirect_uri)
    else:
        if silent:
            return _refuse("account_selection_required", "Choose an organization", redirect_uri)
        choices = [{"name": o.name, "url": _authorize_url(organization=o.slug)} for o, _m in orgs]
        return page("Choose an organization", _CHOOSER, client=client.name, orgs=choices)
    membership = next((m for o, m in orgs if o.id == org.id), None)

    if session.org_id != org.id or membership is None:
        if membership is not None and admission(session, org.id) is None:
            _switch(session, org)
        elif membership is None and _fresh_after(session):
            return _refuse("access_denied", "Not a member of this organization", redirect_uri)
        else:
            return _org_sign_in(org, redirect_uri, silent=silent, now=now)
    elif session_violation(session, org) is not None:  # the org's policy: age, idle, SSO, MFA
        return _org_sign_in(org, redirect_uri, silent=silent, now=now)
    assert membership is not None  # noqa: S101 - every other branch returned
    touch_session(session)

    principal = Principal(user=session.user, org=org, membership=membership, session=session)
    if request.args.get(DENIED):
        return _with_iss(server.create_authorization_response(grant=grant, grant_user=None))
    if not client.first_party:
        scope = grant.request.scope or ""
        consent = _consent(client, session.user_id)
        granted = set(consent.scope.split()) if consent else set()
        if not set(scope.split()) <= granted or "consent" in prompts:
            if silent:
                return _refuse("consent_required", "Consent required", redirect_uri)
            return page(
                "Allow access?",
                _CONSENT,
                client=client.name,
                client_id=client.client_id,
                scope=scope,
                csrf=_csrf(session),
                next=_authorize_url(prompt=None, **{AUTH_AFTER: request.args.get(AUTH_AFTER)}),
            )
    return _with_iss(server.create_authorization_response(grant=grant, grant_user=principal))


def _consent(client: OAuthClient, user_id: str) -> Consent | None:
    return db.session.scalar(
        select(Consent).where(Consent.client_id == client.id, Consent.user_id == user_id)
    )


@bp.post("/oauth/consent")
def consent() -> Response:
    """Record a person's answer to a third-party app's request, then resume the request."""
    token = session_token()
    session = find_live_session(token) if token else None
    next_url = request.form.get("next", "")
    if (
        session is None
        or not hmac.compare_digest(request.form.get("csrf", ""), _csrf(session))
        or not next_url.startswith(AUTHORIZE_PATH + "?")
    ):
        return page("Something is not right", "<p>This form has expired.</p>", 400)
    client = find_client(request.form.get("client_id", ""))
    if client is None:
        return page("Something is not right", "<p>Unknown application.</p>", 400)
    if request.form.get("answer") != "allow":
        return redirect(f"{next_url}&{DENIED}=1", code=303)
    scope = set(client.get_allowed_scope(request.form.get("scope", "")).split())
    row = _consent(client, session.user_id)
    if row is None:
        row = Consent(client_id=client.id, user_id=session.user_id, scope="")
        db.session.add(row)
    row.scope = " ".join(sorted(scope | set(row.scope.split())))
    return redirect(next_url, code=303)


# --- logout -------------------------------------------------------------------------------


_SIGNED_OUT = "<p>You are signed out.</p>"
_CONFIRM_LOGOUT = """<form method="post"><p>Sign out of Gatehouse?</p>
<input type="hidden" name="csrf" value="{{ csrf }}"><button>Sign out</button></form>"""


@bp.route("/oauth/logout", methods=["GET", "POST"])
def logout() -> Response:
    """OpenID Connect RP-Initiated Logout 1.0: end the session the ID token names, then
    return to a post-logout URI registered exactly for that client."""
    values = request.values
    hint = values.get("id_token_hint", "")
    claims = keys.verify(hint, check_exp=False) if hint else None
    if hint and claims is None:
        return page("Something is not right", "<p>The id_token_hint is not valid.</p>", 400)
    audience = claims.get("aud") if claims else None
    client_id = audience[0] if isinstance(audience, list) and audience else audience
    client = find_client(values.get("client_id") or client_id or "")
    if claims and client is not None and client.client_id != client_id:
        return page("Something is not right", "<p>The client does not match.</p>", 400)
    target = values.get("post_logout_redirect_uri")
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return page("Something is not right", "<p>Unregistered logout redirect.</p>", 400)

    token = session_token()
    session = find_live_session(token) if token else None
    if session is not None:
        confirmed = claims is not None and claims.get("sid") == session.id
        if not confirmed and request.method == "POST":
            confirmed = hmac.compare_digest(request.form.get("csrf", ""), _csrf(session))
        if not confirmed:
            return page("Sign out", _CONFIRM_LOGOUT, csrf=_csrf(session))
        revoke_session(session, "logout")
    if target:
        state = values.get("state")
        response = redirect(add_params_to_uri(target, [("state", state)] if state else []))
    else:
        response = page("Signed out", _SIGNED_OUT)
    clear_session_cookie(response)
    return response


def install(app: Any) -> None:
    """Register the blueprint and build the authorization server (called by ``create_app``)."""
    from idp.oauth.server import init_oauth

    init_oauth(app)
    app.register_blueprint(bp)
