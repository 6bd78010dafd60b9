"""The dispatcher: send one request to the local fleet by a strategy, fall back to the cloud if the policy allows.

Strategies:

* ``race``: send to every host whose breaker allows it; the first good answer wins and the others are cancelled
  (cancelling the task closes its HTTP connection). An error only takes its host out of the race.
* ``hedge``: send to the best-ranked host; if it has not answered after its hedge delay
  (:func:`~harness.dispatch.hedging.hedge_delay`), send one hedge to the next host, if the token bucket
  (:class:`~harness.money.budget.HedgeBudget`) has a token; refused, it asks again each time the call has waited
  twice as long (a call still waiting is ever likelier a straggler). A failure is replaced by the next host at once (a
  failover), so one request stays in flight, or two once the hedge went out. Failovers are never refused, but they
  are charged to the same bucket, so ``HedgePolicy.budget`` bounds all extra requests per call, not only hedges.
* ``single``: send to the first host, in fleet-file order, whose breaker allows it; no second try.
* ``least_loaded``: send to the host with the fewest requests in flight per slot; a failure goes to the next at once.
* ``auto``: ``race`` while a race fits on top of the fleet's usual load and no host has requests waiting
  (:func:`~harness.dispatch.auto.race_fits`), else ``hedge``, load-aware: its request takes the first slot that frees
  on any host (late binding, :mod:`harness.dispatch.slots`), its hedge delay runs from when it got that slot, and
  its hedge goes to the least loaded host left, not charged to the bucket onto a free slot
  (:mod:`harness.dispatch.auto`).

The registry is :data:`harness.dispatch.strategies.STRATEGIES`.

``Fleet.timeout_s`` bounds the local phase of every call, however the hosts behave; whatever is still in flight then
is cancelled and recorded as ``timeout``. The cloud fallback, a deliberate second tier, then gets its own
``timeout_s``, so a call that ends in the cloud can take up to twice ``timeout_s``.

Cost: a local answer costs every contacted host's ``Host.cost`` for the seconds it was busy with this call, losers
included (they burned power too). A cloud answer adds the cloud call's price, from the ``cloud_cost`` function when
given, else the provider's own ``cost_usd``; an unknown price makes ``cost_usd`` ``None``, never a silent zero.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType

from harness.config.fleet import Fleet, Strategy
from harness.dispatch.attempts import LocalOutcome, describe
from harness.dispatch.engine import FleetState, HostProbe, LocalCall
from harness.dispatch.fallback import CloudCost, cloud_fallback
from harness.dispatch.health import Clock, HostHealth, HostSnapshot, LatencyWindow
from harness.dispatch.hedge_budget import HedgeBudget
from harness.dispatch.slots import SlotPool
from harness.dispatch.strategies import STRATEGY_NAMES
from harness.errors import BudgetExceeded, FleetUnavailable, InputError, ProviderError
from harness.money.budget import Budget
from harness.money.costs import local_call_cost
from harness.money.projection import projected_usd, request_prompt_tokens
from harness.providers.base import Provider, provider_for
from harness.providers.types import Attempt, Generation, GenerationRequest

STRATEGIES: tuple[str, ...] = STRATEGY_NAMES


class Dispatcher:
    """Dispatches generation requests over a fleet of local hosts.

    The dispatcher owns its providers: :meth:`aclose` closes them all, the cloud one included.

    Args:
        fleet: the fleet file.
        providers: host name -> provider; built from the fleet with ``provider_for`` when omitted.
        cloud: the cloud provider for ``fallback: cloud``.
        cloud_cost: price of one cloud answer in USD (``None`` when unknown); defaults to the answer's ``cost_usd``.
        cloud_budget: what the fallback may spend; a run passes a budget inside its own, so the fallback and the
            cloud tier share one cap. Defaults to ``Fleet.cloud_budget_usd`` alone.
        clock: monotonic seconds for breaker cooldowns; injectable for tests.
        hedge_burst: most hedge tokens that can pile up.
        host_probe: host name -> why it cannot answer (e.g. its server exited), or ``None``; such hosts are skipped.
    """

    def __init__(
        self,
        fleet: Fleet,
        providers: Mapping[str, Provider] | None = None,
        cloud: Provider | None = None,
        *,
        cloud_cost: CloudCost | None = None,
        cloud_budget: Budget | None = None,
        clock: Clock = time.monotonic,
        hedge_burst: float = 10.0,
        host_probe: HostProbe | None = None,
    ) -> None:
        self.fleet = fleet
        if providers is None:
            providers = {host.name: provider_for(host) for host in fleet.hosts}
        missing = [host.name for host in fleet.hosts if host.name not in providers]
        if missing:
            raise InputError(
                f"no provider for host(s) {', '.join(missing)}",
                hint="pass a provider for every host in the fleet file, or omit `providers`",
            )
        self.providers: dict[str, Provider] = {host.name: providers[host.name] for host in fleet.hosts}
        self.cloud = cloud
        self.cloud_off_reason: str | None = None  # why ``fallback: cloud`` has no provider (set by from_fleet)
        self._cloud_cost = cloud_cost
        self.hedge_budget = HedgeBudget(fleet.hedge.budget, burst=hedge_burst)
        self.cloud_budget = cloud_budget or Budget(fleet.cloud_budget_usd, name="fallback")
        self._state = FleetState(
            fleet=fleet,
            providers=self.providers,
            health={host.name: HostHealth(host.name, fleet.breaker, clock=clock) for host in fleet.hosts},
            slots=SlotPool({host.name: host.max_concurrency for host in fleet.hosts}),
            pooled=LatencyWindow(),  # every host's latencies, for hosts that have too few of their own yet
            hedge_budget=self.hedge_budget,
            probe=host_probe,
        )

    @classmethod
    def from_fleet(
        cls,
        fleet: Fleet,
        *,
        cloud: Provider | None = None,
        cloud_cost: CloudCost | None = None,
        cloud_budget: Budget | None = None,
        clock: Clock = time.monotonic,
        host_probe: HostProbe | None = None,
    ) -> Dispatcher:
        """Build the providers of every host and, unless ``cloud`` is given, the fleet's cloud fallback.

        The fallback comes from :func:`~harness.dispatch.fallback.cloud_fallback`; without an API key it is off and
        :attr:`cloud_off_reason` says why (a call that needs it then fails with that reason).

        Raises:
            InputError: an unknown host kind or a missing bearer token.
        """
        off_reason = None
        if cloud is None:
            fallback = cloud_fallback(fleet)
            cloud, off_reason = fallback.provider, fallback.off_reason
            cloud_cost = cloud_cost or fallback.price
        dispatcher = cls(fleet, None, cloud, cloud_cost=cloud_cost, cloud_budget=cloud_budget, clock=clock,
                         host_probe=host_probe)
        dispatcher.cloud_off_reason = off_reason
        return dispatcher

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every provider."""
        for provider in self.providers.values():
            await provider.aclose()
        if self.cloud is not None:
            await self.cloud.aclose()

    def health(self) -> dict[str, HostSnapshot]:
        """Every host's breaker state, counters and recent latency quantiles."""
        return {name: health.snapshot() for name, health in self._state.health.items()}

    async def generate(self, request: GenerationRequest, *, strategy: Strategy | None = None) -> Generation:
        """Answer one request from the fleet (or the cloud, if every host fails and the policy allows it).

        Raises:
            FleetUnavailable: every host failed and the fallback allowed nothing more; ``reasons`` names each host.
            InputError: an unknown strategy.
        """
        chosen = strategy or self.fleet.strategy
        if chosen not in STRATEGIES:
            raise InputError(f"unknown strategy {chosen!r}", hint=f"use one of: {', '.join(STRATEGIES)}")
        started = time.perf_counter()
        local = await LocalCall(self._state, request, chosen).run()
        if local.winner is not None:
            return replace(
                local.winner,
                host=local.winner_host or local.winner.host,
                tier="local",
                latency_s=time.perf_counter() - started,
                attempts=tuple(local.attempts),
                cost_usd=self._local_cost(local.busy_s),
            )
        return await self._fallback(request, local, started)

    def _local_cost(self, busy_s: dict[str, float]) -> float:
        return sum(local_call_cost(self.fleet.host(name).cost, seconds).total_usd for name, seconds in busy_s.items())

    # -- the fallback ---------------------------------------------------------------------------------------------

    async def _fallback(self, request: GenerationRequest, local: LocalOutcome, started: float) -> Generation:
        reasons = {host.name: local.reasons.get(host.name, "not tried") for host in self.fleet.hosts}
        if self.fleet.fallback != "cloud":
            raise FleetUnavailable(reasons)
        if self.cloud is None:
            raise FleetUnavailable(
                {**reasons, "cloud": self.cloud_off_reason or "no cloud provider configured"},
                hint="set ANTHROPIC_API_KEY for the cloud fallback, or bring local hosts back (`harness fleet status`)",
            )
        try:
            # held before the call and settled after, so concurrent fallbacks cannot overshoot the cap together
            reservation = self.cloud_budget.reserve(
                projected_usd(self.fleet.cloud_model, request_prompt_tokens(request), request.max_tokens),
                "cloud fallback",
            )
        except BudgetExceeded as exc:
            raise FleetUnavailable(
                {**reasons, "cloud": "cloud budget exhausted"},
                hint=f"{exc.message}; raise cloud_budget_usd (now {self.fleet.cloud_budget_usd:g}) in the fleet "
                "file or the run's --budget, or bring local hosts back (`harness fleet status`)",
            ) from exc
        why = "fallback: every local host failed (" + "; ".join(f"{h}: {r}" for h, r in reasons.items()) + ")"
        cloud_started = time.perf_counter()
        try:
            async with asyncio.timeout(self.fleet.timeout_s):
                answer = await self.cloud.generate(request)
        except (ProviderError, TimeoutError) as exc:
            self.cloud_budget.release(reservation)  # the API bills no failed request
            message = (
                f"no answer within {self.fleet.timeout_s:g}s" if isinstance(exc, TimeoutError) else describe(exc)[0]
            )
            raise FleetUnavailable({**reasons, "cloud": message}) from exc
        except BaseException:
            self.cloud_budget.release(reservation)
            raise
        cloud_latency = time.perf_counter() - cloud_started
        price = self._cloud_cost(answer) if self._cloud_cost is not None else answer.cost_usd
        self.cloud_budget.settle(reservation, price)
        cloud_attempt = Attempt(host=self.cloud.name, outcome="ok", latency_s=cloud_latency, error=why)
        local_cost = self._local_cost(local.busy_s)
        return replace(
            answer,
            tier="cloud",
            latency_s=time.perf_counter() - started,
            attempts=(*local.attempts, cloud_attempt),
            cost_usd=None if price is None else local_cost + price,
        )
