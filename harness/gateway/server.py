"""Serve the gateway with uvicorn: in the foreground (the CLI) or in a background thread (tests, the benchmark).

Connections are handled by ``harness.gateway.connection``'s protocol: uvicorn's own, plus a deadline on receiving
each request and cancellation of the relay when a client leaves.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import uvicorn

from harness.errors import InputError
from harness.gateway.audit import AuditLog
from harness.gateway.connection import gateway_protocol
from harness.gateway.proxy import GatewayApp
from harness.gateway.settings import GatewaySettings
from harness.gateway.tokens import KeySet


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; an InputError (exit 2) when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
            hint="the port is taken or not permitted; choose another with --port",
        ) from exc
    return sock


class GatewayServer:
    """uvicorn serving a ``GatewayApp`` on an already-bound socket.

    Args:
        app: the gateway.
        sock: from ``bind``.
        request_timeout_s: limit on receiving a request (line, headers and body).
    """

    def __init__(self, app: GatewayApp, sock: socket.socket, *, request_timeout_s: float) -> None:
        self.app = app
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            app,
            interface="asgi3",
            http=gateway_protocol(request_timeout_s),
            lifespan="on",
            log_level="warning",
            access_log=False,  # the audit log is the access log
            proxy_headers=False,
            server_header=False,
            date_header=True,
            timeout_graceful_shutdown=5,
            backlog=4096,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self) -> None:
        """Serve in the foreground until interrupted."""
        # What exists at start-up lives as long as the server: frozen, a full collection no longer walks it, which
        # took ~100 ms per collection with the CLI's modules loaded, stalling every request in flight.
        gc.freeze()
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.app.audit.close()

    def start(self) -> Self:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="gateway", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway failed to start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.sock.close()
        self.app.audit.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def local_gateway(
    settings_for_port: Callable[[int], GatewaySettings],
    keys: KeySet,
    *,
    audit: AuditLog | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> GatewayServer:
    """A gateway on ``host:port`` (0: any free port), not yet started; the settings may depend on the bound port
    (the Host allow-list names it)."""
    sock = bind(host, port)
    try:
        settings = settings_for_port(int(sock.getsockname()[1]))
        app = GatewayApp(settings, keys, audit=audit or AuditLog(settings.audit_log))
    except BaseException:
        sock.close()
        raise
    return GatewayServer(app, sock, request_timeout_s=settings.limits.header_timeout_s)
