"""Dispatch generation requests over the local fleet: race, hedge or single, with health tracking and cloud fallback."""

from harness.dispatch.budget import Budget, HedgeBudget, Reservation
from harness.dispatch.dispatcher import STRATEGIES, Dispatcher
from harness.dispatch.health import HostHealth, HostSnapshot, LatencyWindow
from harness.dispatch.hedging import hedge_delay, rank_hosts

__all__ = [
    "STRATEGIES",
    "Budget",
    "Dispatcher",
    "HedgeBudget",
    "HostHealth",
    "HostSnapshot",
    "LatencyWindow",
    "Reservation",
    "hedge_delay",
    "rank_hosts",
]
