"""The cloud fallback of a fleet: the one place it is built, for ``harness run``, ``nightly`` and ``fleet ask``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.config.fleet import Fleet
from harness.errors import InputError
from harness.providers.base import Provider
from harness.providers.types import Generation

CloudCost = Callable[[Generation], float | None]


@dataclass(frozen=True)
class CloudFallback:
    """The provider and price of a fleet's cloud fallback, or why there is none though the fleet asks for it."""

    provider: Provider | None = None
    price: CloudCost | None = None
    off_reason: str | None = None  # set when ``fallback: cloud`` cannot run (no API key)


def cloud_fallback(fleet: Fleet) -> CloudFallback:
    """Build the Anthropic provider for ``fallback: cloud``, priced from the pricing table.

    Without an API key the fallback is off and ``off_reason`` says so: a local run must not fail for want of a key
    it may never need. A fleet with ``fallback: none`` gets an empty :class:`CloudFallback`.
    """
    if fleet.fallback != "cloud":
        return CloudFallback()
    from harness.money.costs import cloud_cost_usd
    from harness.providers.anthropic_cloud import AnthropicProvider

    try:
        provider = AnthropicProvider(fleet.cloud_model, timeout_s=fleet.timeout_s)
    except InputError as exc:
        return CloudFallback(off_reason=f"cloud fallback off: {exc.message}")

    def price(generation: Generation) -> float | None:
        return cloud_cost_usd(generation.model, generation.usage)

    return CloudFallback(provider, price)


__all__ = ["CloudCost", "CloudFallback", "cloud_fallback"]
