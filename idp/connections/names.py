"""Domain names as Gatehouse stores and compares them (org domains, email domains, policies)."""

from __future__ import annotations

import re

import idna

from idp.connections.models import MAX_DOMAIN
from idp.errors import BadRequest

# An LDH label (RFC 1123 §2.1); IDNs arrive here already as A-labels ("xn--...").
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_domain(value: str) -> str:
    """The stored form: IDNA-encoded (UTS #46, IDNA 2008), lowercase, without a trailing dot.

    A hostname with at least two labels; IP addresses, wildcards and single labels
    (``localhost``, a bare TLD) are refused as ``invalid_domain``.
    """
    text = (value or "").strip()
    text = text[:-1] if text.endswith(".") else text
    try:
        name = idna.encode(text, uts46=True).decode("ascii") if len(text) <= 4 * MAX_DOMAIN else ""
    except (idna.IDNAError, UnicodeError):
        name = ""
    labels = name.split(".")
    if (
        len(name) > MAX_DOMAIN
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()  # no top-level domain is numeric: this is an IPv4 address
    ):
        raise BadRequest(
            "invalid_domain",
            "A domain is a hostname with at least one dot, like example.com "
            "(no IP addresses, wildcards or single labels)",
            field="domain",
        )
    return name


def email_domain(email: str | None) -> str | None:
    """The normalized domain of an email address, or ``None`` if it has no usable one."""
    _, at, domain = (email or "").strip().rpartition("@")
    if not at:
        return None
    try:
        return normalize_domain(domain)
    except BadRequest:
        return None
