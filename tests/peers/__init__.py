"""Real identity providers on loopback for end-to-end SSO tests, and a small browser to drive them.

Two peers, both real software started as child processes on 127.0.0.1 (no mocks):

* :class:`OidcIdp` -- an OpenID Provider built on the npm package ``oidc-provider`` 9
  (``tests/peers/oidc/server.mjs``): authorization code flow with PKCE, ``state``, ``nonce``,
  RS256 and ES256 ID tokens carrying the account's claims (email, name, groups, amr, acr) and
  the RFC 9207 ``iss`` authorization response parameter.
* :class:`SamlIdp` -- a SAML 2.0 IdP, Debian's SimpleSAMLphp 1.19 under ``php -S``, configured
  from the templates in ``tests/peers/saml``: ``exampleauth:UserPass`` users, signed responses
  and assertions (RSA-SHA256), a configurable NameID format and AuthnContextClassRef.

:func:`ensure_installed` installs both (``tests/peers/install.sh``: Debian packages and npm)
once per process. :class:`Browser` is a cookie-keeping HTTP client that follows redirects and
auto-submitting forms only within allowed origins (the IdP), and stops at the first hop that
leaves them -- the redirect to an OIDC ``redirect_uri`` or the auto-posted ``SAMLResponse``
form to an SP's ACS -- so the test can hand that to the app under test::

    with OidcIdp(clients=[client], accounts={"alice": {...}}) as idp:
        browser = Browser([idp.base_url])
        page = browser.get(authorize_url)                  # the login form
        done = browser.submit_form(page, {"login": "alice", "password": "pw"})
        params = done.redirect_params()                    # code, state, iss

    with SamlIdp(sps=[SamlSp("http://sp.test/metadata", "http://sp.test/acs")], users=...) as idp:
        browser = Browser([idp.base_url])
        page = browser.get(authn_request_redirect_url)     # the login form
        done = browser.submit_form(page, {"username": "alice", "password": "pw"})
        acs_url, fields = browser.auto_post(done)          # SAMLResponse, RelayState

Each peer logs its stdout and stderr to ``<workdir>/server.log``; pass ``workdir=tmp_path`` to
keep it after the test. Every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from http.cookiejar import CookieJar
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import lxml.html
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from idp.sso.saml import certificate_body, new_sp_keypair

__all__ = [
    "NAMEID_FORMATS",
    "RSA_SHA256",
    "Browser",
    "Form",
    "OidcIdp",
    "PeerError",
    "Response",
    "SamlIdp",
    "SamlSp",
    "ec_jwk",
    "ensure_installed",
    "pem_body",
    "rsa_jwk",
    "self_signed_cert",
]

PEERS_DIR = Path(__file__).resolve().parent
INSTALL_SCRIPT = PEERS_DIR / "install.sh"
OIDC_DIR = PEERS_DIR / "oidc"
SAML_TEMPLATES = PEERS_DIR / "saml"
SIMPLESAMLPHP_WWW = Path("/usr/share/simplesamlphp/www")

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
INSTALL_TIMEOUT = 900.0
HTTP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
MAX_HOPS = 20
MIN_NODE = (20, 19)

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
NAMEID_FORMATS = {
    "email": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
}
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"


class PeerError(RuntimeError):
    """An identity provider could not be installed, started or driven."""


# --- installation -------------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed = False


def ensure_installed() -> None:
    """Run install.sh once per process and check that node, npm and php are usable."""
    global _installed
    with _install_lock:
        if _installed:
            return
        try:
            result = subprocess.run(  # noqa: S603 - our own script
                ["bash", str(INSTALL_SCRIPT)],  # noqa: S607 - bash from PATH
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerError(f"{INSTALL_SCRIPT} took over {INSTALL_TIMEOUT:.0f} s") from exc
        if result.returncode != 0:
            raise PeerError(
                f"{INSTALL_SCRIPT} failed (exit {result.returncode}):\n"
                f"{result.stderr}{result.stdout}".rstrip()
            )
        missing = [tool for tool in ("node", "npm", "php") if shutil.which(tool) is None]
        if missing:
            raise PeerError(
                f"{', '.join(missing)} not found on PATH after {INSTALL_SCRIPT.name}; "
                f"the SSO peers need Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]} with npm "
                "and php-cli (Debian: apt-get install php-cli)"
            )
        _check_node_version()
        if not (SIMPLESAMLPHP_WWW / "saml2" / "idp" / "SSOService.php").is_file():
            raise PeerError(f"SimpleSAMLphp is not at {SIMPLESAMLPHP_WWW} (Debian package layout)")
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            raise PeerError(f"oidc-provider is not installed in {OIDC_DIR / 'node_modules'}")
        _installed = True


def _check_node_version() -> None:
    """Refuse a Node.js older than oidc-provider 9 runs on."""
    out = subprocess.run(
        ["node", "--version"],  # noqa: S607 - node from PATH, like a developer's shell
        capture_output=True,
        text=True,
        timeout=HTTP_TIMEOUT,
        check=True,
    ).stdout.strip()
    try:
        version = tuple(int(part) for part in out.lstrip("v").split(".")[:2])
    except ValueError as exc:
        raise PeerError(f"cannot read the Node.js version from {out!r}") from exc
    if version < MIN_NODE:
        raise PeerError(f"Node.js {out} is too old for oidc-provider 9 (need >= 20.19)")


# --- processes ----------------------------------------------------------------------------------


def _free_port() -> int:
    """A port nobody listens on at the moment (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _fetch(url: str, timeout: float = HTTP_TIMEOUT) -> bytes:
    """GET a URL directly (no cookies, no proxies), raising on any non-2xx status."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return bytes(response.read())


class _Server:
    """A child process serving HTTP on a loopback port, with its output in a log file."""

    name = "server"

    def __init__(self, workdir: Path | str | None) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The origin the server answers on, e.g. http://127.0.0.1:40123."""
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server's stdout and stderr go."""
        assert self.workdir is not None, "not started"
        return self.workdir / "server.log"

    def log(self) -> str:
        """The server's output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _prepare(self) -> tuple[list[str], dict[str, str], Path, str]:
        """Write the configuration for self.port; return argv, env, cwd and the ready URL."""
        raise NotImplementedError

    def start(self) -> Self:
        """Install if needed, start the server and wait (bounded) until it answers."""
        ensure_installed()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"gatehouse-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            # The free port can be taken before the server binds it: try a few.
            for _attempt in range(3):
                self.port = _free_port()
                argv, env, cwd, ready_url = self._prepare()
                if self._launch(argv, env, cwd, ready_url):
                    return self
            raise PeerError(f"{self.name} did not start:\n{self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _launch(self, argv: list[str], env: dict[str, str], cwd: Path, ready_url: str) -> bool:
        """Start the process and wait for ready_url; False when it exited early."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed programs, our arguments
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            try:
                _fetch(ready_url, timeout=2.0)
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
                continue
            return True
        # start() stops the process (and may remove the workdir) once this is raised.
        raise PeerError(
            f"{self.name} did not answer {ready_url} within {START_TIMEOUT:.0f} s:\n"
            f"{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server's process group; remove the workdir if it was a temporary one."""
        process, self._process = self._process, None
        if process is not None:
            _kill_group(process)
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers, and reap the leader."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=STOP_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            continue
    if process.returncode is None:
        process.wait(timeout=STOP_TIMEOUT)


# --- OIDC ---------------------------------------------------------------------------------------


def _b64url_int(value: int, length: int | None = None) -> str:
    """An integer as unpadded base64url, big-endian (JWK encoding)."""
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, alg: str = "RS256") -> dict[str, str]:
    """A private RSA JWK for a cryptography key."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    return {
        "kty": "RSA",
        "kid": kid,
        "alg": alg,
        "use": "sig",
        "n": _b64url_int(public.n),
        "e": _b64url_int(public.e),
        "d": _b64url_int(numbers.d),
        "p": _b64url_int(numbers.p),
        "q": _b64url_int(numbers.q),
        "dp": _b64url_int(numbers.dmp1),
        "dq": _b64url_int(numbers.dmq1),
        "qi": _b64url_int(numbers.iqmp),
    }


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    """A private P-256 JWK (ES256) for a cryptography key."""
    numbers = key.private_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
        "crv": "P-256",
        "x": _b64url_int(numbers.public_numbers.x, 32),
        "y": _b64url_int(numbers.public_numbers.y, 32),
        "d": _b64url_int(numbers.private_value, 32),
    }


def _public_jwk(jwk: Mapping[str, str]) -> dict[str, str]:
    """Drop the private members of a JWK."""
    private = {"d", "p", "q", "dp", "dq", "qi"}
    return {k: v for k, v in jwk.items() if k not in private}


class OidcIdp(_Server):
    """oidc-provider 9 on 127.0.0.1 as a context manager (see tests/peers/oidc/server.mjs).

    ``clients``: client metadata dicts (client_id, client_secret, redirect_uris, optional
    token_endpoint_auth_method, id_token_signed_response_alg, ... passed through as-is).
    ``accounts``: ``{login: {"password": ..., "claims": {sub?, email, email_verified, name,
    groups, amr?, acr?}}}``; sub defaults to the login. ``claims`` optionally replaces the
    scope-to-claims table (default: openid, email, profile, groups). The RS256 and ES256
    signing keys are generated here so that tests can forge tokens (``signing_keys``).
    """

    name = "oidc-idp"

    def __init__(
        self,
        clients: Sequence[Mapping[str, Any]],
        accounts: Mapping[str, Mapping[str, Any]],
        *,
        claims: Mapping[str, Sequence[str]] | None = None,
        workdir: Path | str | None = None,
    ) -> None:
        super().__init__(workdir)
        self.clients = [dict(client) for client in clients]
        self.accounts = {login: dict(account) for login, account in accounts.items()}
        self.claims = {scope: list(names) for scope, names in claims.items()} if claims else None
        self.signing_keys: list[dict[str, str]] = [
            rsa_jwk(rsa.generate_private_key(65537, 2048), f"rs256-{secrets.token_hex(4)}"),
            ec_jwk(ec.generate_private_key(ec.SECP256R1()), f"es256-{secrets.token_hex(4)}"),
        ]
        self._discovery: dict[str, Any] | None = None

    @property
    def issuer(self) -> str:
        """The issuer identifier (no trailing slash)."""
        return self.base_url

    def _prepare(self) -> tuple[list[str], dict[str, str], Path, str]:
        assert self.workdir is not None
        config: dict[str, Any] = {
            "port": self.port,
            "issuer": self.issuer,
            "clients": self.clients,
            "accounts": self.accounts,
            "jwks": {"keys": self.signing_keys},
            "cookie_keys": [secrets.token_urlsafe(32)],
        }
        if self.claims is not None:
            config["claims"] = self.claims
        path = self.workdir / "oidc-config.json"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        self._discovery = None
        env = {**os.environ, "NODE_ENV": "test", "NO_COLOR": "1"}
        argv = ["node", str(OIDC_DIR / "server.mjs"), str(path)]
        return argv, env, OIDC_DIR, f"{self.issuer}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        """The provider's /.well-known/openid-configuration (fetched once)."""
        if self._discovery is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            self._discovery = json.loads(_fetch(url))
        return self._discovery

    def jwks(self) -> dict[str, Any]:
        """The public JWKS as served at jwks_uri."""
        return dict(json.loads(_fetch(self.discovery()["jwks_uri"])))

    def public_jwks(self) -> dict[str, Any]:
        """The public JWKS computed locally from signing_keys (no request)."""
        return {"keys": [_public_jwk(key) for key in self.signing_keys]}

    @property
    def authorization_endpoint(self) -> str:
        """Where authorization requests go."""
        return str(self.discovery()["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        """Where codes are exchanged."""
        return str(self.discovery()["token_endpoint"])


# --- SAML ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamlSp:
    """A service provider the SAML IdP trusts: entity id, ACS URL, optional signing cert (PEM)."""

    entity_id: str
    acs_url: str
    cert_pem: str | None = None
    slo_url: str | None = None


def self_signed_cert(common_name: str) -> tuple[str, str]:
    """A fresh self-signed certificate and its key: (cert PEM, key PEM), as Gatehouse makes
    its SP key pairs."""
    return new_sp_keypair(common_name)


def pem_body(pem: str) -> str:
    """The base64 DER inside a PEM certificate, on one line (metadata and python3-saml form)."""
    return certificate_body(pem)


def _attribute_values(value: Any) -> list[str]:
    if isinstance(value, str | int | bool):
        return [str(value)]
    return [str(item) for item in value]


class SamlIdp(_Server):
    """SimpleSAMLphp 1.19 (Debian) under ``php -S`` on 127.0.0.1 as a context manager.

    ``sps``: the trusted service providers. ``users``: ``{login: {"password": ...,
    "attributes": {"email": ..., "givenName": ..., "groups": [...]}}}`` (a string value is one
    value; logins must not contain ':'). ``name_id_format``: "email", "persistent",
    "transient", "unspecified" or a full URN; the NameID value is the first value of
    ``name_id_attribute`` (default "email", or "uid" -- the login unless the user sets one --
    for persistent). ``authn_context``: an AuthnContextClassRef to assert (default:
    SimpleSAMLphp's, ...:Password on http). Responses and assertions are signed with RSA-SHA256
    unless ``sign_response``/``sign_assertion`` say otherwise.
    """

    name = "saml-idp"

    def __init__(
        self,
        sps: Sequence[SamlSp],
        users: Mapping[str, Mapping[str, Any]],
        *,
        name_id_format: str = "email",
        name_id_attribute: str | None = None,
        authn_context: str | None = None,
        sign_response: bool = True,
        sign_assertion: bool = True,
        signature_algorithm: str = RSA_SHA256,
        workdir: Path | str | None = None,
    ) -> None:
        super().__init__(workdir)
        self.sps = list(sps)
        self.name_id_format = NAMEID_FORMATS.get(name_id_format, name_id_format)
        if name_id_attribute is None and self.name_id_format != NAMEID_FORMATS["transient"]:
            persistent = self.name_id_format == NAMEID_FORMATS["persistent"]
            name_id_attribute = "uid" if persistent else "email"
        self.name_id_attribute = name_id_attribute
        self.users: dict[str, dict[str, Any]] = {}
        for login, user in users.items():
            if ":" in login:
                raise ValueError(f"SAML login {login!r} must not contain ':'")
            attributes = {k: _attribute_values(v) for k, v in user.get("attributes", {}).items()}
            if self.name_id_attribute == "uid":
                attributes.setdefault("uid", [login])
            self.users[login] = {"password": str(user["password"]), "attributes": attributes}
        self.authn_context = authn_context
        self.sign_response = sign_response
        self.sign_assertion = sign_assertion
        self.signature_algorithm = signature_algorithm
        self.cert_pem, self.key_pem = self_signed_cert("Gatehouse test SAML IdP")
        self.admin_password = secrets.token_urlsafe(18)

    @property
    def entity_id(self) -> str:
        """The IdP's entity id, which is also its metadata URL."""
        return f"{self.base_url}/saml2/idp/metadata.php"

    @property
    def metadata_url(self) -> str:
        """Where the IdP publishes its SAML metadata."""
        return self.entity_id

    @property
    def sso_url(self) -> str:
        """SingleSignOnService (HTTP-Redirect and HTTP-POST bindings)."""
        return f"{self.base_url}/saml2/idp/SSOService.php"

    @property
    def slo_url(self) -> str:
        """SingleLogoutService."""
        return f"{self.base_url}/saml2/idp/SingleLogoutService.php"

    @property
    def cert_base64(self) -> str:
        """The signing certificate as one-line base64 DER (python3-saml's x509cert)."""
        return pem_body(self.cert_pem)

    def metadata_xml(self) -> str:
        """Fetch the IdP's metadata document."""
        return _fetch(self.metadata_url).decode()

    def onelogin_idp_settings(self) -> dict[str, Any]:
        """The "idp" block of python3-saml settings for this IdP."""
        return {
            "entityId": self.entity_id,
            "singleSignOnService": {
                "url": self.sso_url,
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            },
            "singleLogoutService": {
                "url": self.slo_url,
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            },
            "x509cert": self.cert_base64,
        }

    def _prepare(self) -> tuple[list[str], dict[str, str], Path, str]:
        assert self.workdir is not None
        config_dir = self.workdir / "config"
        state_dir = self.workdir / "state"
        if config_dir.exists():
            shutil.rmtree(config_dir)
        shutil.copytree(SAML_TEMPLATES, config_dir)
        for sub in ("cert", "log", "data", "tmp", "sessions"):
            (state_dir / sub).mkdir(parents=True, exist_ok=True)
        (state_dir / "cert" / "idp.crt").write_text(self.cert_pem)
        key_path = state_dir / "cert" / "idp.key"
        key_path.write_text(self.key_pem)
        key_path.chmod(0o600)
        peer = {
            "base_url": f"{self.base_url}/",
            "entity_id": self.entity_id,
            "state_dir": str(state_dir),
            "secret_salt": secrets.token_urlsafe(32),
            "admin_password": self.admin_password,
            "users": [
                {"login": login, "password": user["password"], "attributes": user["attributes"]}
                for login, user in self.users.items()
            ],
            "sps": [
                {
                    "entity_id": sp.entity_id,
                    "acs_url": sp.acs_url,
                    "slo_url": sp.slo_url,
                    "cert": pem_body(sp.cert_pem) if sp.cert_pem else None,
                }
                for sp in self.sps
            ],
            "name_id_format": self.name_id_format,
            "name_id_attribute": self.name_id_attribute,
            "authn_context": self.authn_context,
            "sign_response": self.sign_response,
            "sign_assertion": self.sign_assertion,
            "signature_algorithm": self.signature_algorithm,
            "attribute_name_format": ATTRNAME_BASIC,
        }
        peer_path = config_dir / "peer.json"
        peer_path.write_text(json.dumps(peer, indent=2))
        peer_path.chmod(0o600)
        env = {**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": str(config_dir)}
        argv = [
            "php",
            # Warnings and deprecations go to the log, never into a page (or before headers).
            "-d",
            "display_errors=0",
            "-d",
            "log_errors=1",
            "-d",
            "error_reporting=E_ALL & ~E_DEPRECATED",
            "-S",
            f"{HOST}:{self.port}",
            "-t",
            str(SIMPLESAMLPHP_WWW),
        ]
        return argv, env, self.workdir, self.metadata_url


# --- browser ------------------------------------------------------------------------------------


@dataclass
class Response:
    """One HTTP response as the browser received it (body read in full)."""

    url: str
    status: int
    headers: Message
    body: bytes
    method: str = "GET"

    @property
    def text(self) -> str:
        """The body decoded with the declared charset (UTF-8 by default)."""
        charset = self.headers.get_content_charset() or "utf-8"
        return self.body.decode(charset, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def is_redirect(self) -> bool:
        """A 3xx with a Location header."""
        return 300 <= self.status < 400 and self.headers.get("Location") is not None

    @property
    def location(self) -> str | None:
        """The absolute redirect target, if any."""
        target = self.headers.get("Location")
        return urllib.parse.urljoin(self.url, target) if target is not None else None

    def redirect_params(self) -> dict[str, str]:
        """Query and fragment parameters of the redirect target (e.g. code, state, iss)."""
        if self.location is None:
            raise PeerError(f"{self.status} from {self.url} is not a redirect")
        parts = urllib.parse.urlsplit(self.location)
        params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        params.update(urllib.parse.parse_qsl(parts.fragment, keep_blank_values=True))
        return params


@dataclass
class Form:
    """An HTML form: absolute action URL, method and its successful fields (name, value)."""

    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    user_fields: list[str] = field(default_factory=list)

    @property
    def is_auto_submit(self) -> bool:
        """Only hidden fields and buttons: the kind a page submits by script (SAML, form_post)."""
        return bool(self.fields) and not self.user_fields

    def values(self) -> dict[str, str]:
        """The fields as a dict (last value wins)."""
        return dict(self.fields)


_BUTTON_TYPES = {"submit", "button", "image", "reset", "hidden"}


def parse_forms(response: Response) -> list[Form]:
    """The forms of an HTML response, in document order."""
    if not response.body.strip():
        return []
    doc = lxml.html.document_fromstring(response.body, base_url=response.url)
    forms = []
    for element in doc.forms:
        action = element.action or response.url
        user_fields = [
            control.name
            for control in element.inputs
            if control.name
            and not (
                control.tag == "input" and control.get("type", "text").lower() in _BUTTON_TYPES
            )
            and control.tag != "button"
        ]
        forms.append(
            Form(
                action=urllib.parse.urljoin(response.url, action),
                method=(element.method or "GET").upper(),
                fields=[(str(k), str(v)) for k, v in element.form_values()],
                user_fields=user_fields,
            )
        )
    return forms


class _PassThrough(urllib.request.HTTPErrorProcessor):
    """Hand every response back as-is: no redirects followed, no exceptions for 4xx/5xx."""

    def http_response(self, request: urllib.request.Request, response: Any) -> Any:
        return response

    https_response = http_response


class Browser:
    """A cookie-keeping HTTP client that stays inside ``allowed_origins``.

    Redirects (and auto-submitting forms: only hidden fields) are followed while they target an
    allowed origin (scheme://host:port); the first one that leaves returns its response instead,
    so a test can inspect the redirect to a redirect_uri or the SAMLResponse form for an ACS.
    """

    def __init__(self, allowed_origins: Iterable[str], *, timeout: float = HTTP_TIMEOUT) -> None:
        self.allowed_origins = {_origin(url) for url in allowed_origins}
        self.timeout = timeout
        self.cookies = CookieJar()
        self.history: list[Response] = []
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.cookies),
            _PassThrough(),
        )

    def allows(self, url: str) -> bool:
        """Whether the browser follows redirects and forms to this URL."""
        return _origin(url) in self.allowed_origins

    def get(self, url: str, params: Mapping[str, str] | None = None) -> Response:
        """GET, then follow redirects within the allowed origins."""
        if params:
            separator = "&" if urllib.parse.urlsplit(url).query else "?"
            url = f"{url}{separator}{urllib.parse.urlencode(params)}"
        return self.request("GET", url)

    def post(self, url: str, data: Mapping[str, str] | Sequence[tuple[str, str]]) -> Response:
        """POST a urlencoded form, then follow redirects within the allowed origins."""
        return self.request("POST", url, urllib.parse.urlencode(data).encode())

    def request(self, method: str, url: str, body: bytes | None = None) -> Response:
        """Send one request and follow allowed redirects and auto-submitting forms."""
        for _hop in range(MAX_HOPS):
            response = self._send(method, url, body)
            if response.is_redirect:
                target = response.location
                assert target is not None
                if not self.allows(target):
                    return response
                if response.status in (301, 302, 303) and method != "HEAD":
                    method, body = "GET", None
                url = target
                continue
            forms = parse_forms(response) if _is_html(response) else []
            auto = [form for form in forms if form.is_auto_submit]
            if len(forms) == 1 and auto and self.allows(auto[0].action):
                method, url, body = _form_request(auto[0], {})
                continue
            return response
        raise PeerError(f"more than {MAX_HOPS} redirects, last at {url}")

    def forms(self, response: Response) -> list[Form]:
        """The forms of a page."""
        return parse_forms(response)

    def form(self, response: Response, form_index: int = 0) -> Form:
        """One form of a page, parsed but not submitted."""
        forms = parse_forms(response)
        if form_index >= len(forms):
            raise PeerError(
                f"no form #{form_index} in the {response.status} page from {response.url}:\n"
                f"{response.text[:2000]}"
            )
        return forms[form_index]

    def submit_form(
        self,
        response: Response,
        fields: Mapping[str, str] | None = None,
        form_index: int = 0,
    ) -> Response:
        """Fill a form of the page with fields (replacing or adding) and submit it."""
        method, url, body = _form_request(self.form(response, form_index), fields or {})
        return self.request(method, url, body)

    def auto_post(self, response: Response) -> tuple[str, dict[str, str]]:
        """The action and fields of a page's auto-submitting form (e.g. SAMLResponse), unsent."""
        for form in parse_forms(response) if _is_html(response) else []:
            if form.is_auto_submit:
                return form.action, form.values()
        raise PeerError(
            f"no auto-submitting form in the {response.status} page from {response.url}:\n"
            f"{response.text[:2000]}"
        )

    def _send(self, method: str, url: str, body: bytes | None) -> Response:
        headers = {"User-Agent": "gatehouse-tests-browser/1", "Accept": "text/html,*/*"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as raw:
                response = Response(
                    url=url, status=raw.status, headers=raw.headers, body=raw.read(), method=method
                )
        except urllib.error.URLError as exc:
            raise PeerError(f"{method} {url} failed: {exc.reason}") from exc
        self.history.append(response)
        return response


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _is_html(response: Response) -> bool:
    return response.headers.get_content_type() in ("text/html", "application/xhtml+xml")


def _form_request(form: Form, fields: Mapping[str, str]) -> tuple[str, str, bytes | None]:
    """Method, URL and body for submitting a form with some fields replaced or added."""
    pairs = [(name, value) for name, value in form.fields if name not in fields]
    pairs.extend(fields.items())
    encoded = urllib.parse.urlencode(pairs)
    if form.method == "GET":
        parts = urllib.parse.urlsplit(form.action)
        return "GET", urllib.parse.urlunsplit(parts._replace(query=encoded, fragment="")), None
    return form.method, form.action, encoded.encode()
