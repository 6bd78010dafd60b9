"""Shared httpx plumbing for the local-host providers.

Small pooled ``httpx.AsyncClient``s per provider, one semaphore per (event loop, base URL), bearer tokens from the
environment, and the translation of every transport or HTTP failure into ``ProviderError`` with ``status`` and
``retryable``. Subclasses only build payloads and parse bodies.

Cancellation (how race losers are stopped) needs care with httpcore 1.0.9, whose connection pool can lose track of a
cancelled request (encode/httpcore#830, #1093; fix proposed in #1099, unreleased):

* A request cancelled while queued for a connection, after the pool created one for it, leaves that connection in
  the pool, never connected and never reaped. Requests queue only when a pool is at its connection cap, so the httpx
  pools have none (``ClientPool``'s lending and the host semaphore bound the connections).
* A ``Task.cancel()`` that lands in httpcore's clean-up -- e.g. a loser cancelled just as its answer arrived -- cuts
  it short: httpcore shields it with anyio cancel scopes, which stop only scope cancellation. The pool keeps the
  request and its connection for good. ``ClientPool`` checks the pool each time a call gives its client back and
  retires a client that holds such orphans (no new calls, closed after its last one). Running each call in a child
  task stopped through a cancel scope would let the shields hold, but costs event-loop turns on every call: +40 ms
  median at 200 concurrent calls in bench/dispatch.py, for a leak that retiring a client repairs in microseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from harness.errors import InputError, ProviderError
from harness.providers.types import Generation, GenerationRequest, ServerTiming, Usage

if TYPE_CHECKING:
    from harness.config.fleet import Host

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
CONNECTIONS_PER_CLIENT = 4

# Statuses worth sending again, possibly to another host: the server is busy, restarting or overloaded.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})

# loop -> base URL -> [semaphore, number of open providers using it]
_SEMAPHORES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, list[Any]]] = weakref.WeakKeyDictionary()


def acquire_host_semaphore(base_url: str, limit: int) -> asyncio.Semaphore:
    """The semaphore bounding concurrent requests to one base URL on the running loop; registers one user.

    Keyed by base URL (not by host entry or token) because the server's parallelism is what is limited. While any
    provider of a URL is open, later providers of that URL share the first one's limit. Keyed by loop too, since an
    asyncio semaphore belongs to one loop. Pair with ``release_host_semaphore``.
    """
    loop = asyncio.get_running_loop()
    per_loop = _SEMAPHORES.get(loop)
    if per_loop is None:
        per_loop = _SEMAPHORES[loop] = {}
    entry = per_loop.get(base_url)
    if entry is None:
        entry = per_loop[base_url] = [asyncio.Semaphore(limit), 0]
    entry[1] += 1
    return entry[0]


def release_host_semaphore(loop: asyncio.AbstractEventLoop, base_url: str) -> None:
    per_loop = _SEMAPHORES.get(loop)
    entry = per_loop.get(base_url) if per_loop else None
    if entry is None or per_loop is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del per_loop[base_url]


def bearer_headers(host: Host) -> dict[str, str]:
    """``Authorization`` header from ``host.token_env``; raises InputError when the variable is unset or empty."""
    if not host.token_env:
        return {}
    token = os.environ.get(host.token_env, "").strip()
    if not token:
        raise InputError(
            f"host {host.name}: environment variable {host.token_env} (token_env) is unset or empty",
            hint=f"export {host.token_env}=<bearer token>, or remove token_env from host {host.name} in the fleet file",
        )
    return {"Authorization": f"Bearer {token}"}


def error_message(body: str) -> str:
    """The human message inside an error body, whatever the server's dialect.

    Ollama sends ``{"error": "..."}``, OpenAI-style servers ``{"error": {"message": ...}}``, FastAPI
    ``{"detail": ...}``; anything else is shown as text, shortened.
    """
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        if data.get("detail"):
            return str(data["detail"])
    text = " ".join(body.split())
    return text[:300] if text else "(empty body)"


def ns_to_s(value: Any) -> float | None:
    """Nanoseconds (Ollama) to seconds; None when absent or not a number."""
    return value / 1e9 if isinstance(value, int | float) and not isinstance(value, bool) else None


def ms_to_s(value: Any) -> float | None:
    """Milliseconds (llama.cpp ``timings``) to seconds; None when absent or not a number."""
    return value / 1e3 if isinstance(value, int | float) and not isinstance(value, bool) else None


def as_int(value: Any) -> int | None:
    """An integer count, or None when the server did not report one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def completion_prompt(request: GenerationRequest) -> str:
    """The prompt for completion endpoints: the system text, if any, goes in front of the (templated) prompt."""
    return f"{request.system}\n\n{request.prompt}" if request.system else request.prompt


