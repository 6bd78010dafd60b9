"""The gateway's HTTP connections: uvicorn's httptools protocol with two additions the proxy relies on.

1. **A request deadline.** uvicorn limits how long a connection may idle between requests, but not how long a client
   may take to send one, so a client trickling bytes (slowloris) would hold a connection forever. One timer, armed
   when a connection opens or a request begins and disarmed once the whole request (line, headers and body) has
   arrived, bounds both. When it fires before any answer, the client gets a 408 and the connection is closed, and
   the request's scope is marked ``REQUEST_TIMED_OUT`` so the app's audit line says why.
2. **The client leaving.** An app that registers its task under ``CANCEL_ON_DISCONNECT`` in the scope has that task
   cancelled, with the scope marked ``CLIENT_LEFT``, the moment the client's connection is lost before the answer
   is complete. The proxy needs this to stop an upstream generation nobody will read; asking through the ASGI
   ``receive`` instead costs a watcher task per request.

Both are per-connection timers and flags on a protocol uvicorn already runs, so they cost next to nothing per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Scope keys shared with the app (harness.gateway.proxy).
REQUEST_TIMED_OUT = "harness.gateway.request_timed_out"
CANCEL_ON_DISCONNECT = "harness.gateway.cancel_on_disconnect"
CLIENT_LEFT = "harness.gateway.client_left"

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def gateway_protocol(request_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a ``request_timeout_s`` limit on receiving each request, and cancellation
    of a registered task when the client leaves."""

    class _GatewayProtocol(HttpToolsProtocol):
        _request_timer: asyncio.TimerHandle | None = None
        _reading_body = False  # the current request's headers are in, its body is not

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading_body = False
            self._arm()

        def on_headers_complete(self) -> None:
            self._reading_body = True  # the timer stays armed: the body is under the same deadline
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._reading_body = False
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                task: asyncio.Task[Any] | None = cycle.scope.get(CANCEL_ON_DISCONNECT)  # type: ignore[assignment]
                if task is not None and not task.done():
                    cycle.scope[CLIENT_LEFT] = True  # type: ignore[literal-required]
                    task.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._request_timer = self.loop.call_later(request_timeout_s, self._request_too_slow)

        def _disarm(self) -> None:
            if self._request_timer is not None:
                self._request_timer.cancel()
                self._request_timer = None

        def _request_too_slow(self) -> None:
            self._request_timer = None
            if self.transport.is_closing():
                return
            if self._reading_body:
                if self.cycle.response_started:  # already answered (a refusal); stop waiting for the rest
                    self.transport.close()
                    return
                self.cycle.scope[REQUEST_TIMED_OUT] = True  # type: ignore[literal-required]
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

    return _GatewayProtocol
