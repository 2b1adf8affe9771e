"""The migrations build the schema the models describe, on the database under test."""

from __future__ import annotations

from flask import Flask
from flask_migrate import check


def test_models_and_migrations_agree(app: Flask) -> None:
    check()  # exits non-zero (failing this test) if autogenerate finds any difference


def test_saml_toolkit_imports() -> None:
    """python3-saml loads: lxml and xmlsec link the same libxml2."""
    import lxml.etree
    import xmlsec
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    assert xmlsec.get_libxml_version() == lxml.etree.LIBXML_VERSION
    assert OneLogin_Saml2_Auth is not None
