"""`harness fleet bench`'s measurements: each strategy at each offered rate through the real dispatcher.

Order of work: the unloaded latency (one call at a time on one host, which sets the default SLO), then for each
series (a strategy on the whole fleet, and ``single`` on one box) a fresh dispatcher, a short unmeasured warm-up so
adaptive hedging has latency history, and one open-loop point per rate; then, with an API key, the paired cloud
comparison. Cloud fallback is switched off for the fleet series, so a point measures the fleet alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from harness.capacity.knee import DEFAULT_MAX_FAILURE, Bottleneck, Knee, bottleneck, find_knee
from harness.capacity.loadgen import drive
from harness.capacity.recommend import Recommendation, recommend
from harness.capacity.schedule import poisson_schedule
from harness.capacity.summary import CallRecord, PointSummary, summarize
from harness.config.fleet import Fleet, Strategy
from harness.dispatch import Dispatcher
from harness.errors import HarnessError, InputError
from harness.metrics.stats.intervals import Interval, quantile_interval
from harness.providers.base import Provider
from harness.providers.types import GenerationRequest

ONE_BOX = "single (1 host)"
DEFAULT_FRACTIONS = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0)  # of the estimated fleet capacity, when no rates are given


class Progress(Protocol):
    def start(self, phase: str, total: int) -> None: ...

    def advance(self, phase: str) -> None: ...


class _Quiet:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str) -> None:
        pass


@dataclass(frozen=True)
class SweepConfig:
    """What to measure and the bounds of every point.

    Attributes:
        strategies: the fleet series.
        rates: offered calls/s; empty: ``DEFAULT_FRACTIONS`` of the capacity estimated from the unloaded latency.
        duration_s: length of each point's schedule.
        max_calls: most calls in one point.
        grace_s: calls still open this long after a point's last due time are cut off as failures.
        slo_s: p99 bound for the knee; ``None``: twice the unloaded p50.
        max_failure: a point failing more than this share of calls breaks the SLO.
        one_box: also measure ``single`` on the first host alone.
        warmup_calls: unmeasured calls before each series.
        baseline_calls: sequential calls that measure the unloaded latency.
        cloud_calls: prompts sent to the cloud and to the fleet, one at a time, for the paired latency delta (0: off).
        seed: seeds the Poisson schedules.
    """

    strategies: tuple[Strategy, ...] = ("single", "race", "hedge", "least_loaded", "auto")
    rates: tuple[float, ...] = ()
    duration_s: float = 20.0
    max_calls: int = 2000
    grace_s: float = 30.0
    slo_s: float | None = None
    max_failure: float = DEFAULT_MAX_FAILURE
    one_box: bool = True
    warmup_calls: int = 20
    baseline_calls: int = 30
    cloud_calls: int = 0
    seed: int = 0


@dataclass(frozen=True)
class CloudDelta:
    """Cloud minus fleet latency over the same prompts, paired, one call at a time."""

    n: int
    fleet_p50_s: float | None
    cloud_p50_s: float | None
    mean_delta_s: float | None
    low_s: float | None
    high_s: float | None
    confidence: float
    failures: dict[str, int]


@dataclass
class BenchResult:
    fleet_hosts: list[str]
    slots: dict[str, int]
    prompts: dict[str, Any]
    unloaded_p50: Interval
    slo_s: float
    slo_source: str
    rates: list[float]
    points: list[PointSummary] = field(default_factory=list)
    knees: list[Knee] = field(default_factory=list)
    bottleneck: Bottleneck | None = None
    cloud: CloudDelta | None = None
    cloud_note: str | None = None
    recommendation: Recommendation | None = None
    elapsed_s: float = 0.0

    def knee(self, strategy: str) -> Knee | None:
        return next((k for k in self.knees if k.strategy == strategy), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def max_duration_s(config: SweepConfig, series: int, rates: int) -> float:
    """Upper bound of the sweep's run time, printed before it starts (points x (duration + grace))."""
    return series * rates * (config.duration_s + config.grace_s)


def estimated_capacity(fleet: Fleet, unloaded_p50_s: float) -> float:
    """Calls/s the fleet's slots could serve if every call took the unloaded median: ``sum(max_concurrency) / p50``."""
    return sum(host.max_concurrency for host in fleet.hosts) / unloaded_p50_s


