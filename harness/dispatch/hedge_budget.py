"""The token bucket that caps a dispatcher's extra requests (hedges and failovers)."""

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
        self.free_hedges = 0  # hedges onto an idle slot, which the bucket does not pay for (``auto``)

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
