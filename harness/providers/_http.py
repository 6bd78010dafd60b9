"""Shared httpx plumbing for the local-host providers.

One httpx client per provider on aiohttp's connection pool (``transport.py`` says why), one semaphore per (event
loop, base URL), bearer tokens from the environment, and the translation of every transport or HTTP failure into
``ProviderError`` with ``status`` and ``retryable``. Subclasses only build payloads and parse bodies.
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
from harness.providers.structured import StructuredReply, StructuredRequest
from harness.providers.transport import AiohttpTransport
from harness.providers.types import Generation, GenerationRequest, ServerTiming, Usage

if TYPE_CHECKING:
    from harness.config.fleet import Host

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0

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
    semaphore: asyncio.Semaphore = entry[0]
    return semaphore


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
        self._client = httpx.AsyncClient(
            transport=AiohttpTransport(),  # no connection cap: the host semaphore bounds the calls
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
        await self._client.aclose()

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

    @property
    def model(self) -> str:
        return self.host.model

    async def structured(self, request: StructuredRequest) -> StructuredReply:
        """One chat call whose reply the server constrains to ``request.output``'s JSON schema (a second judge's
        grade). Not streamed, not retried here: the judge retries a bad reply once, and counts a failed call."""
        path, payload = self._structured_payload(request, request.output.model_json_schema())
        started = time.perf_counter()
        async with self._host_semaphore():
            self._in_flight += 1
            try:
                with self._translate():
                    data = await self.post_json(path, payload)
            finally:
                self._in_flight -= 1
        if "error" in data:
            raise self.fail(f"server error: {error_message(json.dumps(data))}", status=200)
        text, usage, stop_reason = self._structured_reply(path, data)
        return StructuredReply(text=text, usage=usage, stop_reason=stop_reason, model=self.host.model,
                               latency_s=time.perf_counter() - started)

    def _structured_payload(self, request: StructuredRequest, schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _structured_reply(self, path: str, data: dict[str, Any]) -> tuple[str | None, Usage, str | None]:
        """(text, usage, stop reason); the stop reason in the grader's words: ``max_tokens``, ``refusal`` or other."""
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
        response = await self._client.post(path, json=payload)
        if response.is_error:
            raise self.status_error(response, response.text)
        return self.decode(response.text, status=response.status_code)

    @asynccontextmanager
    async def post_stream(self, path: str, payload: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST with a streamed response; a non-2xx response is read and raised as ProviderError."""
        async with self._client.stream("POST", path, json=payload) as response:
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
        response = await self._client.post(path, json=payload, timeout=timeout_s)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    async def get_json(self, path: str) -> tuple[int, Any]:
        """GET for status probes: (status, decoded body or None). Transport errors propagate as httpx errors."""
        response = await self._client.get(path)
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
