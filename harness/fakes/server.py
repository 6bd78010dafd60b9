"""The loopback HTTP server every fake is built on: uvicorn in a background thread, a tiny ASGI router, recording.

Sync and async tests use it the same way (``with Fake(...) as fake: fake.url``). All request handling runs on the
server thread's event loop; counters are plain ints read from other threads, which is safe under the GIL.

Generation requests follow one path (``serve_generation``): record, pick a ``Reply``, wait its latency while
watching for the client to disconnect, then answer as scripted. A client that goes away before the answer is
complete is counted in ``disconnects`` -- how tests see that a race loser's connection was really closed. That
includes a client that went away before the server had read the request body (a loser cancelled just after sending
its headers): such a request counts in ``generations``, ``disconnects`` and ``unread``, and is not recorded in
``requests`` (it has no body), nor answered.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Self

import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from harness.fakes.script import RecordedRequest, Reply, Script, ScriptCursor

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


@dataclass
class Call:
    """One request being handled."""

    scope: dict[str, Any]
    receive: Receive
    send: Send
    record: RecordedRequest
    latency: float = 0.0

    @property
    def body(self) -> dict[str, Any]:
        return self.record.body if isinstance(self.record.body, dict) else {}


Handler = Callable[[Call], Awaitable[None]]


class FakeServer:
    """Base of the fakes. Subclasses register routes and render protocol bodies.

    Args:
        script: what to do with generation requests (see ``harness.fakes.script``).
        name: shown in the default answer text and the server thread's name.
        default_text: answer text when a Reply has none.
    """

    protocol = "fake"
    # Tests read ``requests``; a long benchmark sets this False, since a log that only grows makes each full garbage
    # collection longer (~100 ms after 20,000 requests), a stall every request in flight then waits out.
    keep_requests = True

    def __init__(self, script: Script = None, *, name: str | None = None, default_text: str | None = None) -> None:
        self.name = name or self.protocol
        self.default_text = default_text or f"Answer from {self.name}."
        self._cursor = ScriptCursor(script, Reply.ok())
        self.requests: list[RecordedRequest] = []
        self.generations = 0
        self.completed = 0
        self.disconnects = 0
        self.resets = 0
        self.unread = 0
        self.arrived = 0  # requests whose head was read: the app began reading their bodies
        self.in_flight = 0
        self.max_in_flight = 0
        self._routes: dict[tuple[str, str], Handler] = {}
        self._prefix_routes: list[tuple[str, str, Handler]] = []
        self._generation_routes: set[tuple[str, str]] = set()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.port = 0
        self._last_port = 0

    # --- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} is not running; use it as a context manager or call start()")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Serve in a background thread; a restarted fake gets its old port back, so hosts can "come back"."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._last_port))
        self.port = self._last_port = sock.getsockname()[1]
        self._stopping = False
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"fake-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} failed to start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping = True
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self.port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        # joining the server thread blocks; keep the caller's loop free meanwhile
        await asyncio.to_thread(self.stop)

    # --- scripting and recording -------------------------------------------------------------------------------

    @property
    def script(self) -> Script:
        return self._cursor.script

    @script.setter
    def script(self, script: Script) -> None:
        self._cursor = ScriptCursor(script, self._cursor.default)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def reset_counters(self) -> None:
        self.requests.clear()
        self.generations = self.completed = self.disconnects = self.resets = self.unread = self.arrived = 0
        self.max_in_flight = self.in_flight

    # --- routing -----------------------------------------------------------------------------------------------

    def route(self, method: str, path: str, handler: Handler, *, generation: bool | None = None) -> None:
        """Serve ``method path`` with ``handler``; ``generation`` (default: POST routes) marks a generation endpoint,
        where a request abandoned before its body was read still counts as a generation and a disconnect."""
        self._routes[(method, path)] = handler
        if method == "POST" if generation is None else generation:
            self._generation_routes.add((method, path))

    def route_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        self._prefix_routes.append((method, prefix, handler))

    async def _asgi(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        self.arrived += 1
        try:
            raw = await request.body()
        except ClientDisconnect:
            self._unread(scope)
            return
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        if self.keep_requests:
            self.requests.append(record)
        handler = self._routes.get((record.method, record.path))
        if handler is None:
            handler = next(
                (h for m, p, h in self._prefix_routes if m == record.method and record.path.startswith(p)), None
            )
        call = Call(scope, receive, send, record)
        if handler is None:
            await self.send_not_found(call)
            return
        await handler(call)

    def _unread(self, scope: dict[str, Any]) -> None:
        """The client went away before the body was read (starlette's ClientDisconnect): count, don't answer."""
        self.unread += 1
        if (scope["method"], scope["path"]) in self._generation_routes:
            self.generations += 1
            self.disconnects += 1

    async def send_not_found(self, call: Call) -> None:
        await self.send_json(call, 404, {"error": f"no route for {call.record.method} {call.record.path}"})

    # --- generation flow ---------------------------------------------------------------------------------------

    async def serve_generation(self, call: Call, *, stream: bool) -> None:
        """Record, pick the reply, wait its latency (watching for disconnect), answer."""
        self.generations += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self._cursor.next(call.record)
            if reply.kind == "hang":
                await self._hang(call)
                return
            call.latency = reply.delay()
            if not await self.pause(call, call.latency):
                return
            if reply.until is not None and not await self._hold(call, reply.until):
                return
            if reply.kind == "reset":
                self._abort(call)
                # let connection_lost run, so uvicorn sees the disconnect and does not log a missing response
                await asyncio.sleep(0)
                return
            if reply.kind == "error":
                status, body, headers = self.error_response(call, reply)
                await self.send_json(call, status, body, {**headers, **reply.headers})
            elif reply.kind == "malformed":
                await self.send_raw(call, 200, self.malformed_body(call), "application/json")
            elif reply.kind == "stream_error" and not stream:
                status, body, headers = self.error_response(call, Reply.error(500, reply.message))
                await self.send_json(call, status, body, headers)
            elif reply.kind == "stream_error":
                if not await self.send_stream(call, self.stream_error_chunks(call, reply), reply.chunk_delay):
                    return
            elif stream:
                chunks = self.stream_chunks(call, reply)
                if not await self.send_stream(call, chunks, reply.chunk_delay):
                    return
            else:
                await self.send_json(call, 200, self.ok_body(call, reply), dict(reply.headers))
            self.completed += 1
        finally:
            self.in_flight -= 1

    def answer_text(self, reply: Reply) -> str:
        return reply.text if reply.text is not None else self.default_text

    # protocol hooks
    def ok_body(self, call: Call, reply: Reply) -> Any:
        raise NotImplementedError

    def stream_chunks(self, call: Call, reply: Reply) -> list[bytes]:
        raise NotImplementedError

    def stream_error_chunks(self, call: Call, reply: Reply) -> list[bytes]:
        raise NotImplementedError

    def error_response(self, call: Call, reply: Reply) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def malformed_body(self, call: Call) -> bytes:
        return b'{"model": "x", "choices": [{"text": "cut off'

    stream_content_type = "application/x-ndjson"

    # --- waiting and disconnects -------------------------------------------------------------------------------

    async def pause(self, call: Call, seconds: float) -> bool:
        """Sleep, unless the client disconnects first; False (and counted) if it did."""
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self._until_disconnect(call.receive), timeout=seconds)
        except TimeoutError:
            return True
        self.disconnects += 1
        return False

    async def _hold(self, call: Call, release: threading.Event) -> bool:
        """Wait for ``release`` (set from any thread), unless the client disconnects first: False (and counted)."""
        while not release.is_set() and not self._stopping:
            try:
                await asyncio.wait_for(self._until_disconnect(call.receive), timeout=0.01)
            except TimeoutError:
                continue
            self.disconnects += 1
            return False
        return True

    async def _hang(self, call: Call) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._until_disconnect(call.receive), timeout=0.05)
            except TimeoutError:
                continue
            self.disconnects += 1
            return
        await self.send_json(call, 503, {"error": "fake server shutting down"})

    @staticmethod
    async def _until_disconnect(receive: Receive) -> None:
        # The body is already read, so the next message the server hands us is http.disconnect.
        while (await receive())["type"] != "http.disconnect":
            pass

    def _abort(self, call: Call) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), as a crashing server would."""
        cycle = getattr(call.send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:  # not running under uvicorn's protocol classes
            raise RuntimeError("cannot reach the transport to reset the connection")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        self.resets += 1

    # --- sending -----------------------------------------------------------------------------------------------

    async def send_json(self, call: Call, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        await self.send_raw(call, status, json.dumps(body).encode(), "application/json", headers)

    async def send_raw(
        self, call: Call, status: int, content: bytes, media_type: str, headers: dict[str, str] | None = None
    ) -> None:
        response = Response(content, status_code=status, media_type=media_type, headers=headers)
        await response(call.scope, call.receive, call.send)

    async def send_stream(self, call: Call, chunks: Iterable[bytes], chunk_delay: float) -> bool:
        """Send chunks as a chunked response; False (and counted) if the client left before the end."""
        await call.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", self.stream_content_type.encode())],
            }
        )
        for index, chunk in enumerate(chunks):
            if index and chunk_delay > 0 and not await self.pause(call, chunk_delay):
                return False
            await call.send({"type": "http.response.body", "body": chunk, "more_body": True})
        await call.send({"type": "http.response.body", "body": b"", "more_body": False})
        return True


# --- helpers shared by the protocol fakes ----------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """The fakes' token count: whitespace-separated words (deterministic, good enough for accounting tests)."""
    return len(text.split())


def shape_answer(text: str, max_tokens: int | None, stop: Iterable[str]) -> tuple[str, str]:
    """Apply stop sequences and the token limit the way a server would; returns (text, "stop" | "length")."""
    for sequence in stop:
        if sequence and sequence in text:
            text = text[: text.index(sequence)]
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length"
    return text, "stop"


def split_pieces(text: str) -> list[str]:
    """Stream pieces: words with their leading space, so joining them gives the text back."""
    words = text.split(" ")
    return [words[0], *(" " + w for w in words[1:])] if text else []


def stop_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [s for s in value or [] if isinstance(s, str)]
