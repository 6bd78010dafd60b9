"""The local phase of one dispatched call: which hosts get a request, when, and in which slot (each ending is
recorded by :mod:`harness.dispatch.attempts`).

A call with a single candidate (strategy ``single``, or a one-host fleet) awaits its request inline under
``asyncio.timeout``; every other call runs each request as a task, so the first good answer can win and the rest be
cancelled (cancelling the task closes its HTTP connection; the server sees the client go away).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.config.fleet import Fleet, Host, Strategy
from harness.dispatch.attempts import Abandon, AttemptLog, Flight, LocalOutcome
from harness.dispatch.auto import ArrivalLoad
from harness.dispatch.health import HostHealth, LatencyWindow, Permit
from harness.dispatch.hedge_budget import HedgeBudget
from harness.dispatch.hedging import hedge_delay, least_loaded_first
from harness.dispatch.slots import SlotPool
from harness.dispatch.strategies import plan_call
from harness.providers.base import Provider
from harness.providers.types import Generation, GenerationRequest

CANCEL_GRACE_S = 2.0  # how long to wait for cancelled requests to unwind (httpx closes the socket on the way)

HostProbe = Callable[[str], str | None]
"""Host name -> ``None`` while the host may answer, else why it cannot (e.g. its server process exited).

Supplied by whoever knows more about a host than its HTTP replies, like the embedded fleet, which knows the PIDs it
started. A host the probe calls down is skipped with that reason instead of being tried and counted by its breaker.
"""


@dataclass
class FleetState:
    """What outlives a call: providers, per-host health, the hosts' slots, fleet-wide latencies, the hedge budget."""

    fleet: Fleet
    providers: dict[str, Provider]
    health: dict[str, HostHealth]
    slots: SlotPool
    pooled: LatencyWindow
    hedge_budget: HedgeBudget
    probe: HostProbe | None = None
    arrival_load: ArrivalLoad = field(default_factory=ArrivalLoad)

    def down_reason(self, host: str) -> str | None:
        return self.probe(host) if self.probe is not None else None


@dataclass
class _Hedge:
    """A ``hedge`` call's hedge: the request it would back up, when it is due, whether it went out, and how many
    requests the call keeps in flight (1, or 2 once the hedge went out)."""

    backed: Flight | None = None
    due: float | None = None
    sent: bool = False
    wanted: int = 1

    def back(self, flight: Flight, due: float) -> None:
        self.backed, self.due = flight, due


