"""sso_login: the SAML ACS against python3-saml's own ``is_valid`` on the same responses, and the
OIDC callback with the IdP's JWKS cached; real IdPs on loopback, Gatehouse in this process.

Each SAML response is a real one: a login begun at Gatehouse, completed at SimpleSAMLphp, its
auto-posted form captured. ``is_valid`` (python3-saml with Gatehouse's settings for the
connection, built once) and Gatehouse's ACS (validation, replay cache, login state, member
lookup, session, audit, commit) run on the same response, alternately, so drift hits both.
``saml_acs_checks_ms`` is the ACS's protocol checks alone (``idp.sso.saml.validate_response``:
python3-saml plus the exact Destination, Recipient and Audience checks), without the database
work that follows (replay cache, login state, session). The baseline is measured twice:
python3-saml as shipped, which compiles its XSD on every call, and with the schema cache
Gatehouse installs (``idp.sso.saml.cached_schema``).

Each OIDC callback is a real one too: the authorization response of a login at
oidc-provider. Its time includes the token request to the IdP, timed on its own as well.
"""

from __future__ import annotations

import base64
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from bench.deploy import BenchmarkError, RunOptions, app_overrides, prepared
from bench.report import Report

SAML_LOGINS = 60  # real IdP logins, one response each
OIDC_LOGINS = 40
ISSUER = "http://gatehouse.bench"


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


@contextmanager
def in_process_app(options: RunOptions) -> Iterator[tuple[Any, Any]]:
    """Gatehouse in this process, on a fresh migrated database, with one org."""
    from idp import create_app
    from idp.db import db
    from tests.builders import make_org

    with prepared(options, lambda: None) as (base, _seeded):
        app = create_app(
            {
                **app_overrides(base.instance_path, base.database_url),
                "ISSUER": ISSUER,
                "ALLOW_HTTP_LOOPBACK": True,
            }
        )
        with app.app_context():
            try:
                yield app, make_org("acme")
            finally:
                db.session.remove()
                db.engine.dispose()


def _timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return time.perf_counter() - started, result


