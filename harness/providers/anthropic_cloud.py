"""The cloud tier: Claude through the official ``anthropic`` SDK (Messages API).

Retries are ours, not the SDK's. The SDK (``max_retries``) retries every 429 alike -- including the spend-limit 429,
which cannot succeed until the limit resets -- and waits whatever ``retry-after`` says, however long. So the client is
built with ``max_retries=0`` and ``generate`` runs a bounded loop that first classifies the failure:

* 429 rate limit, 529 overloaded, other 5xx, 408/409, connection errors and timeouts: retried up to ``max_retries``
  times, waiting ``retry-after-ms``/``retry-after`` when given (refusing waits longer than ``max_retry_wait_s``),
  else exponential backoff with jitter;
* a spend-limit 429 (``error.details.error_code == "enforced_spend_limit_reached"``, or a 429 whose message speaks of
  spend/usage limits) and billing errors: never retried, with a hint;
* a 404 ``not_found_error`` about the model: not retried, and explained from the pricing table ("model X is not
  available (retired on ... per pricing.yaml)", with its successor);
* anything else (400, 401, 403, 404, 413): not retried.

Cost is not computed here (``cost_usd`` stays None); the pricing table owner prices the recorded usage.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anthropic

from harness.errors import InputError, ProviderError
from harness.money.costs import pricing_table
from harness.money.lifecycle import today, unavailable_message
from harness.providers.anthropic_key import API_KEY_ENV, anthropic_api_key
from harness.providers.base import HostStatus
from harness.providers.types import Generation, GenerationRequest, ServerTiming, Usage

T = TypeVar("T")

SPEND_LIMIT_CODE = "enforced_spend_limit_reached"
_RETRYABLE = frozenset({408, 409, 429})
_BACKOFF_INITIAL_S = 0.5
_BACKOFF_MAX_S = 8.0


class AnthropicProvider:
    """Claude as a provider.

    Args:
        model: model id, e.g. ``claude-sonnet-4-6``.
        api_key: defaults to the ``ANTHROPIC_API_KEY`` environment variable.
        base_url: API root; tests point it at ``FakeAnthropic``.
        max_retries: extra attempts after a retryable failure.
        timeout_s: timeout of one HTTP request.
        max_retry_wait_s: longest ``retry-after`` this provider will sleep through; longer ones fail at once
            (retryable) so the caller can decide.
        temperature, top_p, top_k: sent only when set; ``request.temperature`` wins over ``temperature``.
        name: the ``host`` recorded in each Generation and ProviderError.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout_s: float = 60.0,
        max_retry_wait_s: float = 30.0,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        name: str = "cloud",
    ) -> None:
        key = api_key or anthropic_api_key()
        if not key:
            raise InputError(
                f"no Anthropic API key for the cloud tier (model {model})",
                hint=f"export {API_KEY_ENV}=sk-ant-... (or pass api_key), or run without the cloud tier",
            )
        self.name = name
        self.model = model
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self._sampling = {
            k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)) if v is not None
        }
        self._client = anthropic.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.close()

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": "user", "content": request.prompt}],
        }
        if request.system is not None:
            params["system"] = request.system
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        sampling = dict(self._sampling)
        if request.temperature is not None:
            sampling["temperature"] = request.temperature
        if sampling:
            # Newer SDKs dropped the sampling keywords (newer models reject them); extra_body still sends them, and
            # only when configured, to the models that accept them.
            params["extra_body"] = sampling
        return params  # seed, num_ctx: the Messages API has no such parameters

    async def generate(self, request: GenerationRequest) -> Generation:
        """One Messages API call with bounded, classified retries; raises ProviderError."""
        started = time.perf_counter()
        params = self._params(request)
        message = await self._with_retries(lambda: self._client.messages.create(**params))
        text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
        usage = message.usage
        return Generation(
            text=text,
            host=self.name,
            model=self.model,
            tier="cloud",
            latency_s=time.perf_counter() - started,
            usage=Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", None),
                cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", None),
            ),
            timing=ServerTiming(),
            finish_reason=message.stop_reason,
        )

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one API call with the bounded, classified retries described above; raises ProviderError."""
        retries = 0
        while True:
            try:
                return await call()
            except anthropic.APIError as exc:
                error, wait_s = self._classify(exc, retries)
                if wait_s is None:
                    raise error from exc
            retries += 1
            await asyncio.sleep(wait_s)

    def _classify(self, exc: anthropic.APIError, retries: int) -> tuple[ProviderError, float | None]:
        """The error to raise, and how long to wait before retrying (None: do not retry)."""
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            message = _api_message(exc)
            if _is_spend_limit(exc, message):
                return self._error(
                    f"spend limit reached (HTTP {status}): {message}",
                    status=status,
                    retryable=False,
                    hint="raise the spend limit in the Claude Console (Limits/Billing), or run without the cloud tier",
                ), None
            if status in (402,) or "credit balance" in message.lower():
                return self._error(
                    f"billing problem (HTTP {status}): {message}",
                    status=status,
                    retryable=False,
                    hint="add credits or fix billing in the Claude Console",
                ), None
            if _is_model_not_found(exc, message, self.model):
                text, hint = _unavailable(self.model)
                return self._error(text, status=status, retryable=False, hint=hint), None
            retryable = status in _RETRYABLE or status >= 500
            if exc.response.headers.get("x-should-retry") == "false":
                retryable = False
            error = self._error(
                f"HTTP {status} ({_api_type(exc) or type(exc).__name__}): {message}",
                status=status,
                retryable=retryable,
                hint=_status_hint(status, self.model),
            )
            if not retryable or retries >= self.max_retries:
                return error, None
            wait = _retry_after(exc.response.headers)
            if wait is None:
                return error, _backoff(retries)
            if wait > self.max_retry_wait_s:
                return self._error(
                    f"HTTP {status}: asked to wait {wait:.0f}s, more than max_retry_wait_s={self.max_retry_wait_s:g}",
                    status=status,
                    retryable=True,
                    hint="try again later or lower the run's concurrency",
                ), None
            return error, wait
        # APIConnectionError (incl. APITimeoutError) and response-validation errors
        kind = "timed out" if isinstance(exc, anthropic.APITimeoutError) else "connection failed"
        error = self._error(f"{kind}: {exc}", status=None, retryable=True)
        if isinstance(exc, anthropic.APIConnectionError) and retries < self.max_retries:
            return error, _backoff(retries)
        return error, None

    def _error(self, message: str, *, status: int | None, retryable: bool, hint: str = "") -> ProviderError:
        return ProviderError(message, host=self.name, status=status, retryable=retryable, hint=hint)

    async def status(self) -> HostStatus:
        """Whether the API answers and knows the model (GET /v1/models/{model}); never raises."""
        try:
            await self._client.models.retrieve(self.model)
        except anthropic.NotFoundError:
            return HostStatus(host=self.name, reachable=True, model_present=False, error=f"unknown model {self.model}")
        except anthropic.APIStatusError as exc:
            return HostStatus(host=self.name, reachable=True, error=f"HTTP {exc.status_code}: {_api_message(exc)}")
        except anthropic.APIError as exc:
            return HostStatus(host=self.name, reachable=False, error=str(exc))
        return HostStatus(host=self.name, reachable=True, model_present=True, models=(self.model,))


def _body_error(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body
    error = body.get("error") if isinstance(body, dict) else None
    return dict(error) if isinstance(error, dict) else {}


def _api_message(exc: anthropic.APIStatusError) -> str:
    message = _body_error(exc).get("message")
    return str(message) if message else str(exc.message)


def _api_type(exc: anthropic.APIStatusError) -> str | None:
    kind = _body_error(exc).get("type")
    return str(kind) if kind else None


def _is_model_not_found(exc: anthropic.APIStatusError, message: str, model: str) -> bool:
    """The API's answer to an unknown or retired model: 404 ``not_found_error`` whose message names the model
    (the Messages API says ``model: <id>``)."""
    return exc.status_code == 404 and _api_type(exc) == "not_found_error" and (
        model in message or message.lower().startswith("model")
    )


def _unavailable(model: str) -> tuple[str, str]:
    """Explain a model the API does not know from the pricing table's lifecycle (a retirement date, a successor)."""
    return unavailable_message(model, pricing_table(), today())


