"""The setup portal's pages without a browser: headers, CSRF, the link's scope and lifetime,
tenant isolation, errors as pages, and the IdP guides kept in step with docs/idps/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp.actors import system_actor
from idp.connections.models import Connection, ConnectionTest
from idp.console import guides
from idp.db import db
from idp.sso.saml import new_sp_keypair
from idp.sso.setup import add_saml_connection
from tests.builders import auth, make_org

DOCS = Path(__file__).resolve().parents[2] / "docs" / "idps"


def open_link(client: FlaskClient, root_key: str, slug: str, *intents: str) -> str:
    made = client.post(
        f"/api/v1/orgs/{slug}/setup-links", json={"intents": list(intents)}, headers=auth(root_key)
    )
    link_id = made.json["id"]
    assert client.get("/setup/" + made.json["url"].rsplit("/", 1)[1]).status_code == 303
    return link_id


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def test_pages_are_kept_out_of_frames_caches_and_referrers(
    client: FlaskClient, root_key: str
) -> None:
    make_org("acme")
    open_link(client, root_key, "acme", "sso")
    page = client.get("/setup")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'nonce-" in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "same-origin"  # its token never leaves the site
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    cookie = next(c for c in client._cookies.values() if c.key == "gatehouse_setup")
    assert cookie.path == "/setup" and cookie.http_only


def test_a_form_without_its_csrf_token_changes_nothing(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    open_link(client, root_key, "acme", "sso")
    refused = client.post("/setup/sso", data={"idp": "okta"})
    assert refused.status_code == 400
    assert refused.headers["X-Gatehouse-Error"] == "csrf_token_invalid"
    assert "Nothing was done" in refused.text
    made = client.post("/setup/sso", data={"idp": "okta", "csrf_token": csrf(client, "/setup/sso")})
    assert made.status_code == 303
    assert db.session.scalar(select(func.count()).select_from(Connection)) == 1


def test_a_link_opens_only_what_its_intents_name(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    open_link(client, root_key, "acme", "scim")
    refused = client.get("/setup/sso")
    assert refused.status_code == 403 and refused.headers["X-Gatehouse-Error"] == "setup_link_scope"
    assert refused.content_type.startswith("text/html")
    assert client.get("/setup/domains").status_code == 403
    assert client.get("/setup/scim").status_code == 200


def test_a_revoked_link_stops_at_the_next_click(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    link_id = open_link(client, root_key, "acme", "sso")
    assert client.get("/setup").status_code == 200
    client.delete(f"/api/v1/orgs/acme/setup-links/{link_id}", headers=auth(root_key))
    stopped = client.get("/setup")
    assert stopped.status_code == 403 and "not valid" in stopped.text
    assert "Traceback" not in stopped.text


def test_another_orgs_connection_is_not_found(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    make_org("beta")
    open_link(client, root_key, "beta", "sso")
    theirs = client.post(
        "/setup/sso", data={"idp": "saml", "csrf_token": csrf(client, "/setup/sso")}
    )
    beta_connection = theirs.headers["Location"].rsplit("/", 1)[1]
    client.delete_cookie("gatehouse_setup", path="/setup")
    open_link(client, root_key, "acme", "sso")
    crossed = client.get(f"/setup/sso/{beta_connection}")
    assert (
        crossed.status_code == 404
        and crossed.headers["X-Gatehouse-Error"] == "connection_not_found"
    )
    assert client.get(f"/setup/sso/{beta_connection}/metadata.xml").status_code == 404


def test_unknown_pages_are_pages(client: FlaskClient) -> None:
    missing = client.get("/setup/a/b/c")
    assert missing.status_code == 404 and missing.content_type.startswith("text/html")


@pytest.mark.parametrize("guide", list(guides.GUIDES.values()), ids=lambda g: g.key)
def test_the_docs_hold_each_guide_as_the_pages_show_it(guide: guides.Guide) -> None:
    assert (DOCS / f"{guide.key}.md").read_text() == guides.markdown(guide)


def test_a_guide_step_is_escaped_before_it_is_marked_up() -> None:
    html = guides.render_step("**Open** `{acs_url}` <b>", {"acs_url": "<script>x</script>"})
    assert str(html) == (
        "<strong>Open</strong> <code>&lt;script&gt;x&lt;/script&gt;</code> &lt;b&gt;"
    )


def test_the_attribute_mapping_is_changed_beside_the_trace(
    client: FlaskClient, root_key: str
) -> None:
    org = make_org("acme")
    cert, _ = new_sp_keypair("idp.test")
    connection = add_saml_connection(
        system_actor(),
        org,
        name="Okta",
        preset="okta",
        idp_entity_id="https://idp.example/saml",
        sso_url="https://idp.example/sso",
        idp_certs=[cert],
    )
    test = ConnectionTest(
        connection_id=connection.id, request_id="_t1", started_by="x", return_to="/", checks=[]
    )
    db.session.add(test)
    db.session.commit()
    open_link(client, root_key, "acme", "sso")
    path = f"/setup/sso/{connection.id}/tests/{test.id}"
    page = client.get(path)
    assert 'value="email"' in page.text  # Okta's preset
    bad = client.post(path, data={"csrf_token": csrf(client, path), "email": "x" * 300})
    assert bad.status_code == 400 and 'id="email-error"' in bad.text
    saved = client.post(
        path, data={"csrf_token": csrf(client, path), "email": "mail, email", "groups": "memberOf"}
    )
    assert saved.status_code == 303
    db.session.refresh(connection)
    assert connection.settings["attribute_map"]["email"] == ["mail", "email"]
    assert connection.settings["attribute_map"]["groups"] == ["memberOf"]


def test_a_saml_idp_without_metadata_is_given_by_hand(client: FlaskClient, root_key: str) -> None:
    make_org("acme")
    open_link(client, root_key, "acme", "sso")
    made = client.post("/setup/sso", data={"idp": "saml", "csrf_token": csrf(client, "/setup/sso")})
    path = made.headers["Location"]
    token = csrf(client, path)
    half = client.post(
        path, data={"csrf_token": token, "idp_entity_id": "https://idp.example/saml"}
    )
    assert half.status_code == 400 and "By hand, give the entity id" in half.text
    assert 'value="https://idp.example/saml"' in half.text  # what was typed is kept
    wrong = {
        "csrf_token": token,
        "idp_entity_id": "https://idp.example/saml",
        "sso_url": "https://idp.example/sso",
        "idp_certificate": "not a certificate",
    }
    refused = client.post(path, data=wrong)
    assert refused.status_code == 400 and 'id="idp_certificate-error"' in refused.text
    cert, _ = new_sp_keypair("idp.test")
    saved = client.post(path, data={**wrong, "idp_certificate": cert})
    assert saved.status_code == 303
    connection = db.session.scalars(select(Connection)).one()
    assert connection.draft is False and connection.settings["sso_url"] == "https://idp.example/sso"
