"""Per-host health: a circuit breaker and a rolling window of latencies.

The breaker has three states:

* ``closed``: requests flow; ``failures`` consecutive failures open it.
* ``open``: the host is skipped until ``cooldown_s`` has passed since it opened.
* ``half_open``: one probe request may go; its success closes the breaker, its failure opens it again for another
  cooldown, and its cancellation (it lost a race) just frees the probe slot for the next call.

The clock is injectable so tests can move time; it is used only for the breaker's cooldown.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

from harness.config.fleet import BreakerPolicy

BreakerState = Literal["closed", "open", "half_open"]
Permit = Literal["normal", "probe"]
Clock = Callable[[], float]

DEFAULT_WINDOW = 200

# 1 / Phi^-1(0.75): turns a median absolute deviation into a normal standard deviation.
_MAD_TO_SIGMA = 1.4826


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (numpy's default method).

    ``h = (n - 1) q``; the result is ``x[floor(h)] + (h - floor(h)) (x[floor(h) + 1] - x[floor(h)])``.
    """
    if not sorted_values:
        raise ValueError("quantile of no values")
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def _median(sorted_values: list[float]) -> float:
    return quantile(sorted_values, 0.5)


class LatencyWindow:
    """The last ``size`` latencies of one host, in seconds, with quantiles.

    The window is also kept sorted (insert and evict by bisection), so a quantile costs O(1) on every call; the
    dispatcher asks for some on each request.

    Args:
        size: how many recent samples to keep.
        refresh: the typical quantile (a log-normal fit, O(n log n)) is recomputed after this many new samples.
    """

    def __init__(self, size: int = DEFAULT_WINDOW, *, refresh: int = 8) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._sorted: list[float] = []
        self._adds = 0
        self._refresh = refresh
        self._typical: dict[float, tuple[int, float]] = {}

    def add(self, latency_s: float) -> None:
        value = max(0.0, latency_s)
        if len(self._samples) == self._samples.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._samples[0])]
        self._samples.append(value)
        bisect.insort(self._sorted, value)
        self._adds += 1

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    def __len__(self) -> int:
        return len(self._samples)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the window, or ``None`` when it is empty."""
        return quantile(self._sorted, q) if self._sorted else None

    def typical_quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the host's *typical* latency, from a log-normal fit that ignores stragglers.

        ``exp(m + z_q * 1.4826 * MAD)`` where ``m`` is the median and MAD the median absolute deviation of the log
        latencies. Median and MAD barely move when a few percent of requests straggle, so unlike the empirical
        quantile this does not jump into the straggler tail when that tail holds more than ``1 - q`` of the requests.
        """
        if not self._sorted:
            return None
        cached = self._typical.get(q)
        if cached is not None and self._adds - cached[0] < self._refresh:
            return cached[1]
        logs = [math.log(max(x, 1e-6)) for x in self._sorted]  # sorted, since log is monotonic
        m = _median(logs)
        mad = _median(sorted(abs(x - m) for x in logs))
        value = math.exp(m + NormalDist().inv_cdf(q) * _MAD_TO_SIGMA * mad)
        self._typical[q] = (self._adds, value)
        return value


@dataclass(frozen=True)
class HostSnapshot:
    """A host's health at one moment, for reports and ``fleet status``."""

    host: str
    state: BreakerState
    consecutive_failures: int
    successes: int
    failures: int
    cancelled: int
    in_flight: int
    sent: int
    busy_s: float
    samples: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    reopens_in_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HostHealth:
    """Breaker and latency window of one host.

    Args:
        name: the host name.
        policy: when the breaker opens and for how long.
        window: how many recent latencies to keep.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self.latency = LatencyWindow(window)
        # requests handed to this host and not yet ended, including those waiting for a slot (a late-bound one counts
        # at the host it was planned for until it binds)
        self.in_flight = 0
        self.racing = 0  # those of them sent by a race: they leave together once the race is won
        self.sent = 0  # requests that got a slot at the host
        self.busy_s = 0.0  # seconds requests spent at the host (holding a slot), summed over requests
        self.successes = 0
        self.failures = 0
        self.cancelled = 0
        self.consecutive_failures = 0
        self._clock = clock
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.policy.cooldown_s:
            return "half_open"
        return "open"

    def skip_reason(self) -> str | None:
        """Why a request may not go to this host now, or ``None`` if it may."""
        state = self.state
        if state == "open":
            return "breaker open"
        if state == "half_open" and self._probe_in_flight:
            return "breaker half-open (probe in flight)"
        return None

    def acquire(self) -> Permit | None:
        """Ask to send one request: ``"normal"`` when closed, ``"probe"`` for the one half-open probe, else ``None``."""
        state = self.state
        if state == "closed":
            return "normal"
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return "probe"
        return None

    def record_success(self, permit: Permit) -> None:
        self.successes += 1
        self.consecutive_failures = 0
        # Any success is evidence the host works, whether or not it was the probe.
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self, permit: Permit) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        state = self.state
        if state == "half_open" or (state == "closed" and self.consecutive_failures >= self.policy.failures):
            self._opened_at = self._clock()
        if permit == "probe":
            self._probe_in_flight = False

    def record_cancelled(self, permit: Permit, *, reached: bool = False) -> None:
        """A request was cut short because another host answered first.

        Args:
            permit: the permit it was sent with; a cancelled probe frees the probe slot (the breaker stays
                half-open: a lost race proves nothing either way).
            reached: it got to the host. A request that reached the host and was still being served is not a
                failure, so it ends a run of consecutive failures; otherwise a host that mostly loses races (and so
                rarely records a success) would open its breaker on a few failures spread over hundreds of requests.
        """
        self.cancelled += 1
        if reached and self.state == "closed":
            self.consecutive_failures = 0
        if permit == "probe":
            self._probe_in_flight = False

    def snapshot(self) -> HostSnapshot:
        state = self.state
        reopens = None
        if state == "open" and self._opened_at is not None:
            reopens = max(0.0, self.policy.cooldown_s - (self._clock() - self._opened_at))
        return HostSnapshot(
            host=self.name,
            state=state,
            consecutive_failures=self.consecutive_failures,
            successes=self.successes,
            failures=self.failures,
            cancelled=self.cancelled,
            in_flight=self.in_flight,
            sent=self.sent,
            busy_s=self.busy_s,
            samples=len(self.latency),
            p50_s=self.latency.quantile(0.50),
            p95_s=self.latency.quantile(0.95),
            p99_s=self.latency.quantile(0.99),
            reopens_in_s=reopens,
        )