def _is_spend_limit(exc: anthropic.APIStatusError, message: str) -> bool:
    """Anthropic marks the monthly spend cap as a 429 ``rate_limit_error`` with a details code and no retry-after."""
    details = _body_error(exc).get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    if code == SPEND_LIMIT_CODE:
        return True
    lowered = message.lower()
    return exc.status_code in (400, 429) and ("spend limit" in lowered or "api usage limits" in lowered)


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None when absent or bad."""
    try:
        return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (KeyError, TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return max(0.0, email.utils.mktime_tz(parsed) - time.time()) if parsed else None


def _backoff(retries: int) -> float:
    """0.5 s doubling to at most 8 s, minus up to a quarter for jitter (the SDK's schedule)."""
    return float(min(_BACKOFF_INITIAL_S * 2**retries, _BACKOFF_MAX_S) * (1 - 0.25 * random.random()))


def _status_hint(status: int, model: str) -> str:
    if status == 401:
        return f"check {API_KEY_ENV}"
    if status == 403:
        return "this API key may not use this model or workspace"
    if status == 404:
        return f"check the cloud model name ({model}) in the fleet or suite file"
    if status == 429:
        return "rate limited; lower the run's concurrency"
    if status == 529:
        return "the API is overloaded; try again later"
    return ""
