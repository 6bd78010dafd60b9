"""Budgets: the token bucket that caps extra requests, and the dollar cap on cloud fallback."""

from __future__ import annotations


class HedgeBudget:
    """A token bucket of extra requests.

    Every dispatched call deposits ``budget`` tokens (capped at ``burst``). A hedge needs a whole token and spends it.
    A failover (the only request in flight failed, so the next host is tried at once) is never refused, because
    refusing it would turn a recoverable call into a failure, but it is charged too, and may push the balance below
    zero (down to ``-burst``). So over many calls the extra requests per call stay near ``budget`` whenever failures
    are rarer than that, and hedging pauses while failovers are using the allowance.

    Args:
        budget: extra requests allowed per call, on average (``HedgePolicy.budget``).
        burst: most tokens that can pile up, so a quiet spell cannot pay for a long burst of hedges.
        initial: tokens at the start; by default a full bucket, so the first calls, made before any latency is
            known and hedged late, can still hedge their stragglers.
    """

    def __init__(self, budget: float, *, burst: float = 10.0, initial: float | None = None) -> None:
        self.budget = budget
        self.burst = burst if budget > 0 else 0.0
        self.tokens = self.burst if initial is None else min(initial, self.burst)
        self.hedges = 0
        self.denied = 0
        self.failovers = 0

    def deposit(self) -> None:
        """One call's allowance."""
        self.tokens = min(self.burst, self.tokens + self.budget)

    def try_hedge(self) -> bool:
        """Spend a token on a hedge if a whole one is there."""
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.hedges += 1
            return True
        self.denied += 1
        return False

    def charge_failover(self) -> None:
        self.failovers += 1
        self.tokens = max(-self.burst, self.tokens - 1.0)


class CloudBudget:
    """Dollars the cloud fallback may still spend in this dispatcher's life.

    The check happens before a call and the spend is known only after it, so concurrent fallbacks can overshoot the
    cap by at most the cost of the calls in flight when it is reached.

    Args:
        cap_usd: the most the fallback may spend (``Fleet.cloud_budget_usd``).
    """

    def __init__(self, cap_usd: float) -> None:
        self.cap_usd = cap_usd
        self.spent_usd = 0.0
        self.calls = 0
        self.unpriced_calls = 0

    @property
    def exhausted(self) -> bool:
        return self.spent_usd >= self.cap_usd

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.cap_usd - self.spent_usd)

    def spend(self, usd: float | None) -> None:
        """Record one call; ``None`` means its price is unknown (counted, never silently zero in reports)."""
        self.calls += 1
        if usd is None:
            self.unpriced_calls += 1
        else:
            self.spent_usd += usd
