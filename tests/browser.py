"""A real browser for the page tests: Debian's chromium, headless, driven by Playwright for
Python (its own browser download cannot work offline, so the package's driver launches the
system binary). Each test gets fresh, isolated contexts -- one per person or device.

Hostnames: ``hosts`` maps names the pages use (``gatehouse.test``) to 127.0.0.1 through
chromium's ``--host-resolver-rules``, so cookies and origins are those of the real hosts while
every connection stays on loopback."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

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


def new_page(browser: Browser) -> Page:
    """A fresh browser profile (its own cookies): another person, or another device."""
    page = browser.new_context().new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    return page


A11Y = Path(__file__).parent / "a11y"  # npm axe-core, installed on first use
SERIOUS = ("serious", "critical")


@cache
def axe_source() -> str:
    """axe-core's script (npm ``axe-core``, installed into tests/a11y once; a lock keeps
    parallel test processes from installing it twice)."""
    script = A11Y / "node_modules" / "axe-core" / "axe.min.js"
    with (A11Y / "package.json").open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not script.is_file():
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],  # noqa: S607 - npm on PATH
                cwd=A11Y,
                check=True,
                capture_output=True,
                timeout=300,
            )
    return script.read_text()


def serious_findings(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it stands (run through the
    devtools protocol, which the page's CSP does not govern)."""
    page.evaluate(axe_source())
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in found
        if v["impact"] in SERIOUS
    ]


def screenshot(page: Page, name: str) -> None:
    """With ``GATEHOUSE_SCREENSHOTS`` naming a folder (``docs/screenshots`` for the docs), the
    page as it stands is saved there as ``<name>.png``; otherwise nothing is written."""
    folder = os.environ.get("GATEHOUSE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