def _served(
    app: Any, client: Any, path: str, method: str = "POST", **kwargs: Any
) -> tuple[float, int]:
    """Time the app serving one request, from WSGI call to the last body byte; building the
    request (form encoding a SAMLResponse, say) is the client's work and stays outside."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=path, method=method, **kwargs)
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    client._add_cookies_to_wsgi(environ)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
        statuses.append(status)
        return lambda _data: None

    started = time.perf_counter()
    body = app(environ, start_response)
    try:
        for _chunk in body:
            pass
    finally:
        if hasattr(body, "close"):
            body.close()
    return time.perf_counter() - started, int(statuses[0].split()[0])


def _saml(app: Any, org: Any, report: Report) -> None:
    from lxml import etree
    from onelogin.saml2.response import OneLogin_Saml2_Response
    from onelogin.saml2.settings import OneLogin_Saml2_Settings
    from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

    from idp.connections.services import connection_secret
    from idp.sso import saml
    from tests.peers import SamlIdp
    from tests.sso import saml_fixtures as sf

    connection, keys = sf.new_saml_connection(org, "Bench IdP")
    users = {"bob": {"password": "bob-password", "attributes": {"email": ["bob@acme.example"]}}}
    client = app.test_client()
    with SamlIdp(sps=[sf.sp_entry(connection, keys)], users=users) as idp:
        sf.configure(org, connection, keys, idp)
        responses = [sf.idp_login(client, connection, idp) for _ in range(SAML_LOGINS)]
    settings = OneLogin_Saml2_Settings(
        saml.onelogin_settings(connection, connection_secret(connection)), sp_validation_only=True
    )
    request_data = saml.acs_request_data(connection, {})
    cached_schema = OneLogin_Saml2_XML._schema_class
    timings: dict[str, list[float]] = {"stock": [], "cached": [], "checks": [], "acs": []}
    for fields in responses:
        raw = base64.b64decode(fields["SAMLResponse"])
        request_id = etree.fromstring(raw).get("InResponseTo")
        for variant, schema in (("stock", etree.XMLSchema), ("cached", cached_schema)):
            OneLogin_Saml2_XML._schema_class = schema
            try:
                seconds, response = _timed(
                    OneLogin_Saml2_Response, settings, fields["SAMLResponse"]
                )
                checked, valid = _timed(response.is_valid, request_data, request_id)
            finally:
                OneLogin_Saml2_XML._schema_class = cached_schema
            if not valid:
                raise BenchmarkError(
                    f"python3-saml refused a real response: {response.get_error()}"
                )
            timings[variant].append(seconds + checked)
        seconds, _checked = _timed(
            saml.validate_response,
            connection,
            fields["SAMLResponse"],
            saml.acs_request_data(connection, fields),
        )
        timings["checks"].append(seconds)
        seconds, status = _served(app, client, sf.acs_path(connection), data=fields)
        if status != 303:
            raise BenchmarkError(f"ACS answered {status}")
        timings["acs"].append(seconds)
    stock = report.add("saml_is_valid_stock_ms", _median_ms(timings["stock"]), "ms")
    cached = report.add("saml_is_valid_cached_xsd_ms", _median_ms(timings["cached"]), "ms")
    acs = _median_ms(timings["acs"])
    report.add_ratio("saml_acs_ms", acs, "ms", stock)
    report.add_ratio("saml_acs_vs_cached_is_valid", acs, "ms", cached)
    # The ACS's protocol checks alone (python3-saml plus Gatehouse's exact ones), no database.
    report.add_ratio("saml_acs_checks_ms", _median_ms(timings["checks"]), "ms", stock)
    report.details["saml_responses"] = len(responses)


def _oidc(app: Any, org: Any, report: Report) -> None:
    from idp.actors import system_actor
    from idp.connections import services as connections
    from idp.connections.models import ConnectionKind
    from idp.db import db
    from idp.sso import oidc
    from tests.peers import Browser, OidcIdp

    connection = connections.create_connection(
        system_actor(), org, kind=ConnectionKind.OIDC, name="Bench OIDC", settings={}, secret=None
    )
    db.session.commit()
    callback = f"{ISSUER}/sso/oidc/{connection.id}/callback"
    secret = "bench-client-secret"  # noqa: S105 - the loopback IdP's throwaway client
    accounts = {"ann": {"password": "ann-password", "claims": {"email": "ann@acme.example"}}}
    client_config = {"client_id": "bench", "client_secret": secret, "redirect_uris": [callback]}
    client = app.test_client()
    token_seconds: list[float] = []
    real_request_tokens = oidc.request_tokens

    def timed_request_tokens(*args: Any) -> dict[str, Any]:
        seconds, tokens = _timed(lambda: real_request_tokens(*args))
        token_seconds.append(seconds)
        return tokens

    with OidcIdp(clients=[client_config], accounts=accounts) as idp:
        settings = oidc.build_settings(idp.issuer, "bench")
        connections.update_connection(
            system_actor(), org, connection, settings=settings, secret=secret
        )
        db.session.commit()
        callbacks = []
        for _ in range(OIDC_LOGINS + 1):
            start = client.get(f"/sso/oidc/{connection.id}/login")
            browser = Browser([idp.base_url])
            page = browser.get(start.headers["Location"])
            done = browser.submit_form(page, {"login": "ann", "password": "ann-password"})
            location = done.headers["Location"]
            callbacks.append(urlsplit(location)._replace(scheme="", netloc="").geturl())
        client.get(callbacks.pop(0))  # the first fetches the JWKS; the rest find it cached
        oidc.request_tokens = timed_request_tokens
        try:
            seconds = []
            for path in callbacks:
                elapsed, status = _served(app, client, path, method="GET")
                if status != 303:
                    raise BenchmarkError(f"callback answered {status}")
                seconds.append(elapsed)
        finally:
            oidc.request_tokens = real_request_tokens
    report.add("oidc_callback_ms", _median_ms(seconds), "ms")
    report.add("oidc_token_request_ms", _median_ms(token_seconds), "ms")
    own = [total - token for total, token in zip(seconds, token_seconds, strict=True)]
    report.add("oidc_callback_without_token_request_ms", _median_ms(own), "ms")
    report.details["oidc_callbacks"] = len(seconds)


def run(options: RunOptions) -> Report:
    report = Report(
        "sso_login",
        params={
            "saml_logins": SAML_LOGINS,
            "oidc_logins": OIDC_LOGINS,
            "idps": "SimpleSAMLphp (Debian) and oidc-provider 9, on loopback",
            "gatehouse": "in process (Flask test client), one thread",
            "timing": "wall clock per request; medians",
        },
    )
    with in_process_app(options) as (app, org):
        _saml(app, org, report)
        _oidc(app, org, report)
    return report
