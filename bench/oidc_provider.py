"""oidc_provider: Gatehouse as the app's OIDC provider, in this process on a fresh database.

- ``token_exchange_ms``: one authorization code exchanged at ``/oauth/token`` (client
  authentication, code and PKCE checks, the code used up, ID and access tokens signed, the
  refresh token stored), median over many codes.
- ``brokered_login_cpu_ms``: the CPU time Gatehouse spends on one whole brokered login: the
  app's authorize request, the login page, the org's upstream OIDC login and callback (its
  token request to the real oidc-provider on loopback included), the authorize request
  completing, and the code exchange. The upstream IdP's own work runs in its own process and
  is not counted; neither is the benchmark's browser driving the IdP's login form.
"""

from __future__ import annotations

import secrets
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

from bench.deploy import BenchmarkError, RunOptions
from bench.report import Report
from bench.sso_login import ISSUER, in_process_app

EXCHANGES = 200
LOGINS = 30


class Metered:
    """A test client that adds up the CPU time of the requests it makes to Gatehouse."""

    def __init__(self, client: Any) -> None:
        self.client, self.spent = client, 0.0

    def run(self, call: Any, *args: Any) -> Any:
        started = time.process_time()
        try:
            return call(self.client, *args)
        finally:
            self.spent += time.process_time() - started

    def get(self, url: str) -> Any:
        return self.run(lambda client: client.get(url))


def _exchanges(app: Any, org: Any, report: Report) -> None:
    from tests.builders import make_member
    from tests.oauth.conftest import exchange, get_code, make_app, sign_in

    member = make_member(org, "ann@acme.example")
    client_app = make_app()
    browser = app.test_client()
    sign_in(browser, member)
    seconds = []
    for _ in range(EXCHANGES):
        code = get_code(browser, client_app)
        started = time.perf_counter()
        response = exchange(browser, client_app, code)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise BenchmarkError(f"token endpoint answered {response.status_code}")
    report.add("token_exchange_ms", round(statistics.median(seconds) * 1000, 3), "ms")


def _brokered_logins(app: Any, org: Any, report: Report) -> None:
    from idp.actors import system_actor
    from idp.connections import services as connections
    from idp.connections.models import ConnectionKind
    from idp.db import db
    from idp.sso import oidc
    from tests.oauth.conftest import REDIRECT_URI, exchange, make_app, params
    from tests.peers import Browser, OidcIdp

    connection = connections.create_connection(
        system_actor(), org, kind=ConnectionKind.OIDC, name="Upstream", settings={}, secret=None
    )
    db.session.commit()
    secret = "bench-upstream-secret"  # noqa: S105 - the loopback IdP's throwaway client
    upstream_client = {
        "client_id": "gatehouse",
        "client_secret": secret,
        "redirect_uris": [f"{ISSUER}/sso/oidc/{connection.id}/callback"],
    }
    accounts = {"bo": {"password": "bo-password", "claims": {"email": "bo@acme.example"}}}
    client_app = make_app()
    cpu: list[float] = []
    with OidcIdp(clients=[upstream_client], accounts=accounts) as idp:
        settings = oidc.build_settings(idp.issuer, "gatehouse")
        connections.update_connection(
            system_actor(), org, connection, settings=settings, secret=secret
        )
        db.session.commit()
        for _ in range(LOGINS + 1):
            gatehouse = Metered(app.test_client())
            location = (
                "/oauth/authorize?response_type=code&scope=openid+email&state=s"
                f"&nonce={secrets.token_urlsafe(8)}"
                f"&client_id={client_app.client_id}&redirect_uri={REDIRECT_URI}"
                "&organization=acme"
            )
            upstream = None
            for _hop in range(10):  # Gatehouse's own redirects, until the upstream IdP's
                response = gatehouse.get(location)
                location = response.headers.get("Location", "")
                if location.startswith(idp.base_url):
                    upstream = location
                    break
                location = location.removeprefix(ISSUER)
            if upstream is None:
                raise BenchmarkError(f"the login never reached the upstream IdP ({location!r})")
            idp_browser = Browser([idp.base_url])
            page = idp_browser.get(upstream)
            done = idp_browser.submit_form(page, {"login": "bo", "password": "bo-password"})
            location = urlsplit(done.headers["Location"])._replace(scheme="", netloc="").geturl()
            for _hop in range(10):  # callback, then the authorize request again
                response = gatehouse.get(location)
                location = response.headers.get("Location", "")
                if location.startswith(REDIRECT_URI):
                    break
                location = location.removeprefix(ISSUER)
            else:
                raise BenchmarkError("the brokered login never came back to the app")
            tokens = gatehouse.run(exchange, client_app, params(location)["code"])
            if tokens.status_code != 200:
                raise BenchmarkError(f"token endpoint answered {tokens.status_code}")
            cpu.append(gatehouse.spent)
    cpu = cpu[1:]  # the first login fetched the upstream JWKS and provisioned the person
    report.add("brokered_login_cpu_ms", round(statistics.median(cpu) * 1000, 3), "ms")


def run(options: RunOptions) -> Report:
    report = Report(
        "oidc_provider",
        params={
            "exchanges": EXCHANGES,
            "logins": LOGINS,
            "upstream": "oidc-provider 9 on loopback",
            "gatehouse": "in process (Flask test client), one thread",
        },
    )
    with in_process_app(options) as (app, org):
        _exchanges(app, org, report)
        _brokered_logins(app, org, report)
    return report
