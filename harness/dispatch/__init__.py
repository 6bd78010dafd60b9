"""Dispatch generation requests over the local fleet: race, hedge or single, with health tracking and cloud fallback."""

from harness.dispatch.dispatcher import STRATEGIES, Dispatcher
from harness.dispatch.health import HostHealth, HostSnapshot, LatencyWindow
from harness.dispatch.hedge_budget import HedgeBudget
from harness.dispatch.hedging import hedge_delay, rank_hosts
from harness.money.budget import Budget, Reservation

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
