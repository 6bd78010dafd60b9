"""The dispatcher: send one request to the local fleet by a strategy, fall back to the cloud if the policy allows.

Strategies:

* ``race``: send to every host whose breaker allows it; the first good answer wins and the others are cancelled
  (cancelling the task closes its HTTP connection). An error only takes its host out of the race.
* ``hedge``: send to the best-ranked host; if it has not answered after its hedge delay
  (:func:`~harness.dispatch.hedging.hedge_delay`), send one hedge to the next host, if the token bucket
  (:class:`~harness.dispatch.budget.HedgeBudget`) has a token. A failure is replaced by the next host at once (a
  failover), so one request stays in flight, or two once the hedge went out. Failovers are never refused, but they
  are charged to the same bucket, so ``HedgePolicy.budget`` bounds all extra requests per call, not only hedges.
* ``single``: send to the first host, in fleet-file order, whose breaker allows it; no second try.

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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import get_args

from harness.config.fleet import Fleet, Host, Strategy
from harness.dispatch.budget import CloudBudget, HedgeBudget
from harness.dispatch.health import Clock, HostHealth, HostSnapshot, LatencyWindow, Permit
from harness.dispatch.hedging import hedge_delay, rank_hosts
from harness.errors import FleetUnavailable, InputError, ProviderError
from harness.providers.base import Provider, provider_for
from harness.providers.types import Attempt, Generation, GenerationRequest

STRATEGIES: tuple[str, ...] = get_args(Strategy)
CANCEL_GRACE_S = 2.0  # how long to wait for cancelled requests to unwind (httpx closes the socket on the way)

CloudCost = Callable[[Generation], float | None]


@dataclass(eq=False)
class _Flight:
    """One request in flight to one host."""

    host: Host
    permit: Permit
    index: int
    launched: float
    sent: float | None = None
    task: asyncio.Task[Generation] | None = None


@dataclass
class _LocalResult:
    winner: Generation | None
    winner_host: str | None
    attempts: list[Attempt]
    reasons: dict[str, str]
    busy_s: dict[str, float] = field(default_factory=dict)


def _describe(exc: BaseException) -> tuple[str, int | None]:
    """A one-line reason and the HTTP status of a failed request."""
    if isinstance(exc, ProviderError):
        message = exc.message
        prefix = f"{exc.host}: "
        if exc.host and message.startswith(prefix):
            message = message[len(prefix) :]
        return message, exc.status
    return f"{type(exc).__name__}: {exc}", None


class Dispatcher:
    """Dispatches generation requests over a fleet of local hosts.

    The dispatcher owns its providers: :meth:`aclose` closes them all, the cloud one included.

    Args:
        fleet: the fleet file.
        providers: host name -> provider; built from the fleet with ``provider_for`` when omitted.
        cloud: the cloud provider for ``fallback: cloud``.
        cloud_cost: price of one cloud answer in USD (``None`` when unknown); defaults to the answer's ``cost_usd``.
        clock: monotonic seconds for breaker cooldowns; injectable for tests.
        hedge_burst: most hedge tokens that can pile up.
    """

    def __init__(
        self,
        fleet: Fleet,
        providers: Mapping[str, Provider] | None = None,
        cloud: Provider | None = None,
        *,
        cloud_cost: CloudCost | None = None,
        clock: Clock = time.monotonic,
        hedge_burst: float = 10.0,
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
        self._cloud_cost = cloud_cost
        self._health = {host.name: HostHealth(host.name, fleet.breaker, clock=clock) for host in fleet.hosts}
        self._pooled = LatencyWindow()  # every host's latencies, for hosts that have too few of their own yet
        self._semaphores = {host.name: asyncio.Semaphore(host.max_concurrency) for host in fleet.hosts}
        self.hedge_budget = HedgeBudget(fleet.hedge.budget, burst=hedge_burst)
        self.cloud_budget = CloudBudget(fleet.cloud_budget_usd)

    @classmethod
    def from_fleet(
        cls,
        fleet: Fleet,
        *,
        cloud: Provider | None = None,
        cloud_cost: CloudCost | None = None,
        clock: Clock = time.monotonic,
    ) -> Dispatcher:
        """Build the providers of every host, and the Anthropic provider when the fleet falls back to the cloud."""
        if fleet.fallback == "cloud" and cloud is None:
            from harness.providers.anthropic_cloud import AnthropicProvider

            cloud = AnthropicProvider(fleet.cloud_model, timeout_s=fleet.timeout_s)
        return cls(fleet, None, cloud, cloud_cost=cloud_cost, clock=clock)

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
        return {name: health.snapshot() for name, health in self._health.items()}

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
        local = await self._run_local(request, chosen)
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

    # -- the local phase ------------------------------------------------------------------------------------------

    async def _send(self, flight: _Flight, request: GenerationRequest) -> Generation:
        health = self._health[flight.host.name]
        health.in_flight += 1
        try:
            async with self._semaphores[flight.host.name]:
                flight.sent = time.perf_counter()
                return await self.providers[flight.host.name].generate(request)
        finally:
            health.in_flight -= 1

    async def _run_local(self, request: GenerationRequest, strategy: str) -> _LocalResult:
        hosts = rank_hosts(self.fleet.hosts, self._health) if strategy == "hedge" else list(self.fleet.hosts)
        queue = deque(hosts)
        flights: dict[asyncio.Task[Generation], _Flight] = {}
        slots: list[Attempt | None] = []
        result = _LocalResult(None, None, [], {})
        policy = self.fleet.hedge
        started = time.perf_counter()
        deadline = started + self.fleet.timeout_s

        def launch() -> _Flight | None:
            """Send to the next host in the queue whose breaker allows it."""
            while queue:
                host = queue.popleft()
                health = self._health[host.name]
                permit = health.acquire()
                if permit is None:
                    reason = health.skip_reason() or "breaker open"
                    slots.append(Attempt(host=host.name, outcome="skipped", latency_s=0.0, error=reason))
                    result.reasons[host.name] = reason
                    continue
                flight = _Flight(host, permit, len(slots), time.perf_counter())
                slots.append(None)
                flight.task = asyncio.create_task(self._send(flight, request), name=f"dispatch:{host.name}")
                flights[flight.task] = flight
                return flight
            return None

        def settle(flight: _Flight, attempt: Attempt) -> None:
            slots[flight.index] = attempt
            if flight.sent is not None:
                result.busy_s[flight.host.name] = result.busy_s.get(flight.host.name, 0.0) + (
                    time.perf_counter() - flight.sent
                )

        def delay_after(flight: _Flight) -> float:
            return flight.launched + hedge_delay(policy, self._health[flight.host.name], pooled=self._pooled)

        if strategy == "hedge":
            self.hedge_budget.deposit()
        first = launch()
        while strategy == "race" and launch() is not None:
            pass
        hedge_at = delay_after(first) if strategy == "hedge" and first is not None else None
        hedged = False
        wanted = 1  # requests the hedge strategy keeps in flight: 1, or 2 once a hedge went out
        try:
            while flights:
                now = time.perf_counter()
                wake = deadline if hedged or hedge_at is None or not queue else min(deadline, hedge_at)
                done, _ = await asyncio.wait(
                    flights.keys(), timeout=max(0.0, wake - now), return_when=asyncio.FIRST_COMPLETED
                )
                for task in sorted(done, key=lambda t: flights[t].index):
                    flight = flights.pop(task)
                    self._finish(task, flight, result, settle)
                if result.winner is not None:
                    break
                if done and strategy == "hedge" and time.perf_counter() < deadline:
                    while len(flights) < wanted and (successor := launch()) is not None:
                        self.hedge_budget.charge_failover()
                        if not hedged:
                            hedge_at = delay_after(successor)
                now = time.perf_counter()
                if now >= deadline:
                    break
                if hedge_at is not None and not hedged and queue and now >= hedge_at:
                    hedged = True
                    if self.hedge_budget.try_hedge() and launch() is not None:
                        wanted = 2
        finally:
            timed_out = result.winner is None and time.perf_counter() >= deadline
            outcome = "timeout" if timed_out else "cancelled"
            await self._cancel(flights, outcome, result, settle)

        for host in queue:
            result.reasons.setdefault(host.name, "not tried" if strategy != "single" else "not tried (strategy single)")
        result.attempts = [a for a in slots if a is not None]
        return result

    def _finish(
        self,
        task: asyncio.Task[Generation],
        flight: _Flight,
        result: _LocalResult,
        settle: Callable[[_Flight, Attempt], None],
    ) -> None:
        """Account for a request that finished by itself."""
        now = time.perf_counter()
        health = self._health[flight.host.name]
        latency = now - flight.launched
        exc: BaseException | None = asyncio.CancelledError() if task.cancelled() else task.exception()
        if exc is None:
            served = now - (flight.launched if flight.sent is None else flight.sent)
            health.record_success(flight.permit, served)
            self._pooled.add(served)
            settle(flight, Attempt(host=flight.host.name, outcome="ok", latency_s=latency))
            if result.winner is None:
                result.winner = task.result()
                result.winner_host = flight.host.name
            return
        health.record_failure(flight.permit)
        message, status = _describe(exc)
        settle(flight, Attempt(host=flight.host.name, outcome="error", latency_s=latency, status=status, error=message))
        result.reasons[flight.host.name] = f"HTTP {status}: {message}" if status is not None else message

    async def _cancel(
        self,
        flights: dict[asyncio.Task[Generation], _Flight],
        outcome: str,
        result: _LocalResult,
        settle: Callable[[_Flight, Attempt], None],
    ) -> None:
        """Cancel what is still in flight, wait for the connections to close, and record each as lost or timed out."""
        if not flights:
            return
        for task in flights:
            task.cancel()
        await asyncio.wait(flights.keys(), timeout=CANCEL_GRACE_S)
        now = time.perf_counter()
        for flight in flights.values():
            health = self._health[flight.host.name]
            elapsed = now - flight.launched
            if outcome == "cancelled":
                served = now - flight.sent if flight.sent is not None else None
                health.record_cancelled(flight.permit, served)
                if served is not None:
                    self._pooled.add(served)
                attempt = Attempt(host=flight.host.name, outcome="cancelled", latency_s=elapsed, cancelled=True)
            else:
                # A request that never got past the host's semaphore says nothing about the host itself.
                if flight.sent is not None:
                    health.record_failure(flight.permit)
                else:
                    health.record_cancelled(flight.permit)
                why = f"no answer within {self.fleet.timeout_s:g}s"
                attempt = Attempt(
                    host=flight.host.name, outcome="timeout", latency_s=elapsed, error=why, cancelled=True
                )
                result.reasons[flight.host.name] = why
            settle(flight, attempt)
        flights.clear()

    def _local_cost(self, busy_s: dict[str, float]) -> float:
        return sum(self.fleet.host(name).cost.usd_for_seconds(seconds) for name, seconds in busy_s.items())

    # -- the fallback ---------------------------------------------------------------------------------------------

    async def _fallback(self, request: GenerationRequest, local: _LocalResult, started: float) -> Generation:
        reasons = {host.name: local.reasons.get(host.name, "not tried") for host in self.fleet.hosts}
        if self.fleet.fallback != "cloud":
            raise FleetUnavailable(reasons)
        if self.cloud is None:
            raise FleetUnavailable(
                {**reasons, "cloud": "no cloud provider configured"},
                hint="build the dispatcher with Dispatcher.from_fleet or pass `cloud=`",
            )
        if self.cloud_budget.exhausted:
            raise FleetUnavailable(
                {**reasons, "cloud": "cloud budget exhausted"},
                hint=f"raise cloud_budget_usd (now {self.fleet.cloud_budget_usd:g}) in the fleet file, "
                "or bring local hosts back (`harness fleet status`)",
            )
        why = "fallback: every local host failed (" + "; ".join(f"{h}: {r}" for h, r in reasons.items()) + ")"
        cloud_started = time.perf_counter()
        try:
            async with asyncio.timeout(self.fleet.timeout_s):
                answer = await self.cloud.generate(request)
        except (ProviderError, TimeoutError) as exc:
            message = (
                f"no answer within {self.fleet.timeout_s:g}s" if isinstance(exc, TimeoutError) else _describe(exc)[0]
            )
            raise FleetUnavailable({**reasons, "cloud": message}) from exc
        cloud_latency = time.perf_counter() - cloud_started
        price = self._cloud_cost(answer) if self._cloud_cost is not None else answer.cost_usd
        self.cloud_budget.spend(price)
        cloud_attempt = Attempt(host=self.cloud.name, outcome="ok", latency_s=cloud_latency, error=why)
        local_cost = self._local_cost(local.busy_s)
        return replace(
            answer,
            tier="cloud",
            latency_s=time.perf_counter() - started,
            attempts=(*local.attempts, cloud_attempt),
            cost_usd=None if price is None else local_cost + price,
        )
