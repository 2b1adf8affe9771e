"""What every request and response passes at the edge: the CSRF wall on browser posts
(the Origin check, then Flask-WTF's token), the security headers, and CORS for the
endpoints a browser-based app calls.

One place for all of it, so no page or surface can be left without (issue 16 #4, #5).
"""

from __future__ import annotations

import functools
import re
import secrets

from flask import Flask, Response, current_app, g, render_template_string, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from idp.apps.clients import is_registered_origin, origin_of
from idp.config import current_settings, parse_forward_auth_hosts

csrf = CSRFProtect()

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Not browser forms: bearer-key or client-authenticated APIs (no cookie speaks for the
# caller), a proxy's subrequest, and the SAML ACS, which an IdP posts cross-site by design
# (SAML Bindings §3.5) and which is bound to its AuthnRequest by InResponseTo instead.
EXEMPT_BLUEPRINTS = frozenset({"admin", "scim", "health", "forward_auth"})
EXEMPT_ENDPOINTS = frozenset(
    {
        "oauth.token",  # RFC 6749 §3.2: client authentication, or PKCE for public clients
        "oauth.revoke",  # RFC 7009 §2: client authentication
        "oauth.introspect",  # RFC 7662 §2.1: client authentication
        "oauth.userinfo",  # OIDC Core §5.3: the bearer access token
        # RP-Initiated Logout 1.0 §2: the app sends the browser here, by GET or a cross-site
        # POST; without an id_token_hint naming this very session, the page asks and its
        # form carries a token bound to the session (``oauth.views._csrf``).
        "oauth.logout",
        "sso.saml_acs",
    }
)

# Who may read the answers of the OIDC endpoints from a browser (Fetch §3.2, CORS).
PUBLIC_CORS = frozenset({"/.well-known/openid-configuration", "/jwks"})
CLIENT_CORS = frozenset({"/oauth/token", "/oauth/userinfo", "/oauth/revoke"})
CORS_HEADERS = "Authorization, Content-Type"
CORS_MAX_AGE = "600"

HSTS = "max-age=31536000; includeSubDomains"  # one year (RFC 6797 §6.1)
# ``same-origin``: a page's URL (an email link's or invitation's token) never leaves in a
# Referer to another site, while our own form posts keep their Origin (``no-referrer``
# would make a browser send ``Origin: null`` on them, Fetch §3.2.5, and fail the check).
REFERRER_POLICY = "same-origin"
PAGE_CSP = (
    "default-src 'none'; script-src {script}; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'{forms}; frame-ancestors 'none'; base-uri 'none'"
)
# JSON, XML, text: nothing in them may run, load or be framed if a browser renders one.
DOCUMENT_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

_REFUSED = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{{ title }}</title>
<body><main><h1>{{ title }}</h1><p id="error" data-code="{{ code }}">{{ message }}</p>
<p><a href="/login">Start again</a></p></main>
<footer><small>Request {{ request_id }}</small></footer></body></html>"""


def csp_nonce() -> str:
    """This response's script nonce: a page asking for one may carry inline scripts with it."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def issuer_origin() -> str:
    """Gatehouse's own origin, the only one its pages post from."""
    return origin_of(current_settings().issuer) or ""


def init_app(app: Flask) -> None:
    """Install the CSRF wall, the headers and CORS on ``app``."""
    # The wall below calls Flask-WTF's check itself, after the Origin check and only where
    # it applies; a form's own validate() checks the token too.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    csrf.init_app(app)
    app.before_request(_forget_earlier_requests)
    app.before_request(_refuse_cross_site_posts)
    app.after_request(_secure_response)


def _forget_earlier_requests() -> None:
    """A request's nonce and CSRF token are its own, even where requests share an app
    context (a test's, or a CLI's): one browser must never be handed another's token."""
    g.pop("csp_nonce", None)
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)


def _is_exempt() -> bool:
    endpoint = request.endpoint or ""
    return endpoint in EXEMPT_ENDPOINTS or request.blueprint in EXEMPT_BLUEPRINTS


