"""Real reverse proxies on loopback for the forward-auth tests: nginx and Caddy (installed from
Debian when missing), a tiny upstream app that echoes what the proxy told it, and Gatehouse served
over HTTP by werkzeug in a thread."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from tests.debian import PackageUnavailable, ensure_deb

DOCS = Path(__file__).resolve().parent.parent / "docs" / "proxies"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0


class ProxyUnavailable(RuntimeError):
    """The proxy cannot be installed or started here; the message says why."""


def install_nginx() -> str:
    """The nginx binary, installed with apt-get (Debian's ``nginx``) if it is missing."""
    try:
        return ensure_deb("nginx", ("nginx", "/usr/sbin/nginx"))
    except PackageUnavailable as exc:
        raise ProxyUnavailable(str(exc)) from exc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, what: str, alive: Any = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise ProxyUnavailable(f"{what} exited during start-up")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ProxyUnavailable(f"{what} did not listen on {HOST}:{port} in {START_TIMEOUT:.0f}s")


# --- the upstream app ------------------------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    """Answers every GET with the ``X-Gatehouse-*`` headers it received, as JSON."""

    def do_GET(self) -> None:
        seen = {k: v for k, v in self.headers.items() if k.lower().startswith("x-gatehouse-")}
        body = json.dumps({"path": self.path, "headers": seen}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def echo_upstream() -> Iterator[int]:
    """The protected app: a stdlib HTTP server in a thread; yields its port."""
    server = ThreadingHTTPServer((HOST, 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_app(app: Any, port: int = 0) -> Iterator[int]:
    """Gatehouse itself over HTTP on loopback (werkzeug, threaded); yields its port."""
    server = make_server(HOST, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


# --- nginx -----------------------------------------------------------------------------------


def render_nginx_site(listen: int, gatehouse: int, upstream: int, name: str = "nginx.conf") -> str:
    """``docs/proxies/<name>`` with this test's ports in place of the documented ones."""
    text = (DOCS / name).read_text()
    for old, new in (
        ("listen 80;", f"listen {HOST}:{listen};"),
        ("127.0.0.1:8000", f"{HOST}:{gatehouse}"),
        ("127.0.0.1:3000", f"{HOST}:{upstream}"),
    ):
        if old not in text:
            raise AssertionError(f"docs/proxies/{name} no longer holds {old!r}")
        text = text.replace(old, new)
    return text


_MAIN = """events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/site.conf;
}}
"""


@dataclass(frozen=True)
class Proxy:
    port: int
    root: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """One request through nginx; the response is read, so ``.read()`` is not needed."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            response.body = response.read()  # type: ignore[attr-defined]
            return response
        finally:
            conn.close()

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def run_nginx(binary: str, root: Path, site: str, port: int) -> Iterator[Proxy]:
    """nginx in the foreground, one process, everything it writes under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "site.conf").write_text(site)
    (root / "nginx.conf").write_text(_MAIN.format(root=root))
    directives = (
        f"daemon off; master_process off; pid {root}/nginx.pid; error_log {root}/error.log;"
    )
    command = [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", directives]
    checked = subprocess.run(  # noqa: S603 - our own arguments
        [*command, "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    if checked.returncode != 0:
        raise AssertionError(f"nginx -t refused the config:\n{checked.stderr}")
    process = subprocess.Popen(  # noqa: S603 - our own arguments
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_port(port, "nginx", alive=lambda: process.poll() is None)
        yield Proxy(port, root)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


# --- Caddy -----------------------------------------------------------------------------------


def install_caddy() -> str:
    """The caddy binary, installed with apt-get (Debian's ``caddy``) if it is missing."""
    try:
        return ensure_deb("caddy", ("caddy", "/usr/bin/caddy"))
    except PackageUnavailable as exc:
        raise ProxyUnavailable(str(exc)) from exc


def render_caddyfile(listen: int, gatehouse: int, upstream: int) -> str:
    """``docs/proxies/Caddyfile`` over plain HTTP on this test's ports, the admin API off."""
    text = (DOCS / "Caddyfile").read_text()
    for old, new in (
        ("app.acme.example {", f"http://app.acme.example:{listen} {{\n\tbind {HOST}"),
        ("127.0.0.1:8000", f"{HOST}:{gatehouse}"),
        ("127.0.0.1:3000", f"{HOST}:{upstream}"),
    ):
        if old not in text:
            raise AssertionError(f"docs/proxies/Caddyfile no longer holds {old!r}")
        text = text.replace(old, new)
    return "{\n\tadmin off\n\tauto_https off\n}\n\n" + text


@contextmanager
def run_caddy(binary: str, root: Path, caddyfile: str, port: int) -> Iterator[Proxy]:
    """Caddy in the foreground, its data and config under ``root``; its log in error.log."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Caddyfile").write_text(caddyfile)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "XDG_DATA_HOME": str(root / "data")}
    env["XDG_CONFIG_HOME"] = str(root / "config")
    command = [binary, "run", "--config", str(root / "Caddyfile"), "--adapter", "caddyfile"]
    log = (root / "error.log").open("w")
    process = subprocess.Popen(  # noqa: S603 - our own arguments
        command, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        try:
            _wait_for_port(port, "caddy", alive=lambda: process.poll() is None)
        except ProxyUnavailable as exc:
            raise AssertionError(f"{exc}:\n{(root / 'error.log').read_text()[-2000:]}") from None
        yield Proxy(port, root)
    finally:
        _stop(process)
        log.close()
