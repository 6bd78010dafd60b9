"""An httpx transport that moves the bytes through aiohttp's connection pool.

httpx stays the interface everywhere (requests, responses, streaming, its exception types); only the transport under it
changes. Why: httpcore's pool walks every connection on each request and response, so its cost per call grows with
the number of open connections, and its anyio layers cost several event-loop turns per call. aiohttp's pool hands out
a connection in constant time and parses HTTP in C. Measured on loopback at 200 concurrent calls against a
zero-latency fake (bench/dispatch.py prints the same comparison): one httpx client with 200 connections ~140 calls/s,
httpx clients of 4 connections each ~450, httpx on this transport ~970, bare aiohttp ~1,400.

Cancellation is what racing relies on: a call cancelled before its answer is complete closes its connection (aiohttp
never returns a connection with an unread answer to the pool), so the server sees the disconnect and can stop
generating, and the pool keeps no trace of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

import aiohttp
import httpx

# Checked in order: the first aiohttp class that matches decides the httpx class (subclasses come before parents).
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # an unparsable status line or headers
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.NetworkError),
)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    # callers reuse a handful of timeouts; building the frozen attrs object per call is a measurable share
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request | None) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__, request=request) from exc
        raise


@dataclass(slots=True)
class RawResponse:
    """An answer as bytes, below httpx's Response: for a proxy, which relays the bytes and needs none of httpx's
    header parsing. Errors arrive as httpx's exception types, as through ``handle_async_request``."""

    _response: aiohttp.ClientResponse
    _request: httpx.Request | None = None

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def reason(self) -> str:
        return self._response.reason or ""

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._response.raw_headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    def close(self) -> None:
        """Done with it: a body not read to the end closes the connection rather than pooling it."""
        self._response.release()


class _ResponseStream(httpx.AsyncByteStream):
    """httpx's view of a ``RawResponse``'s body."""

    def __init__(self, response: RawResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._response.chunks()

    async def aclose(self) -> None:
        self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface on an aiohttp session (one per event loop, created on first use).

    Args:
        max_connections: cap on open connections (None: no cap; callers bound their concurrency themselves).
        keepalive_expiry: seconds an idle connection is kept for reuse.
        verify: TLS context for https upstreams (default: httpx's, the same trust store an httpx client would use,
            built once per process: building one takes ~40 ms).
    """

    def __init__(
        self,
        *,
        max_connections: int | None = None,
        keepalive_expiry: float = 5.0,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl = verify
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._abandon()
            connector = aiohttp.TCPConnector(
                limit=self._max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
                ssl=self._ssl or _default_tls(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies, if any
                auto_decompress=False,  # httpx decodes content-encoding itself; the gateway relays it untouched
                trust_env=False,  # httpx resolves proxies from the environment before a request reaches here
                # send exactly the request's own headers: no default User-Agent, Accept or Content-Type
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._loop = loop
        return self._session

    def _abandon(self) -> None:
        """Drop a session made on another (possibly closed) event loop: its connections cannot serve this one."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            connector = session.connector
            session.detach()
            if connector is not None:
                connector._close()  # noqa: SLF001 -- the synchronous close; the awaitable one needs the old loop

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() != b"transfer-encoding"  # the body is sent whole, with its length
        ]
        response = await self.send_raw(
            request.method,
            str(request.url),
            headers,
            body,
            connect_timeout=timeout.get("connect"),
            read_timeout=timeout.get("read"),
            request=request,
        )
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode("latin-1")},
        )

    async def send_raw(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        request: httpx.Request | None = None,
    ) -> RawResponse:
        """Send a request whose headers are already final (host and content-length are set from ``url`` and
        ``body``); the answer's status and headers, with its body still to read. ``request``, when given, is what
        httpx's exceptions name."""
        session = self._session_here()
        with _as_httpx_errors(request):
            response = await session.request(
                method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                compress=None,
                timeout=_client_timeout(connect_timeout, read_timeout),
            )
        return RawResponse(response, request)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        if self._loop is asyncio.get_running_loop():
            await session.close()
        else:
            self._session = session
            self._abandon()