def _refused(status: int, code: str, message: str) -> Response:
    html = render_template_string(
        _REFUSED,
        title="This form was refused",
        code=code,
        message=message,
        request_id=g.get("request_id", ""),
    )
    response = Response(html, status=status, content_type="text/html; charset=utf-8")
    response.headers["X-Gatehouse-Error"] = code
    return response


def _refuse_cross_site_posts() -> Response | None:
    """OWASP CSRF Cheat Sheet: the request's source origin must be ours (Origin, else
    Referer; ``Sec-Fetch-Site`` when sent), then the synchronizer token (Flask-WTF).

    A request with neither Origin nor Referer (no browser posts so today) is left to the
    token, which it must still carry.
    """
    if request.method not in UNSAFE or request.endpoint is None or _is_exempt():
        return None
    ours = issuer_origin()
    origin = request.headers.get("Origin")
    referer = request.headers.get("Referer")
    source = origin if origin is not None else (origin_of(referer) if referer else ours)
    if request.headers.get("Sec-Fetch-Site") == "cross-site" or source != ours:
        return _refused(
            403, "cross_site_post", "This form was not sent from this site. Nothing was done."
        )
    try:
        csrf.protect()
    except CSRFError:
        return _refused(
            400,
            "csrf_token_invalid",
            "This form has expired or did not come from this browser's page: go back, "
            "reload the page and send it again. Nothing was done.",
        )
    return None


_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(?::[0-9]{1,5})?")


@functools.lru_cache(maxsize=8)
def _form_destinations(return_origins: str, forward_auth_hosts: str) -> str:
    """Where a form's answer may redirect besides this site (CSP3 ``form-action`` holds for
    the redirects too): the origins a sign-in may return to, and forward-auth's hosts
    (their callback), any port for a host named without one."""
    origins = (o.strip().rstrip("/").lower() for o in return_origins.split(","))
    # Only what reads as an origin: nothing else may reach the policy's text.
    sources = [o for o in origins if _ORIGIN.fullmatch(o)]
    for host in parse_forward_auth_hosts(forward_auth_hosts):
        sources.append(host if ":" in host else f"{host}:*")
    return "".join(f" {source}" for source in sources)


def _secure_response(response: Response) -> Response:
    """Every answer: no sniffing, no referrer across sites, HSTS under https, a CSP (a
    page's allows only our styles and its own nonce's scripts; any other allows nothing),
    no framing; CORS where a browser-based app reads the answer."""
    headers = response.headers
    settings = current_settings()
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", REFERRER_POLICY)
    if settings.issuer.startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    if response.mimetype == "text/html":
        script = f"'nonce-{g.csp_nonce}'" if "csp_nonce" in g else "'none'"
        given = headers.get("Content-Security-Policy")
        if given is None:
            headers["Content-Security-Policy"] = PAGE_CSP.format(
                script=script,
                forms=_form_destinations(settings.return_origins, settings.forward_auth_hosts),
            )
        elif "frame-ancestors" not in given:  # a page's own policy (the SAML auto-post)
            headers["Content-Security-Policy"] = f"{given}; frame-ancestors 'none'"
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cache-Control", "no-store")
    else:
        headers.setdefault("Content-Security-Policy", DOCUMENT_CSP)
    _cors(response)
    return response


def _cors(response: Response) -> None:
    """CORS (Fetch §3.2): discovery and JWKS are public documents anyone may read (``*``,
    never with credentials); token, userinfo and revocation answer only the origins of
    registered redirect URIs, echoed with ``Vary: Origin``, never with credentials (a
    public client authenticates by PKCE or its bearer token, not by cookies)."""
    path = request.path
    if path not in PUBLIC_CORS and path not in CLIENT_CORS:
        return
    origin = request.headers.get("Origin")
    if path in PUBLIC_CORS:
        response.headers["Access-Control-Allow-Origin"] = "*"
        allowed = True
    else:
        response.vary.add("Origin")
        allowed = origin is not None and is_registered_origin(origin)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
    if allowed and request.method == "OPTIONS":  # the preflight (Fetch §4.8)
        methods = "GET, POST" if path == "/oauth/userinfo" or path in PUBLIC_CORS else "POST"
        response.headers["Access-Control-Allow-Methods"] = methods
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
    if allowed and path == "/oauth/userinfo":
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
