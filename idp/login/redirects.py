"""Where a browser may be sent after signing in: only here, never to another site."""

from __future__ import annotations

from urllib.parse import urlsplit

from idp.config import current_settings

DEFAULT = "/"


def safe_return_to(value: str | None) -> str:
    """``value`` if it is a path on this site or a URL on an allowed origin, else ``/``.

    Refuses scheme-relative (``//evil``), backslash (``/\\evil``) and control-character
    tricks that browsers resolve to another host.
    """
    if not value or len(value) > 2000 or any(ord(c) < 0x21 or c == "\\" for c in value):
        return DEFAULT
    parts = urlsplit(value)
    if not parts.scheme and not parts.netloc:
        return value if value.startswith("/") and not value.startswith("//") else DEFAULT
    if parts.scheme not in ("https", "http"):
        return DEFAULT
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return value if origin in allowed_origins() else DEFAULT


def allowed_origins() -> set[str]:
    """The issuer's origin and those of ``GATEHOUSE_RETURN_ORIGINS``."""
    settings = current_settings()
    issuer = urlsplit(settings.issuer)
    origins = {f"{issuer.scheme}://{issuer.netloc}".lower()}
    origins.update(
        o.strip().rstrip("/").lower() for o in settings.return_origins.split(",") if o.strip()
    )
    return origins
