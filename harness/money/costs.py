"""Money: cloud prices from the dated pricing table and their rate choice, the one local cost model, the fleet's
fixed cost a month and the break-even volume.

The pricing table is data (``harness/money/pricing.yaml``, see :mod:`harness.config.pricing`). A run picks it once with
:func:`use_pricing` (``--pricing FILE``, else ``HARNESS_PRICING``, else the bundled table); everything after that
prices from :func:`pricing_table`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from harness.config.advice import DAYS_PER_MONTH
from harness.config.fleet import HostCost
from harness.config.pricing import BUNDLED_PRICING, ModelPrice, PricingTable, load_pricing
from harness.money.tokens import estimate_tokens

if TYPE_CHECKING:  # types only: money sits below providers, which price their calls through it
    from harness.providers.types import Usage

__all__ = [
    "BreakEven",
    "CacheTTL",
    "CallRates",
    "LocalCallCost",
    "PRICING_ENV",
    "break_even",
    "call_rates",
    "cloud_cost_usd",
    "estimate_tokens",
    "fleet_fixed_usd_per_month",
    "local_call_cost",
    "price_for",
    "pricing_table",
    "use_pricing",
]

PRICING_ENV = "HARNESS_PRICING"
CacheTTL = Literal["5m", "1h"]
MILLION = 1_000_000

_active: PricingTable | None = None


def use_pricing(path: str | Path | None = None) -> PricingTable:
    """Load and activate the pricing table for this run: ``path``, else ``$HARNESS_PRICING``, else the bundled one."""
    global _active
    chosen = path or os.environ.get(PRICING_ENV, "").strip() or BUNDLED_PRICING
    _active = load_pricing(chosen)
    return _active


def pricing_table() -> PricingTable:
    """The active pricing table, loaded on first use and then kept (one table prices a whole run)."""
    return _active if _active is not None else use_pricing()


def price_for(model: str) -> ModelPrice:
    """The pricing row of a model id, alias or dated snapshot such as ``claude-sonnet-4-5-20250929``."""
    return pricing_table().price_for(model)


@dataclass(frozen=True)
class CallRates:
    """Dollars per million tokens of each kind for one call, after the batch discount and cache lifetime choice."""

    input: float
    output: float
    cache_write: float
    cache_read: float


def call_rates(model: str, prompt_tokens: int, *, batch: bool = False, cache_ttl: CacheTTL = "5m") -> CallRates:
    """The one rate choice: the row's rates for a prompt this long, at the cache lifetime's write rate, batched or not.

    A prompt longer than a row's ``long_prompt`` threshold (input + cache writes + cache reads) is priced at those
    rates. ``batch`` prices input and output at the Message Batches rates; the batch discount also applies to cache
    writes and reads (the discounts stack), in the same proportion as on input.
    """
    rates = price_for(model).rates_for(prompt_tokens)
    write = rates.cache_write_5m if cache_ttl == "5m" else rates.cache_write_1h
    if not batch:
        return CallRates(rates.input, rates.output, write, rates.cache_read)
    discount = rates.batch_input / rates.input if rates.input else 1.0
    return CallRates(rates.batch_input, rates.batch_output, write * discount, rates.cache_read * discount)


def cloud_cost_usd(
    model: str, usage: Usage, *, batch: bool = False, cache_ttl: CacheTTL = "5m"
) -> float | None:
    """Dollar cost of one cloud call; None when the server reported no input or output token count.

    ``usage.input_tokens`` counts only uncached input, as the Messages API reports it; cache writes are priced at the
    ``cache_ttl`` lifetime's rate and cache reads at the hit rate (see :func:`call_rates`).
    """
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    cache_write = usage.cache_creation_input_tokens or 0
    cache_read = usage.cache_read_input_tokens or 0
    rates = call_rates(model, usage.input_tokens + cache_write + cache_read, batch=batch, cache_ttl=cache_ttl)
    dollars_times_million = (
        usage.input_tokens * rates.input
        + usage.output_tokens * rates.output
        + cache_write * rates.cache_write
        + cache_read * rates.cache_read
    )
    return dollars_times_million / MILLION


@dataclass(frozen=True)
class LocalCallCost:
    """What a local call cost, split by kind.

    ``energy_usd`` is marginal: it is spent only because the call ran. ``hardware_usd`` is the call's share of a
    fixed cost: the hardware is paid for whether or not it serves, so it belongs in a fully loaded price per call but
    not in the saving a break-even weighs against the cloud.
    """

    energy_usd: float
    hardware_usd: float

    @property
    def total_usd(self) -> float:
        return self.energy_usd + self.hardware_usd


def local_call_cost(cost: HostCost, busy_seconds: float) -> LocalCallCost:
    """The one local cost model: a host's cost for ``busy_seconds`` of serving.

    energy (marginal) = busy_seconds / 3600 × watts / 1000 × usd_per_kwh;
    hardware (fixed, amortised) = busy_seconds / 3600 × hardware_usd_per_hour.
    """
    hours = busy_seconds / 3600.0
    return LocalCallCost(
        energy_usd=hours * cost.watts / 1000.0 * cost.usd_per_kwh,
        hardware_usd=hours * cost.hardware_usd_per_hour,
    )


@dataclass(frozen=True)
class BreakEven:
    """Monthly volume above which the local fleet is cheaper than sending every call to the cloud."""

    fixed_usd_per_month: float
    local_marginal_usd_per_call: float
    cloud_usd_per_call: float
    calls_per_month: float | None  # None: local never breaks even (its marginal cost is not below the cloud's)


def break_even(fixed_usd_per_month: float, local_marginal_usd_per_call: float, cloud_usd_per_call: float) -> BreakEven:
    """Solve fixed + n·local = n·cloud for n: where the fleet's fixed cost equals the cloud spend it saves."""
    saving = cloud_usd_per_call - local_marginal_usd_per_call
    calls = fixed_usd_per_month / saving if saving > 0 else None
    return BreakEven(fixed_usd_per_month, local_marginal_usd_per_call, cloud_usd_per_call, calls)


def fleet_fixed_usd_per_month(costs: list[HostCost], days_per_month: float = DAYS_PER_MONTH) -> float:
    """Hardware amortisation of all hosts for a month (fixed); energy is charged per call (marginal)."""
    return sum(c.hardware_usd_per_hour for c in costs) * 24.0 * days_per_month
