"""How each request of one call ended: recorded in the call's outcome and in its host's health and latency window."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from harness.config.fleet import Host
from harness.dispatch.health import Permit
from harness.errors import ProviderError
from harness.providers.types import Attempt, Generation

if TYPE_CHECKING:
    from harness.dispatch.engine import FleetState

Abandon = Literal["cancelled", "timeout"]


@dataclass
class LocalOutcome:
    """How the local phase ended: the winning answer (if any), every attempt, and why each host failed."""

    winner: Generation | None = None
    winner_host: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    busy_s: dict[str, float] = field(default_factory=dict)  # host -> seconds it spent on this call's requests


@dataclass(eq=False)
class Flight:
    """One request to one host.

    A late-bound request (``alternatives`` not empty) is counted at ``host`` while it waits, and takes the first slot
    that frees on ``host`` or any alternative; ``host`` is then wherever it went.
    """

    host: Host
    permit: Permit
    index: int
    launched: float
    alternatives: tuple[Host, ...] = ()
    sent: float | None = None  # when it got a slot at its host
    released: float | None = None  # when it gave the slot back (a cancelled loser: before its call settles)


def describe(exc: BaseException) -> tuple[str, int | None]:
    """A one-line reason and the HTTP status of a failed request."""
    if isinstance(exc, ProviderError):
        message = exc.message
        prefix = f"{exc.host}: "
        if exc.host and message.startswith(prefix):
            message = message[len(prefix) :]
        return message, exc.status
    return f"{type(exc).__name__}: {exc}", None


class AttemptLog:
    """One call's attempts, in the order their requests were launched, and what each ending tells the fleet state.

    Args:
        state: the dispatcher's shared state (host health, the fleet's latency window, the down probe).
        outcome: the call's outcome, whose reasons and busy seconds this fills in.
        racing: the call is a race, whose latencies say nothing about one host (see :meth:`_sample`).
    """

    def __init__(self, state: FleetState, outcome: LocalOutcome, *, racing: bool) -> None:
        self.state = state
        self.outcome = outcome
        self.racing = racing
        self._entries: list[Attempt | None] = []

    def skipped(self, host: Host, reason: str) -> None:
        self._entries.append(Attempt(host=host.name, outcome="skipped", latency_s=0.0, error=reason))
        self.outcome.reasons[host.name] = reason

    def open(self, host: Host, permit: Permit, alternatives: tuple[Host, ...]) -> Flight:
        """A request about to be sent; its attempt is filled in when it ends."""
        self._entries.append(None)
        return Flight(host, permit, len(self._entries) - 1, time.perf_counter(), alternatives)

    def attempts(self) -> list[Attempt]:
        return [a for a in self._entries if a is not None]

    def _settle(self, flight: Flight, attempt: Attempt) -> None:
        self._entries[flight.index] = attempt
        if flight.sent is not None:
            # up to when the host's slot was freed, not when the call got round to settling (after every loser)
            seconds = (flight.released or time.perf_counter()) - flight.sent
            busy = self.outcome.busy_s
            busy[flight.host.name] = busy.get(flight.host.name, 0.0) + seconds
            self.state.health[flight.host.name].busy_s += seconds

    def succeeded(self, flight: Flight, answer: Generation) -> None:
        now = time.perf_counter()
        served = now - (flight.launched if flight.sent is None else flight.sent)
        self.state.health[flight.host.name].record_success(flight.permit)
        self._sample(flight, served)
        self._settle(flight, Attempt(host=flight.host.name, outcome="ok", latency_s=now - flight.launched))
        if self.outcome.winner is None:
            self.outcome.winner = answer
            self.outcome.winner_host = flight.host.name

    def _sample(self, flight: Flight, served_s: float) -> None:
        """Add a request's time at its host to the host's latency window and the fleet's, which time hedges.

        A lost request counts too, as a censored sample: leaving it out would hide the slow tail from the windows, and
        the hedge delay would drift down with their quantiles. A race adds nothing: its winner is the fastest of n
        hosts and its losers are cut at the winner's time, so every sample is about the fastest of n. Under auto,
        which mixes races and hedges, those pulled the hedge delay down to ~p70 of the true latency; a third of the
        hedged calls then asked for a hedge, the budget ran dry, and the stragglers went unhedged.
        """
        if self.racing:
            return
        self.state.health[flight.host.name].latency.add(served_s)
        self.state.pooled.add(served_s)

    def failed(self, flight: Flight, exc: BaseException) -> None:
        self.state.health[flight.host.name].record_failure(flight.permit)
        message, status = describe(exc)
        down = self.state.down_reason(flight.host.name)
        if down is not None:  # the host's process is gone: say so, not the connection error it caused
            message, status = down, None
        latency = time.perf_counter() - flight.launched
        attempt = Attempt(host=flight.host.name, outcome="error", latency_s=latency, status=status, error=message)
        self._settle(flight, attempt)
        self.outcome.reasons[flight.host.name] = f"HTTP {status}: {message}" if status is not None else message

    def abandoned(self, flight: Flight, how: Abandon) -> None:
        """A request cut short: it lost to another host (``cancelled``) or ran out of time (``timeout``)."""
        now = time.perf_counter()
        health = self.state.health[flight.host.name]
        served = now - flight.sent if flight.sent is not None else None
        latency = now - flight.launched
        if how == "cancelled":
            health.record_cancelled(flight.permit, reached=served is not None)
            if served is not None:
                self._sample(flight, served)  # censored: its true latency was at least this
            self._settle(flight, Attempt(host=flight.host.name, outcome="cancelled", latency_s=latency, cancelled=True))
            return
        # A request that never got a slot at the host says nothing about the host itself.
        if served is not None:
            health.record_failure(flight.permit)
        else:
            health.record_cancelled(flight.permit)
        why = f"no answer within {self.state.fleet.timeout_s:g}s"
        self._settle(
            flight, Attempt(host=flight.host.name, outcome="timeout", latency_s=latency, error=why, cancelled=True)
        )
        self.outcome.reasons[flight.host.name] = why
