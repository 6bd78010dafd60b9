"""Serve the gateway with uvicorn: in the foreground (the CLI) or in a background thread (tests, the benchmark).

uvicorn has a keep-alive timeout but no limit on how long a client may take to send its request headers, so a
client trickling header bytes (slowloris) would hold a connection forever. ``_HeaderTimeoutProtocol`` adds that
limit on top of uvicorn's httptools protocol: a timer armed when a connection opens or a new request begins, and
disarmed once the headers are complete; when it fires the client gets a 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from harness.errors import InputError
from harness.gateway.audit import AuditLog
from harness.gateway.proxy import GatewayApp
from harness.gateway.settings import GatewaySettings
from harness.gateway.tokens import KeySet

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a ``seconds`` limit on receiving each request's line and headers."""

    class _HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.write(_REQUEST_TIMEOUT)
                self.transport.close()

    return _HeaderTimeoutProtocol


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
        header_timeout_s: limit on receiving a request's headers.
    """

    def __init__(self, app: GatewayApp, sock: socket.socket, *, header_timeout_s: float) -> None:
        self.app = app
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            app,
            interface="asgi3",
            http=header_timeout_protocol(header_timeout_s),
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
    return GatewayServer(app, sock, header_timeout_s=settings.limits.header_timeout_s)