class Sweep:
    """Runs a :class:`SweepConfig` against a fleet.

    Args:
        fleet: the fleet file (its ``fallback`` is ignored: the series measure the fleet alone).
        requests: local requests, used in turn.
        config: what to measure.
        progress: told of each phase (``start``) and each finished call (``advance``).
        prompts_info: where the requests came from, for the JSON.
        cloud: builds the cloud provider for the paired latency delta; ``None`` leaves the delta unmeasured.
        cloud_requests: the cloud tier's requests, in the same order as ``requests``.
    """

    def __init__(
        self,
        fleet: Fleet,
        requests: Sequence[GenerationRequest],
        config: SweepConfig,
        *,
        progress: Progress | None = None,
        prompts_info: dict[str, Any] | None = None,
        cloud: Callable[[], Provider] | None = None,
        cloud_requests: Sequence[GenerationRequest] = (),
    ) -> None:
        if not requests:
            raise InputError("no requests to send", hint="pass --prompts with a suite that has generation cases")
        self.fleet = fleet.model_copy(update={"fallback": "none"})
        self.requests = list(requests)
        self.config = config
        self.progress: Progress = progress or _Quiet()
        self.prompts_info = prompts_info or {}
        self._cloud = cloud
        self._cloud_requests = list(cloud_requests)

    async def run(self, *, volume_per_day: float | None = None, peak_factor: float = 3.0) -> BenchResult:
        started = time.perf_counter()
        config = self.config
        unloaded = await self.unloaded()
        if unloaded.estimate is None:
            raise HarnessError(
                "the fleet answered none of the unloaded calls, so there is no latency to bench against",
                hint="check the hosts with `harness fleet status`",
            )
        slo = config.slo_s if config.slo_s is not None else 2.0 * unloaded.estimate
        source = "--slo" if config.slo_s is not None else f"2 x unloaded p50 ({unloaded.estimate * 1000:.0f} ms)"
        rates = list(config.rates) or [
            round(f * estimated_capacity(self.fleet, unloaded.estimate), 3) for f in DEFAULT_FRACTIONS
        ]
        result = BenchResult(
            fleet_hosts=[h.name for h in self.fleet.hosts],
            slots={h.name: h.max_concurrency for h in self.fleet.hosts},
            prompts=self.prompts_info,
            unloaded_p50=unloaded,
            slo_s=slo,
            slo_source=source,
            rates=rates,
        )
        series: list[tuple[str, Fleet, Strategy]] = [(s, self.fleet, s) for s in config.strategies]
        if config.one_box:
            series.append((ONE_BOX, self.fleet.model_copy(update={"hosts": self.fleet.hosts[:1]}), "single"))
        for label, fleet, strategy in series:
            points = await self.series(label, fleet, strategy, rates)
            result.points.extend(points)
            result.knees.append(find_knee(points, slo, config.max_failure))
        one_box = result.knee(ONE_BOX)
        if one_box is not None:
            result.bottleneck = bottleneck(one_box, [k for k in result.knees if k.strategy != ONE_BOX])
        if config.cloud_calls > 0:
            if self._cloud is None:
                result.cloud_note = "no ANTHROPIC_API_KEY: the cloud latency delta was not measured"
            else:
                result.cloud = await self.cloud_delta(self._cloud)
        if volume_per_day is not None:
            result.recommendation = recommend(volume_per_day, peak_factor, result.knees)
        result.elapsed_s = time.perf_counter() - started
        return result

    # -- measurements ---------------------------------------------------------------------------------------------

    async def unloaded(self) -> Interval:
        """p50 of ``baseline_calls`` calls made one at a time to the first host (with its interval)."""
        one_box = self.fleet.model_copy(update={"hosts": self.fleet.hosts[:1]})
        latencies: list[float] = []
        phase = "unloaded"
        self.progress.start(phase, self.config.baseline_calls)
        async with Dispatcher(one_box) as dispatcher:
            for index in range(self.config.baseline_calls):
                began = time.perf_counter()
                try:
                    await dispatcher.generate(self.requests[index % len(self.requests)], strategy="single")
                except Exception:  # noqa: BLE001 -- a failed baseline call is left out of the median
                    pass
                else:
                    latencies.append(time.perf_counter() - began)
                self.progress.advance(phase)
        return quantile_interval(latencies, 0.5)

    async def series(self, label: str, fleet: Fleet, strategy: Strategy, rates: Sequence[float]) -> list[PointSummary]:
        """One strategy over every rate, on a fresh dispatcher after a warm-up."""
        points: list[PointSummary] = []
        async with Dispatcher(fleet) as dispatcher:
            await self.warm_up(dispatcher, strategy)
            for index, rate in enumerate(rates):
                points.append(await self.point(label, dispatcher, strategy, rate, seed=self.config.seed + index))
        return points

    async def warm_up(self, dispatcher: Dispatcher, strategy: Strategy) -> None:
        """``warmup_calls`` unmeasured calls, two at a time: connections open, latency windows filled."""
        gate = asyncio.Semaphore(2)

        async def one(index: int) -> None:
            async with gate:
                with contextlib.suppress(Exception):  # warm-up calls are not measured
                    await dispatcher.generate(self.requests[index % len(self.requests)], strategy=strategy)

        await asyncio.gather(*(one(i) for i in range(self.config.warmup_calls)))

    async def point(
        self, label: str, dispatcher: Dispatcher, strategy: Strategy, rate: float, *, seed: int
    ) -> PointSummary:
        """One open-loop load point."""
        config = self.config
        schedule = poisson_schedule(rate, config.duration_s, max_calls=config.max_calls, seed=seed)
        phase = f"{label} @ {rate:g}/s"
        self.progress.start(phase, len(schedule))
        before = dispatcher.health()

        async def send(index: int) -> object:
            return await dispatcher.generate(self.requests[index % len(self.requests)], strategy=strategy)

        def done(_record: CallRecord) -> None:
            self.progress.advance(phase)

        records, elapsed = await drive(schedule, send, grace_s=config.grace_s, on_done=done)
        after = dispatcher.health()
        sent = sum(after[name].sent - before[name].sent for name in after)
        busy = {name: after[name].busy_s - before[name].busy_s for name in after}
        slots = {host.name: host.max_concurrency for host in dispatcher.fleet.hosts}
        return summarize(
            label, rate, records, elapsed_s=elapsed, requests_sent=sent, busy_s=busy, slots=slots,
            hosts=len(dispatcher.fleet.hosts),
        )

    async def cloud_delta(self, make_cloud: Callable[[], Provider]) -> CloudDelta:
        """The same prompts, one at a time, to the fleet (its own strategy) and to the cloud; paired differences."""
        from harness.metrics.stats.tests import paired_bootstrap_ci

        n = min(self.config.cloud_calls, len(self.requests), len(self._cloud_requests))
        fleet_latency: list[float | None] = []
        cloud_latency: list[float | None] = []
        failures: dict[str, int] = {}
        phase = "cloud delta"
        self.progress.start(phase, n)
        cloud = make_cloud()
        try:
            async with Dispatcher(self.fleet) as dispatcher:
                for index in range(n):
                    for tier, call, out in (
                        ("fleet", lambda i=index: dispatcher.generate(self.requests[i]), fleet_latency),
                        ("cloud", lambda i=index: cloud.generate(self._cloud_requests[i]), cloud_latency),
                    ):
                        began = time.perf_counter()
                        try:
                            await call()
                        except Exception:  # noqa: BLE001 -- a failed side leaves the pair unmeasured
                            failures[tier] = failures.get(tier, 0) + 1
                            out.append(None)
                        else:
                            out.append(time.perf_counter() - began)
                    self.progress.advance(phase)
        finally:
            await cloud.aclose()
        ci = paired_bootstrap_ci(fleet_latency, cloud_latency, seed=self.config.seed)
        measured_fleet = [x for x in fleet_latency if x is not None]
        measured_cloud = [x for x in cloud_latency if x is not None]
        return CloudDelta(
            n=ci.n,
            fleet_p50_s=quantile_interval(measured_fleet, 0.5).estimate,
            cloud_p50_s=quantile_interval(measured_cloud, 0.5).estimate,
            mean_delta_s=ci.estimate,
            low_s=ci.low,
            high_s=ci.high,
            confidence=ci.confidence,
            failures=failures,
        )