class LocalCall:
    """One call's local phase; see :mod:`harness.dispatch.dispatcher` for the strategies.

    Args:
        state: the dispatcher's shared state.
        request: what to ask.
        strategy: a name from :data:`harness.dispatch.strategies.STRATEGIES`; it plans the call from the hosts'
            health at this moment (``auto`` races or hedges by the load it sees).
    """

    def __init__(self, state: FleetState, request: GenerationRequest, strategy: Strategy) -> None:
        self.state = state
        self.request = request
        self.strategy = strategy
        typical = state.arrival_load.observe(sum(h.in_flight for h in state.health.values()), time.perf_counter())
        self.plan = plan_call(strategy, state.fleet.hosts, state.health, typical)
        self._racing = self.plan.mode == "race"
        self.queue = deque(self.plan.hosts)
        self.deadline = time.perf_counter() + state.fleet.timeout_s
        self.outcome = LocalOutcome()
        self.log = AttemptLog(state, self.outcome, racing=self._racing)
        self._tasks: dict[asyncio.Task[Generation], Flight] = {}

    async def run(self) -> LocalOutcome:
        if self.plan.mode == "single" or len(self.queue) == 1:
            await self._run_one()
        else:
            await self._run_many()
        unreached = "not tried (strategy single)" if self.plan.mode == "single" else "not tried"
        for host in self.queue:
            self.outcome.reasons.setdefault(host.name, unreached)
        self.outcome.attempts = self.log.attempts()
        return self.outcome

    # -- sending ----------------------------------------------------------------------------------------------------

    def _next(self) -> Flight | None:
        """The next host in the queue whose breaker allows a request; hosts passed over are recorded as skipped."""
        while self.queue:
            host = self.queue.popleft()
            down = self.state.down_reason(host.name)
            if down is not None:
                self.log.skipped(host, down)
                continue
            health = self.state.health[host.name]
            permit = health.acquire()
            if permit is None:
                self.log.skipped(host, health.skip_reason() or "breaker open")
                continue
            return self.log.open(host, permit, self._alternatives(permit))
        return None

    def _alternatives(self, permit: Permit) -> tuple[Host, ...]:
        """Hosts a request may go to instead of its own: for a plan with ``late_binding``, when it is the call's only
        request and an ordinary one (a half-open breaker's probe must go to its host), the hosts left in the queue
        whose breakers are closed and that are not down."""
        if not self.plan.late_binding or self._tasks or permit != "normal":
            return ()
        health = self.state.health
        return tuple(
            host for host in self.queue
            if health[host.name].state == "closed" and self.state.down_reason(host.name) is None
        )

    def _launch(self) -> Flight | None:
        flight = self._next()
        if flight is not None:
            task = asyncio.create_task(self._send(flight), name=f"dispatch:{flight.host.name}")
            self._tasks[task] = flight
        return flight

    async def _send(self, flight: Flight) -> Generation:
        racing = int(self._racing)
        health = self.state.health[flight.host.name]
        health.in_flight += 1
        health.racing += racing
        try:
            name = await self._take_slot(flight)
            try:
                flight.sent = time.perf_counter()
                self.state.health[name].sent += 1
                return await self.state.providers[name].generate(self.request)
            finally:
                flight.released = time.perf_counter()
                self.state.slots.give_back(name)
        finally:
            health = self.state.health[flight.host.name]
            health.in_flight -= 1
            health.racing -= racing

    async def _take_slot(self, flight: Flight) -> str:
        """Wait for a slot at the flight's host, or (late binding) at whichever of its alternatives frees one first,
        and bind the flight there. An alternative whose breaker opened meanwhile is handed back and dropped."""
        names = [flight.host.name, *(host.name for host in flight.alternatives)]
        while True:
            name = await self.state.slots.take(names)
            if name == flight.host.name:
                return name
            if self.state.health[name].state == "closed" and self.state.down_reason(name) is None:
                self._rebind(flight, self.state.fleet.host(name))
                return name
            self.state.slots.give_back(name)
            names.remove(name)

    def _rebind(self, flight: Flight, host: Host) -> None:
        """Move a late-bound flight to ``host``: its in-flight count goes along, and its old host rejoins the queue."""
        self.state.health[flight.host.name].in_flight -= 1
        self.state.health[host.name].in_flight += 1
        self.queue.remove(host)
        self.queue.appendleft(flight.host)
        flight.host = host

    # -- one candidate: inline ------------------------------------------------------------------------------------

    async def _run_one(self) -> None:
        flight = self._next()
        if flight is None:
            return
        try:
            async with asyncio.timeout(max(0.0, self.deadline - time.perf_counter())) as timeout:
                answer = await self._send(flight)
        except asyncio.CancelledError:
            self.log.abandoned(flight, "cancelled")
            raise
        except TimeoutError as exc:
            if timeout.expired():
                self.log.abandoned(flight, "timeout")
            else:
                self.log.failed(flight, exc)
        except Exception as exc:  # noqa: BLE001 -- a provider bug must not sink the call; it is recorded
            self.log.failed(flight, exc)
        else:
            self.log.succeeded(flight, answer)

    # -- several candidates: tasks --------------------------------------------------------------------------------

    async def _run_many(self) -> None:
        mode = self.plan.mode
        replacing = mode in ("hedge", "failover")  # a failed request is replaced by the next host at once
        hedge = _Hedge() if mode == "hedge" else None
        if hedge is not None:
            self.state.hedge_budget.deposit()
        first = self._launch()
        while mode == "race" and self._launch() is not None:
            pass
        if hedge is not None and first is not None:
            hedge.back(first, self._hedge_at(first))
        try:
            while self._tasks:
                due = hedge.due if hedge is not None and not hedge.sent and self.queue else None
                wake = self.deadline if due is None else min(self.deadline, due)
                timeout = max(0.0, wake - time.perf_counter())
                done, _ = await asyncio.wait(self._tasks.keys(), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                self._record(done)
                if self.outcome.winner is not None:
                    break
                if done and replacing and time.perf_counter() < self.deadline:
                    self._replace_failed(hedge)
                now = time.perf_counter()
                if now >= self.deadline:
                    break
                if hedge is not None and self.queue:
                    self._maybe_hedge(hedge, now)
        finally:
            timed_out = self.outcome.winner is None and time.perf_counter() >= self.deadline
            await self._cancel_all("timeout" if timed_out else "cancelled")

    def _hedge_at(self, flight: Flight) -> float:
        """When to hedge ``flight``: its hedge delay after it was launched or, with late binding, after it got its
        slot. The delay is a time at the host (the windows measure from the slot); a request still queued for its
        slot is not straggling, and a hedge would only queue too: look again a delay later."""
        delay = hedge_delay(self.state.fleet.hedge, self.state.health[flight.host.name], pooled=self.state.pooled)
        if not self.plan.late_binding:
            return flight.launched + delay
        return (time.perf_counter() if flight.sent is None else flight.sent) + delay

    def _record(self, done: set[asyncio.Task[Generation]]) -> None:
        """Record how each finished request ended, in launch order (so ties go to the earlier request)."""
        for task in sorted(done, key=lambda t: self._tasks[t].index):
            flight = self._tasks.pop(task)
            if task.cancelled():
                self.log.failed(flight, asyncio.CancelledError())
            elif (exc := task.exception()) is not None:
                self.log.failed(flight, exc)
            else:
                self.log.succeeded(flight, task.result())

    def _replace_failed(self, hedge: _Hedge | None) -> None:
        """Failover: launch the next hosts until the call has its requests in flight again (1, or 2 once hedged).
        Under ``hedge`` each failover is charged to the bucket, and until the hedge went out it backs the newcomer."""
        wanted = hedge.wanted if hedge is not None else 1
        while len(self._tasks) < wanted and (successor := self._launch()) is not None:
            if hedge is not None:
                self.state.hedge_budget.charge_failover()
                if not hedge.sent:
                    hedge.back(successor, self._hedge_at(successor))

    def _maybe_hedge(self, hedge: _Hedge, now: float) -> None:
        """Send the hedge if it is due and allowed; else say when to look again."""
        if hedge.sent or hedge.due is None or hedge.backed is None or now < hedge.due:
            return
        if self.plan.late_binding and (due := self._hedge_at(hedge.backed)) > now:
            hedge.due = due  # the request waited for its slot; its time at the host has not run out
        elif self._free_slot_next() or self.state.hedge_budget.try_hedge():
            hedge.sent = True
            if self._launch() is not None:
                hedge.wanted = 2
        else:
            # Refused: ask again once the call has waited twice as long. The longer it waits, the likelier it is a
            # straggler, so a scarce token does more good then; refused once for good, stragglers met an empty
            # bucket at 80 % load and set the p99.
            hedge.due = now + max(now - hedge.backed.launched, self.state.fleet.hedge.min_delay_s)

    def _free_slot_next(self) -> bool:
        """For a plan with ``free_slot_hedges``: put the least loaded host next, and say whether it has a slot free.

        A hedge onto an idle slot waits behind no one, and whichever request loses is cancelled, so it costs the
        fleet little: a straggler's hedge even frees the slot the straggler would have held for seconds. Such a hedge
        is counted in ``HedgeBudget.free_hedges`` and not charged; the bucket still pays for hedges into busy hosts.
        """
        if not self.plan.free_slot_hedges:
            return False
        health = self.state.health
        self.queue = deque(least_loaded_first(list(self.queue), health))
        head = self.queue[0]
        free = (
            self.state.slots.free(head.name) > 0
            and health[head.name].skip_reason() is None
            and self.state.down_reason(head.name) is None
        )
        if free:
            self.state.hedge_budget.free_hedges += 1
        return free

    async def _cancel_all(self, how: Abandon) -> None:
        """Cancel what is still in flight, wait for the connections to close, and record each as lost or timed out."""
        if not self._tasks:
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks.keys(), timeout=CANCEL_GRACE_S)
        for flight in self._tasks.values():
            self.log.abandoned(flight, how)
        self._tasks.clear()
