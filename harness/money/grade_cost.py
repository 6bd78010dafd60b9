"""What a grade costs, from the run's pricing table (``harness.money.costs``; no second table here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.money.costs import CacheTTL, cloud_cost_usd, estimate_tokens, price_for

if TYPE_CHECKING:  # types only: money sits below providers, which price their calls through it
    from harness.providers.types import Usage


def grade_cost_usd(model: str, usage: Usage, *, batch: bool = False, cache_ttl: CacheTTL = "5m") -> float | None:
    """Dollars of one grader call, cache reads and writes included; None when the server reported no tokens."""
    return cloud_cost_usd(model, usage, batch=batch, cache_ttl=cache_ttl)


def projected_grade_usd(
    model: str,
    system: str,
    user: str,
    max_tokens: int,
    *,
    cached_system: bool,
    batch: bool,
    cache_ttl: CacheTTL = "5m",
) -> float:
    """Upper estimate of one grader call, reserved before it is made: the rubric at the cache-write rate when it is
    cached (the dearest case: a write), the rest of the prompt at the input rate, ``max_tokens`` out."""
    system_tokens, user_tokens = estimate_tokens(system), estimate_tokens(user)
    rates = price_for(model).rates_for(system_tokens + user_tokens)
    discount = rates.batch_input / rates.input if batch and rates.input else 1.0
    input_rate = rates.batch_input if batch else rates.input
    output_rate = rates.batch_output if batch else rates.output
    write_rate = (rates.cache_write_5m if cache_ttl == "5m" else rates.cache_write_1h) * discount
    system_rate = write_rate if cached_system else input_rate
    return (system_tokens * system_rate + user_tokens * input_rate + max_tokens * output_rate) / 1_000_000
