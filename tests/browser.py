"""A real browser for the page tests: Debian's chromium, headless, driven by Playwright for
Python (its own browser download cannot work offline, so the package's driver launches the
system binary). Each test gets fresh, isolated contexts -- one per person or device.

Hostnames: ``hosts`` maps names the pages use (``gatehouse.test``) to 127.0.0.1 through
chromium's ``--host-resolver-rules``, so cookies and origins are those of the real hosts while
every connection stays on loopback."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

from tests.debian import ensure_deb

LAUNCH_TIMEOUT_MS = 30_000
ACTION_TIMEOUT_MS = 10_000
# Chromium reaches for Google's services at start; this machine's network is closed, so
# those connections are turned off rather than left to fail many at a time.
FLAGS = (
    "--no-sandbox",  # root in a container: the setuid sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
)


def chromium_binary() -> str:
    return ensure_deb("chromium", ("/usr/bin/chromium", "chromium"))


@contextmanager
def chromium(hosts: Sequence[str] = ()) -> Iterator[Browser]:
    """Headless chromium with ``hosts`` resolving to 127.0.0.1; closed afterwards."""
    rules = ", ".join(f"MAP {host} 127.0.0.1" for host in hosts)
    args = [*FLAGS, f"--host-resolver-rules={rules}"] if rules else list(FLAGS)
    with sync_playwright() as playwright:  # a new, empty profile per launch
        browser = playwright.chromium.launch(
            executable_path=chromium_binary(), args=args, headless=True, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()