def chat_messages(request: GenerationRequest) -> list[dict[str, str]]:
    """Messages for chat endpoints: an optional system message and the prompt as the one user message."""
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages.append({"role": "user", "content": request.prompt})
    return messages


def _pool_is_inconsistent(client: httpx.AsyncClient, in_flight: int) -> bool:
    """True when the client's httpcore pool holds requests or busy connections that no call in flight owns.

    Each lease sends one request, which leaves the pool before the lease ends; so a pool with more requests than
    leases, or a connecting/active connection assigned to no request, has lost track of something for good. Reads
    httpcore internals; if they are not there (another httpcore), nothing is reported.
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    requests = getattr(pool, "_requests", None)
    connections = getattr(pool, "_connections", None)
    if not isinstance(requests, list) or not isinstance(connections, list):
        return False
    if len(requests) > in_flight:
        return True
    owned = {id(getattr(request, "connection", None)) for request in requests}
    return any(not (c.is_idle() or c.is_closed()) and id(c) not in owned for c in connections)


class ClientPool:
    """httpx clients each lent to at most ``per_client`` calls at once, least-loaded first, created on demand.

    Why not one client with ``max_concurrency`` connections: httpx's pool checks every connection on each request and
    response, so its cost per request grows with the pool. On loopback against a fake with 50 ms latency, one client
    with 50 connections served ~100 req/s, clients of 4 connections ~550 req/s. For max_concurrency <= per_client
    this is exactly one client.

    The lending bounds each client's connections, so httpx's own pools have no connection cap: a capped pool queues
    requests, and a request cancelled while queued can leave an orphaned connection behind (module docstring). A
    client found holding orphans when a call gives it back is retired: no new calls, closed after its last one, which
    closes the orphaned connections too.
    """

    def __init__(self, *, per_client: int, **client_kwargs: Any) -> None:
        self.per_client = per_client
        # one TLS context for all clients: building one per client is slow and they are identical
        client_kwargs.setdefault("verify", httpx.create_ssl_context())
        self._kwargs = client_kwargs
        self._load: dict[httpx.AsyncClient, int] = {}  # clients lent out, with their calls in flight
        self._retiring: dict[httpx.AsyncClient, int] = {}  # retired clients still serving calls
        self._closing: set[asyncio.Task[None]] = set()
        #: clients retired because their pool lost track of a request or connection
        self.retired = 0

    @property
    def clients(self) -> list[httpx.AsyncClient]:
        """The open clients, retiring ones included (for diagnosis)."""
        return [*self._load, *self._retiring]

    def _new_client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=self.per_client)
        client = httpx.AsyncClient(limits=limits, **self._kwargs)
        self._load[client] = 0
        return client

    @contextmanager
    def lease(self) -> Iterator[httpx.AsyncClient]:
        """A client with fewer than ``per_client`` calls in flight (the host semaphore bounds how many are taken)."""
        client = min(self._load, key=self._load.__getitem__, default=None)
        if client is None or self._load[client] >= self.per_client:
            client = self._new_client()
        self._load[client] += 1
        try:
            yield client
        finally:
            self._give_back(client)

    def _give_back(self, client: httpx.AsyncClient) -> None:
        if client in self._load:
            self._load[client] -= 1
            if not _pool_is_inconsistent(client, self._load[client]):
                return
            self._retiring[client] = self._load.pop(client)
            self.retired += 1
        else:
            self._retiring[client] -= 1
        if self._retiring[client] == 0:
            del self._retiring[client]
            task = asyncio.get_running_loop().create_task(client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        clients = self.clients
        self._load, self._retiring = {}, {}
        for client in clients:
            await client.aclose()
        if self._closing:
            await asyncio.wait(self._closing)


class HttpProvider:
    """The common half of a local-host provider: client, semaphore, auth and error translation.

    Args:
        host: the fleet host.
        timeout_s: read/write/pool timeout of one request. A backstop only: the dispatcher enforces the fleet's
            overall timeout by cancelling the call.
        connect_timeout_s: how long to wait for the TCP connection.
    """

    #: shown in hints, e.g. "Ollama"
    server_label = "server"

    def __init__(
        self,
        host: Host,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.name = host.name
        self.base_url = host.base_url
        self._in_flight = 0
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_loop: asyncio.AbstractEventLoop | None = None
        self._pool = ClientPool(
            per_client=CONNECTIONS_PER_CLIENT,
            base_url=self.base_url,
            headers={"Accept": "application/json", **bearer_headers(host)},
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        )

    @property
    def in_flight(self) -> int:
        """How many generate() calls currently hold this host's semaphore."""
        return self._in_flight

    async def aclose(self) -> None:
        if self._semaphore_loop is not None:
            release_host_semaphore(self._semaphore_loop, self.base_url)
            self._semaphore, self._semaphore_loop = None, None
        await self._pool.aclose()

    def _host_semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore_loop is not loop:
            if self._semaphore_loop is not None:
                release_host_semaphore(self._semaphore_loop, self.base_url)
            self._semaphore = acquire_host_semaphore(self.base_url, self.host.max_concurrency)
            self._semaphore_loop = loop
        return self._semaphore

    async def generate(self, request: GenerationRequest) -> Generation:
        """Answer one request or raise ProviderError; ``latency_s`` includes the wait for the host semaphore.

        The answer is streamed when ``request.stream`` or ``host.stream`` is set. A streamed request is the one a
        server notices being cancelled: llama-cpp-python goes on generating a cancelled non-streamed answer to the
        end, but stops a stream at its next token.
        """
        if self.host.stream and not request.stream:
            request = dataclasses.replace(request, stream=True)
        started = time.perf_counter()
        async with self._host_semaphore():
            self._in_flight += 1
            try:
                with self._translate():
                    text, usage, timing, finish = await self._call(request)
            finally:
                self._in_flight -= 1
        return Generation(
            text=text,
            host=self.name,
            model=self.host.model,
            tier="local",
            latency_s=time.perf_counter() - started,
            usage=usage,
            timing=timing,
            finish_reason=finish,
        )

    async def _call(self, request: GenerationRequest) -> tuple[str, Usage, ServerTiming, str | None]:
        raise NotImplementedError

    # --- helpers for subclasses -------------------------------------------------------------------------------

    def fail(self, message: str, *, status: int | None = None, retryable: bool = True, hint: str = "") -> ProviderError:
        return ProviderError(message, host=self.name, status=status, retryable=retryable, hint=hint)

    def status_error(self, response: httpx.Response, body: str) -> ProviderError:
        """A non-2xx response as ProviderError; subclasses may add hints for their server."""
        status = response.status_code
        return self.fail(
            f"HTTP {status} from {response.request.url.path}: {error_message(body)}",
            status=status,
            retryable=status in RETRYABLE_STATUSES or status >= 500,
        )

    async def post_json(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST and return the decoded JSON object; non-2xx and undecodable bodies raise ProviderError."""
        with self._pool.lease() as client:
            response = await client.post(path, json=payload)
        if response.is_error:
            raise self.status_error(response, response.text)
        return self.decode(response.text, status=response.status_code)

    @asynccontextmanager
    async def post_stream(self, path: str, payload: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST with a streamed response; a non-2xx response is read and raised as ProviderError."""
        with self._pool.lease() as client:
            async with client.stream("POST", path, json=payload) as response:
                if response.is_error:
                    await response.aread()
                    raise self.status_error(response, response.text)
                yield response

    def decode(self, text: str, *, status: int | None) -> dict[str, Any]:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise self.fail(f"malformed JSON in response: {text[:120]!r}", status=status) from exc
        if not isinstance(data, dict):
            raise self.fail(f"expected a JSON object, got {type(data).__name__}", status=status)
        return data

    async def post_probe(self, path: str, payload: dict[str, Any], *, timeout_s: float) -> tuple[int, Any]:
        """POST for a side request (not a generation): (status, decoded body or None). Transport errors propagate."""
        with self._pool.lease() as client:
            response = await client.post(path, json=payload, timeout=timeout_s)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    async def get_json(self, path: str) -> tuple[int, Any]:
        """GET for status probes: (status, decoded body or None). Transport errors propagate as httpx errors."""
        with self._pool.lease() as client:
            response = await client.get(path)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn httpx transport errors into ProviderError at the boundary."""
        try:
            yield
        except httpx.HTTPError as exc:
            raise transport_error(self, exc) from exc


def transport_error(provider: HttpProvider, exc: httpx.HTTPError) -> ProviderError:
    """Name the transport failure; all of them are retryable because another host (or a later try) may work."""
    url = provider.base_url
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.replace("Timeout", "").lower() or "request"
        return provider.fail(f"timed out ({kind} timeout) talking to {url}")
    if isinstance(exc, httpx.ConnectError):
        return provider.fail(
            f"cannot connect to {url}: {exc}",
            hint=f"is the {provider.server_label} running and is the url in the fleet file right?",
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        return provider.fail(f"connection to {url} closed before a complete response: {exc}")
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return provider.fail(f"connection to {url} reset: {exc or type(exc).__name__}")
    return provider.fail(f"{type(exc).__name__} talking to {url}: {exc}")
