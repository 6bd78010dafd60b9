"""The gateway's ASGI app: check the request, then stream it to an upstream and the answer back, chunk by chunk.

A bare ASGI app rather than a Starlette router: the allow-list must see the raw path as the client sent it
(``scope["raw_path"]``), before any decoding, and the relay must stop the moment the client goes away, even while it
still waits for the upstream's first byte, which a router endpoint does not see. It relies on the server's connection
protocol (``harness.gateway.connection``) for two things: the deadline on receiving a request, body included, and
cancelling the relay when the client leaves.

Checks run cheapest and least revealing first, and every refusal happens before any upstream is contacted:
Host allow-list → no query string → canonical path → bearer token → exact route → scope → rate limit → body size
→ an upstream slot. DESIGN.md keeps ``httpx`` inside ``providers/``; this proxy is the documented other user.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.responses import JSONResponse

from harness.gateway.audit import AuditLog, AuditRecord
from harness.gateway.connection import CANCEL_ON_DISCONNECT, CLIENT_LEFT, REQUEST_TIMED_OUT
from harness.gateway.headers import RequestHeaders, client_headers, read_request_headers
from harness.gateway.paths import RouteTable, check_path
from harness.gateway.ratelimit import RateLimiter, retry_after_header
from harness.gateway.revocation import DenyList
from harness.gateway.settings import GatewaySettings
from harness.gateway.tokens import Claims, KeySet, TokenRejected, VerifiedTokens
from harness.providers.transport import AiohttpTransport, RawResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class _Upstream:
    url: str
    netloc: str
    in_flight: int = 0


class _Refused(Exception):
    """A request refused before any upstream was contacted."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class GatewayApp:
    """The proxy. One instance per server; its connection pool is created on the server's own event loop.

    Args:
        settings: upstreams, allowed hosts, token policy, limits.
        keys: the keys tokens are verified with.
        audit: where each request's audit line goes.
        transport: the providers' transport requests go upstream through (default: aiohttp's pool, real HTTP),
            called below httpx's Request and Response objects (``send_raw``): a proxy relays bytes and needs none
            of their header parsing, which was a tenth of the gateway's CPU per request. Failures still arrive as
            httpx's exception types.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        keys: KeySet,
        *,
        audit: AuditLog,
        transport: AiohttpTransport | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.audit = audit
        self.routes = RouteTable.build(openai=settings.openai)
        self.verified = VerifiedTokens()
        self.limiter = RateLimiter(settings.limits.rate_per_s, settings.limits.burst)
        self.deny_list = DenyList(settings.deny_list) if settings.deny_list else None
        self.upstreams = [_Upstream(url.rstrip("/"), urlsplit(url).netloc.lower()) for url in settings.upstreams]
        limits = settings.limits
        # Idle connections are dropped after 2 s, before common servers' own 5 s idle timeout: reusing a
        # connection the upstream is closing at that moment would turn a good request into a 502.
        self._transport = transport or AiohttpTransport(max_connections=limits.max_upstream, keepalive_expiry=2.0)
        self._slots: asyncio.Semaphore | None = None
        self.queued = 0  # requests waiting for an upstream slot now
        self._next = 0
        # request ids: a random per-process prefix and a counter, unique without a call to the OS's random source
        self._id_prefix = secrets.token_hex(4)
        self._ids = itertools.count()

    # --- ASGI entry --------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: nothing of ours speaks them
            return
        started = time.perf_counter()
        client = scope.get("client") or ("", 0)
        record = AuditRecord(
            ts=time.time(),
            request_id=f"{self._id_prefix}{next(self._ids):08x}",
            client=str(client[0]),
            method=str(scope["method"]),
            route="",
            status=500,
        )
        try:
            await self._handle(scope, receive, send, record)
        except _Refused as refusal:
            record.status, record.reason = refusal.status, refusal.message
            await _send_error(scope, receive, send, refusal.status, refusal.message, record, refusal.headers)
        finally:
            record.latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
            self.audit.write(record)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        await self._transport.aclose()

    # --- checks ------------------------------------------------------------------------------------------------

    async def _handle(self, scope: Scope, receive: Receive, send: Send, record: AuditRecord) -> None:
        headers = read_request_headers(scope["headers"])
        path = check_path(scope.get("raw_path") or scope["path"].encode("utf-8"))
        record.route = path.normalised  # what even a refused request was aiming at, for the audit log
        hosts = headers.hosts
        if len(hosts) != 1 or hosts[0].lower() not in self.settings.allowed_hosts:
            raise _Refused(421, "this gateway does not serve that host name")
        if scope.get("query_string"):
            raise _Refused(400, "query strings are refused; send the token in the Authorization header")
        if not path.canonical:
            raise _Refused(400, "the path is not in canonical form (no encoding, dot segments or doubled slashes)")
        claims = self._authenticate(headers)
        record.subject, record.jti = claims.sub, claims.jti
        upstream_path = self._strip_prefix(path.normalised)
        route = self.routes.match(record.method, upstream_path)
        if route is None:
            if self.routes.allows_path(upstream_path):
                raise _Refused(405, "method not allowed on this route")
            raise _Refused(404, "route not allowed through the gateway")
        if route.scope not in claims.scopes:
            raise _Refused(403, f"the token's scope does not cover {route.scope}")
        wait = self.limiter.take(claims.sub, time.monotonic())
        if wait > 0:
            raise _Refused(429, "rate limit exceeded", {"retry-after": retry_after_header(wait)})
        body = await self._read_body(headers, receive)
        if body is None:
            if scope.get(REQUEST_TIMED_OUT):  # the connection already answered 408 and closed
                record.status, record.reason = 408, "the request body arrived too slowly"
            else:
                record.status, record.reason = 499, "client disconnected while sending"
            return
        record.bytes_in = len(body)
        await self._forward(scope, receive, send, record, headers, body, upstream_path)

    def _strip_prefix(self, path: str) -> str:
        """The path without the configured prefix (a gateway served under e.g. /gpu-b); "" when it lacks it."""
        prefix = self.settings.prefix
        if not prefix:
            return path
        return path[len(prefix) :] if path.startswith(prefix + "/") else ""

    def _authenticate(self, headers: RequestHeaders) -> Claims:
        values = headers.authorizations
        if len(values) != 1:
            raise _Refused(401, "a bearer token is required", {"www-authenticate": "Bearer"})
        scheme, _, token = values[0].partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(401, "a bearer token is required", {"www-authenticate": "Bearer"})
        denied = self.deny_list.current() if self.deny_list else frozenset()
        try:
            return self.verified.verify_cached(token.strip(), self.keys, self.settings.policy, denied)
        except TokenRejected as exc:
            raise _Refused(401, exc.message, {"www-authenticate": 'Bearer error="invalid_token"'}) from None

    async def _read_body(self, headers: RequestHeaders, receive: Receive) -> bytes | None:
        """The body, counted as it arrives, so a chunked body cannot slip past the limit. None when the connection
        went away first: the client left, or was too slow (the connection's request deadline covers the body)."""
        limit = self.settings.limits.max_body_bytes
        declared = headers.content_length
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise _Refused(413, f"request body over the {limit}-byte limit")
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"request body over the {limit}-byte limit")
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    # --- forwarding --------------------------------------------------------------------------------------------

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: AuditRecord,
        headers: RequestHeaders,
        body: bytes,
        upstream_path: str,
    ) -> None:
        # From here the connection cancels this task if the client leaves: a request still waiting for a slot is
        # dropped, and one at an upstream has its connection closed, which stops the generation.
        task = asyncio.current_task()
        assert task is not None
        scope[CANCEL_ON_DISCONNECT] = task
        try:
            slots = await self._take_slot()
            upstream = self._pick_upstream()
            upstream.in_flight += 1
            record.upstream = upstream.url
            try:
                await self._relay(scope, receive, send, record, headers, body, upstream, upstream_path)
            finally:
                upstream.in_flight -= 1
                slots.release()
        except asyncio.CancelledError:
            if not scope.get(CLIENT_LEFT):
                raise  # cancelled from outside (the server shutting down), not for a departed client
            task.uncancel()
            record.status, record.reason = 499, "client disconnected"
        finally:
            del scope[CANCEL_ON_DISCONNECT]

    async def _relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: AuditRecord,
        headers: RequestHeaders,
        body: bytes,
        upstream: _Upstream,
        upstream_path: str,
    ) -> None:
        limits = self.settings.limits
        try:
            response = await self._transport.send_raw(
                record.method,
                upstream.url + upstream_path,
                headers.forwarded,
                body,
                connect_timeout=limits.connect_timeout_s,
                read_timeout=limits.upstream_timeout_s,
            )
        except httpx.TimeoutException as exc:
            record.status, record.reason = 504, f"upstream timed out ({type(exc).__name__})"
            await _send_error(scope, receive, send, 504, "upstream timed out", record)
            return
        except httpx.HTTPError as exc:
            record.status, record.reason = 502, f"upstream failed ({type(exc).__name__})"
            await _send_error(scope, receive, send, 502, "upstream unavailable", record)
            return
        await self._stream_back(send, record, response, upstream)

    async def _stream_back(self, send: Send, record: AuditRecord, response: RawResponse, upstream: _Upstream) -> None:
        try:
            record.status = response.status
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": client_headers(response.raw_headers, upstream.netloc, record.request_id),
                }
            )
            async for chunk in response.chunks():
                record.bytes_out += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as exc:
            # The status line is already sent; ending the body cleanly would pass a cut answer off as whole.
            record.reason = f"upstream failed mid-answer ({type(exc).__name__})"
            raise UpstreamBroke(record.reason) from None
        finally:
            response.close()

    def _pick_upstream(self) -> _Upstream:
        """The least busy upstream; ties go round-robin so idle upstreams share the load."""
        count = len(self.upstreams)
        order = [self.upstreams[(self._next + i) % count] for i in range(count)]
        self._next = (self._next + 1) % count
        return min(order, key=lambda u: u.in_flight)

    async def _take_slot(self) -> asyncio.Semaphore:
        """An upstream slot, taken (release it on the semaphore returned); a 503 when none frees up in time."""
        slots = self._slots_here()
        if not slots.locked():  # only a full gateway waits, and pays for wait_for's extra task
            await slots.acquire()
            return slots
        self.queued += 1
        try:
            await asyncio.wait_for(slots.acquire(), timeout=self.settings.limits.queue_timeout_s)
        except TimeoutError:
            raise _Refused(503, "the gateway is at its concurrency limit", {"retry-after": "1"}) from None
        finally:
            self.queued -= 1
        return slots

    def _slots_here(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.limits.max_upstream)
        return self._slots


class UpstreamBroke(Exception):
    """The upstream failed after the answer had started; the client connection is dropped so it sees a cut answer."""


async def _send_error(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    message: str,
    record: AuditRecord,
    headers: dict[str, str] | None = None,
) -> None:
    """A short JSON error. Its text is ours alone: nothing of the upstream's address or error body is echoed."""
    response = JSONResponse(
        {"error": message, "request_id": record.request_id},
        status_code=status,
        headers={**(headers or {}), "x-request-id": record.request_id, "cache-control": "no-store"},
    )
    await response(scope, receive, send)
