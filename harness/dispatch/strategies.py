"""The one registry of dispatch strategies: how each plans a call (which hosts, in what order, sent how).

The config's ``Strategy`` literal (``harness.config.fleet``) names the same strategies; this module checks at import
that the two agree, so a strategy added to one and not the other fails at once rather than at dispatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from harness.config.fleet import Host, Strategy
from harness.dispatch.auto import race_fits
from harness.dispatch.health import HostHealth
from harness.dispatch.hedging import least_loaded_first, rank_hosts

# single: one request, no second try. race: every host at once. hedge: one request, a second after the hedge delay,
# failures replaced at once. failover: one request, failures replaced at once, no hedge.
Mode = Literal["single", "race", "hedge", "failover"]


@dataclass(frozen=True)
class Plan:
    """How one call is sent.

    Attributes:
        mode: see ``Mode``.
        hosts: candidates in the order to try them.
        free_slot_hedges: a due hedge goes to the least loaded host left, and when that host has a slot free it goes
            without spending the hedge budget (``auto``: see :mod:`harness.dispatch.auto`).
        late_binding: the call's only request waits for the first slot free on any of its hosts, not for its own
            host's (:mod:`harness.dispatch.slots`), and its hedge delay runs from when it got a slot (``auto``).
    """

    mode: Mode
    hosts: tuple[Host, ...]
    free_slot_hedges: bool = False
    late_binding: bool = False


# (hosts, their health now, the fleet's in-flight count as arriving calls typically find it) -> plan
Planner = Callable[[Sequence[Host], Mapping[str, HostHealth], float | None], Plan]


@dataclass(frozen=True)
class StrategySpec:
    planner: Planner
    summary: str


def _single(hosts: Sequence[Host], health: Mapping[str, HostHealth], _typical: float | None) -> Plan:
    return Plan("single", tuple(hosts))


def _race(hosts: Sequence[Host], health: Mapping[str, HostHealth], _typical: float | None) -> Plan:
    return Plan("race", tuple(hosts))


def _hedge(hosts: Sequence[Host], health: Mapping[str, HostHealth], _typical: float | None) -> Plan:
    return Plan("hedge", tuple(rank_hosts(hosts, health)))


def _least_loaded(hosts: Sequence[Host], health: Mapping[str, HostHealth], _typical: float | None) -> Plan:
    return Plan("failover", tuple(least_loaded_first(hosts, health)))


def _auto(hosts: Sequence[Host], health: Mapping[str, HostHealth], typical: float | None) -> Plan:
    if race_fits(hosts, health, typical):
        return Plan("race", tuple(hosts))
    return Plan("hedge", tuple(rank_hosts(hosts, health)), free_slot_hedges=True, late_binding=True)


STRATEGIES: dict[Strategy, StrategySpec] = {
    "race": StrategySpec(_race, "every host at once; the first good answer wins, the rest are cancelled"),
    "hedge": StrategySpec(_hedge, "the best-ranked host, a second one after its hedge delay (token-bucket budget)"),
    "single": StrategySpec(_single, "the first host whose breaker allows it; no second try"),
    "least_loaded": StrategySpec(_least_loaded, "the host with the fewest requests in flight per slot; failover"),
    "auto": StrategySpec(
        _auto,
        "race while a race fits on the usual load and nothing waits, else hedge: the first slot free on any host, "
        "and a hedge free onto an idle slot",
    ),
}

if set(STRATEGIES) != set(get_args(Strategy)):  # pragma: no cover - guards against a strategy added in one place only
    raise ImportError(
        f"dispatch strategies {sorted(STRATEGIES)} differ from the fleet file's Strategy {sorted(get_args(Strategy))}"
    )

STRATEGY_NAMES: tuple[Strategy, ...] = tuple(STRATEGIES)


def plan_call(
    strategy: Strategy,
    hosts: Sequence[Host],
    health: Mapping[str, HostHealth],
    typical_in_flight: float | None = None,
) -> Plan:
    """The plan of one call by ``strategy``, from the hosts' health at this moment and (for ``auto``) the fleet's
    in-flight count as arriving calls typically find it (:class:`~harness.dispatch.auto.ArrivalLoad`)."""
    return STRATEGIES[strategy].planner(hosts, health, typical_in_flight)
