"""Dispatcher tail latency and request cost: single vs race vs hedge over 4 loopback fake hosts; dispatcher overhead.

Workload (drawn per request, at the server): latency log-normal with median 200 ms and sigma 0.35; 5 % stragglers at
10x; 2 % fast failures (HTTP 500 within 50 ms). Each strategy gets a fresh dispatcher, ``--warmup`` unmeasured calls
(a running service has latency history; a cold start hedges late until it has some), then ``--calls`` measured calls,
``--concurrency`` at a time. Quantiles are over answered calls; failures count in the failure rate. Requests per call
are counted by the dispatcher (attempts sent) and cross-checked with the servers' own counters.

Each fake host runs in its own process, so the fakes' event loops do not compete with each other's or the client's
for the GIL. Race runs at half the call concurrency: it sends 4 requests per call and, since cancelling a loser closes
its connection, opens about 3 new connections per call, so at equal call concurrency it loads this 2-core machine
several times harder than the others; at half it has about twice their requests in flight. Each answer
carries its scripted latency (Ollama ``total_duration``), so ``server+client overhead`` = the winning attempt's
latency minus the scripted one: if it stays at a few ms, neither the fakes nor the client loop are a bottleneck.

Targets:
  race:  p99 <= 0.15 x single's p99, failure rate <= 0.1 %
  hedge: p99 <= 0.30 x single's p99 at <= 1.15 requests/call, failure rate <= 0.1 %
  adaptive hedge p99 <= 1.1 x the best fixed-delay p99 under the same hedge budget
  overhead: the dispatcher adds <= 1 ms to the median latency of a bare ``httpx.AsyncClient`` request against a
            zero-latency host, at 200 concurrent calls
  throughput: at saturation (200 concurrent, each kind run on its own) the dispatcher's calls/s >= 0.8 x plain
            httpx's (small clients); ``--profile`` prints where the dispatcher's time goes. Also shown, side by
            side: one httpx client with 200 connections (httpcore's pool walks them all per request) and plain
            httpx on the aiohttp transport the providers use, which separates the dispatcher's own cost from
            the transport's

Run: ``python bench/dispatch.py [--calls 2000] [--concurrency 50] [--warmup 200] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import multiprocessing
import pstats
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
import numpy as np

from harness.config.fleet import Fleet, HedgePolicy, Host
from harness.dispatch import Dispatcher
from harness.errors import FleetUnavailable
from harness.providers.transport import AiohttpTransport
from harness.providers.types import GenerationRequest

MEDIAN_S = 0.200
SIGMA = 0.35
STRAGGLER_P = 0.05
STRAGGLER_X = 10.0
FAIL_P = 0.02
FAIL_WITHIN_S = 0.05
HOSTS = 4
FIXED_DELAYS_S = (0.15, 0.25, 0.3, 0.35, 0.4, 0.5, 0.8)
OVERHEAD_CONCURRENCY = 200

RACE_P99_X, HEDGE_P99_X, HEDGE_REQUESTS, MAX_FAILURE, ADAPTIVE_X, OVERHEAD_MS = 0.15, 0.30, 1.15, 0.001, 1.1, 1.0
THROUGHPUT_X = 0.8  # dispatcher calls/s over plain httpx calls/s at saturation, each run on its own

REQUEST = GenerationRequest(prompt="Which code section requires ice barrier at the eaves?", max_tokens=64)


# --- the fake hosts (child process) -----------------------------------------------------------------------------


def _workload_script(rng: random.Random) -> Any:
    from harness.fakes import Reply

    def script(_request: object) -> Reply:
        u = rng.random()
        if u < FAIL_P:
            return Reply.error(500, "llama runner process has terminated", latency=rng.uniform(0.0, FAIL_WITHIN_S))
        latency = MEDIAN_S * math.exp(rng.gauss(0.0, SIGMA))
        if u < FAIL_P + STRAGGLER_P:
            latency *= STRAGGLER_X
        return Reply.ok("R905.1.2: ice barrier from the eave edge to 24 in. inside the exterior wall.",
                        latency=latency, usage={"total_duration": int(latency * 1e9)})

    return script


def _serve(conn: Connection, name: str, seed: int | None) -> None:
    """Child process: one fake host, the workload's (seeded) or a zero-latency one; answers commands on ``conn``."""
    from harness.fakes import FakeOllama, Reply

    script = Reply.ok("ok") if seed is None else _workload_script(random.Random(seed))
    fake = FakeOllama(script=script, name=name).start()
    conn.send(fake.url)
    while True:
        command = conn.recv()
        if command == "counts":
            conn.send((fake.generations, fake.disconnects, fake.unread))
        elif command == "stop":
            fake.stop()
            conn.send(True)
            return


class Servers:
    """The workload hosts and the zero-latency host, one process each, so no fake waits on another's GIL."""

    def __init__(self, hosts: int, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._children: list[tuple[Connection, Any]] = []
        for name, host_seed in [*((f"h{i}", seed + i) for i in range(hosts)), ("zero", None)]:
            conn, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, name, host_seed), daemon=True)
            process.start()
            self._children.append((conn, process))
        urls = [conn.recv() for conn, _ in self._children]
        self.urls, self.zero_url = urls[:-1], urls[-1]

    def requests(self) -> int:
        """Generation requests the workload hosts received, including those abandoned before they were read."""
        total = 0
        for conn, _ in self._children[:-1]:
            conn.send("counts")
            generations, _disconnects, _unread = conn.recv()  # generations include the unread ones
            total += generations
        return total

    def stop(self) -> None:
        for conn, _ in self._children:
            conn.send("stop")
        for conn, process in self._children:
            conn.recv()
            process.join(timeout=10)


# --- one strategy ------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    latencies: list[float]
    failures: int
    calls: int
    requests: int
    server_requests: int
    overheads: list[float]
    hedges: int = 0
    denied: int = 0
    failovers: int = 0
    why_failed: Counter[str] = field(default_factory=Counter)

    def q(self, quantile: float) -> float:
        return float(np.quantile(self.latencies, quantile))

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls

    @property
    def requests_per_call(self) -> float:
        return self.requests / self.calls

    @property
    def server_requests_per_call(self) -> float:
        return self.server_requests / self.calls


def workload_fleet(urls: list[str], strategy: str, hedge: HedgePolicy) -> Fleet:
    hosts = [Host(name=f"h{i}", url=url, model="llama3.2", max_concurrency=256) for i, url in enumerate(urls)]
    return Fleet(hosts=hosts, strategy=strategy, hedge=hedge, timeout_s=8.0)  # type: ignore[arg-type]


async def drive(dispatcher: Dispatcher, calls: int, concurrency: int, phase: Phase | None) -> None:
    """``calls`` calls, ``concurrency`` at a time; recorded in ``phase`` unless it is None (warm-up)."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            try:
                gen = await dispatcher.generate(REQUEST)
            except FleetUnavailable as exc:
                if phase is not None:
                    phase.failures += 1
                    phase.why_failed["; ".join(sorted({why.split(":")[0] for why in exc.reasons.values()}))] += 1
                    phase.requests += sum(not why.startswith(("not tried", "breaker")) for why in exc.reasons.values())
                return
            if phase is None:
                return
            phase.latencies.append(time.perf_counter() - started)
            phase.requests += sum(a.outcome != "skipped" for a in gen.attempts)
            winner = next(a for a in gen.attempts if a.host == gen.host and a.outcome == "ok")
            if gen.timing.total_s is not None:
                phase.overheads.append(winner.latency_s - gen.timing.total_s)

    await asyncio.gather(*(one() for _ in range(calls)))


async def run_phase(
    servers: Servers, name: str, strategy: str, hedge: HedgePolicy, calls: int, concurrency: int, warmup: int
) -> Phase:
    phase = Phase(name, [], 0, calls, 0, 0, [])
    async with Dispatcher.from_fleet(workload_fleet(servers.urls, strategy, hedge)) as dispatcher:
        await drive(dispatcher, warmup, concurrency, None)
        budget = dispatcher.hedge_budget
        hedges, denied, failovers = budget.hedges, budget.denied, budget.failovers
        before = servers.requests()
        await drive(dispatcher, calls, concurrency, phase)
        await asyncio.sleep(0.2)  # let the servers see the last abandoned requests
        phase.server_requests = servers.requests() - before
        phase.hedges, phase.denied = budget.hedges - hedges, budget.denied - denied
        phase.failovers = budget.failovers - failovers
    return phase


# --- dispatcher overhead -----------------------------------------------------------------------------------------


class BareClients:
    """Plain httpx: clients of ``per_client`` connections, least-loaded first.

    One ``AsyncClient`` with 200 connections is slow at 200 concurrent requests (httpx scans its whole pool on every
    request and response), so the fair baseline spreads the requests over small clients, as the providers once did
    (they now use the aiohttp transport, measured beside it).
    """

    def __init__(self, url: str, total: int, per_client: int) -> None:
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        count = max(1, math.ceil(total / per_client))
        self.clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) for _ in range(count)]
        self.load = [0] * count

    async def post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        index = min(range(len(self.load)), key=self.load.__getitem__)
        self.load[index] += 1
        try:
            return await self.clients[index].post(path, json=payload)
        finally:
            self.load[index] -= 1

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


async def overhead(
    url: str, calls: int, concurrency: int, rounds: int, profiler: cProfile.Profile | None = None
) -> dict[str, float]:
    """Median latency of plain httpx requests vs dispatched ones against a zero-latency host.

    ``separate``: each kind alone at ``concurrency`` (alternating, ``rounds`` times, median of the medians).
    ``mixed``: both kinds at once, half the concurrency each, so they share the same server and client load and the
    difference is the dispatcher's own path, not a change in throughput (the check). ``sequential``: one at a time.
    """
    host = Host(name="zero", url=url, model="llama3.2", max_concurrency=concurrency)
    fleet = Fleet(hosts=[host], strategy="single", timeout_s=60.0)
    payload = {
        "model": "llama3.2",
        "stream": False,
        "options": {"num_predict": REQUEST.max_tokens},
        "messages": [{"role": "user", "content": REQUEST.prompt}],
    }
    pool = BareClients(url, concurrency, per_client=4)
    one_client = httpx.AsyncClient(
        base_url=url,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=60.0,
    )
    # the transport the providers use: measured as a plain client too, so the dispatcher's own cost shows apart
    # from the transport's
    on_aiohttp = httpx.AsyncClient(base_url=url, transport=AiohttpTransport(), timeout=60.0)
    dispatcher = Dispatcher.from_fleet(fleet)

    async def timed_post(post: Any) -> float:
        started = time.perf_counter()
        response = await post()
        response.raise_for_status()
        response.json()["message"]["content"]
        return time.perf_counter() - started

    async def bare() -> float:
        return await timed_post(lambda: pool.post("/api/chat", payload))

    async def bare_one_client() -> float:
        return await timed_post(lambda: one_client.post("/api/chat", json=payload))

    async def bare_aiohttp_transport() -> float:
        return await timed_post(lambda: on_aiohttp.post("/api/chat", json=payload))

    async def dispatched() -> float:
        started = time.perf_counter()
        await dispatcher.generate(REQUEST)
        return time.perf_counter() - started

    async def run(kinds: list[Any], n: int, width: int) -> dict[Any, list[float]]:
        gate = asyncio.Semaphore(width)
        out: dict[Any, list[float]] = {kind: [] for kind in kinds}

        async def one(kind: Any) -> None:
            async with gate:
                out[kind].append(await kind())

        await asyncio.gather(*(one(kinds[i % len(kinds)]) for i in range(n)))
        return out

    kinds = (bare, bare_one_client, bare_aiohttp_transport, dispatched)
    try:
        await run(list(kinds), 3 * concurrency, concurrency)  # open the connections, warm every path
        separate: dict[Any, list[float]] = {kind: [] for kind in kinds}
        rates: dict[Any, list[float]] = {kind: [] for kind in kinds}
        mixed: dict[Any, list[float]] = {bare: [], dispatched: []}
        for _ in range(rounds):
            for kind in kinds:
                began = time.perf_counter()
                if profiler is not None and kind is dispatched:
                    profiler.enable()
                latencies = (await run([kind], calls, concurrency))[kind]
                if profiler is not None and kind is dispatched:
                    profiler.disable()
                rates[kind].append(calls / (time.perf_counter() - began))
                separate[kind].append(statistics.median(latencies))
            both = await run([bare, dispatched], 2 * calls, concurrency)
            for kind in (bare, dispatched):
                mixed[kind].append(statistics.median(both[kind]))
        sequential = await run([bare, dispatched], 1000, 1)
    finally:
        await pool.aclose()
        await one_client.aclose()
        await on_aiohttp.aclose()
        await dispatcher.aclose()
    out = {f"separate_{kind.__name__}_ms": statistics.median(separate[kind]) * 1000 for kind in kinds}
    out.update({f"separate_{kind.__name__}_per_s": statistics.median(rates[kind]) for kind in kinds})
    for kind in (bare, dispatched):
        out[f"mixed_{kind.__name__}_ms"] = statistics.median(mixed[kind]) * 1000
        out[f"sequential_{kind.__name__}_ms"] = statistics.median(sequential[kind]) * 1000
    return out


# --- report ------------------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_phases(phases: list[Phase]) -> None:
    header = (f"{'strategy':<18}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'fail %':>8}{'req/call':>10}"
              f"{'server':>8}{'hedges':>8}{'denied':>8}{'failover':>9}{'ovh p50':>9}{'ovh p99':>9}")
    print(header)
    print("-" * len(header))
    for p in phases:
        ovh = np.quantile(p.overheads, [0.5, 0.99]) * 1000 if p.overheads else (math.nan, math.nan)
        print(f"{p.name:<18}{p.q(0.5) * 1000:>8.0f}{p.q(0.95) * 1000:>8.0f}{p.q(0.99) * 1000:>8.0f}"
              f"{p.failure_rate * 100:>8.2f}{p.requests_per_call:>10.3f}{p.server_requests_per_call:>8.3f}"
              f"{p.hedges:>8}{p.denied:>8}{p.failovers:>9}{ovh[0]:>9.1f}{ovh[1]:>9.1f}")


async def main_async(args: argparse.Namespace) -> int:
    servers = Servers(HOSTS, args.seed)
    try:
        print(f"workload: {HOSTS} hosts, latency lognormal(median {MEDIAN_S * 1000:.0f} ms, sigma {SIGMA}), "
              f"{STRAGGLER_P:.0%} stragglers x{STRAGGLER_X:g}, {FAIL_P:.0%} HTTP 500 within "
              f"{FAIL_WITHIN_S * 1000:.0f} ms; {args.calls} calls per strategy, {args.concurrency} at a time "
              f"({args.race_concurrency} for race), after {args.warmup} warm-up calls")
        adaptive = HedgePolicy()
        print(f"hedge policy: quantile {adaptive.quantile}, budget {adaptive.budget} extra requests/call, "
              f"min delay {adaptive.min_delay_s * 1000:.0f} ms, initial delay "
              f"{adaptive.initial_delay_s * 1000:.0f} ms\n")

        async def run(name: str, strategy: str, hedge: HedgePolicy) -> Phase:
            width = args.race_concurrency if strategy == "race" else args.concurrency
            phase = await run_phase(servers, name, strategy, hedge, args.calls, width, args.warmup)
            why = ", ".join(f"{count} x [{reasons}]" for reasons, count in phase.why_failed.most_common(3))
            print(f"  ({name}: {len(phase.latencies)} answered, {phase.failures} failed{': ' + why if why else ''})",
                  flush=True)
            return phase

        single = await run("single", "single", adaptive)
        race = await run("race", "race", adaptive)
        hedge = await run("hedge (adaptive)", "hedge", adaptive)
        delays = FIXED_DELAYS_S[::2] if args.quick else FIXED_DELAYS_S
        fixed = [await run(f"hedge {d * 1000:.0f} ms", "hedge", HedgePolicy(delay_s=d)) for d in delays]
        print_phases([single, race, hedge, *fixed])

        print("\nhedge: requests/call vs p99 (fixed delays, same budget) beside the adaptive point")
        for p in [*fixed, hedge]:
            bar = "#" * int(round(p.q(0.99) * 40))
            print(f"  {p.name:<18} {p.requests_per_call:6.3f} req/call  p99 {p.q(0.99) * 1000:6.0f} ms  {bar}")

        best = min(fixed, key=lambda p: p.q(0.99))
        affordable = [p for p in fixed if p.requests_per_call <= hedge.requests_per_call * 1.01]
        best_affordable = min(affordable, key=lambda p: p.q(0.99)) if affordable else None

        print(f"\noverhead: plain httpx vs dispatcher against a zero-latency host, median latency "
              f"({args.overhead_calls} calls per kind, median of {args.overhead_rounds} rounds)")
        profiler = cProfile.Profile() if args.profile else None
        ovh = await overhead(servers.zero_url, args.overhead_calls, OVERHEAD_CONCURRENCY, args.overhead_rounds,
                             profiler)
        width = OVERHEAD_CONCURRENCY
        throughput_ratio = ovh["separate_dispatched_per_s"] / ovh["separate_bare_per_s"]
        print(f"  separate   ({width} concurrent): calls/s httpx (small clients) {ovh['separate_bare_per_s']:7.0f}"
              f"  httpx (one client) {ovh['separate_bare_one_client_per_s']:7.0f}"
              f"  httpx on aiohttp {ovh['separate_bare_aiohttp_transport_per_s']:7.0f}"
              f"  dispatcher {ovh['separate_dispatched_per_s']:7.0f}  (dispatcher / small clients = "
              f"{throughput_ratio:.2f})")
        if profiler is not None:
            print("\n  profile of the dispatcher's separate runs (top 25 by own time):")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        print(f"  separate   ({width} concurrent): httpx (small clients) {ovh['separate_bare_ms']:7.2f} ms"
              f"  httpx (one client) {ovh['separate_bare_one_client_ms']:7.2f} ms"
              f"  httpx on aiohttp {ovh['separate_bare_aiohttp_transport_ms']:7.2f} ms"
              f"  dispatcher {ovh['separate_dispatched_ms']:7.2f} ms")
        print(f"  mixed      ({width} concurrent): httpx (small clients) {ovh['mixed_bare_ms']:7.2f} ms"
              f"  dispatcher {ovh['mixed_dispatched_ms']:7.2f} ms")
        print(f"  sequential (  1 at a time): httpx (small clients) {ovh['sequential_bare_ms']:7.2f} ms"
              f"  dispatcher {ovh['sequential_dispatched_ms']:7.2f} ms")

        single_p99 = single.q(0.99)
        checks = [
            (f"race p99 {race.q(0.99) * 1000:.0f} ms <= {RACE_P99_X} x single p99 {single_p99 * 1000:.0f} ms "
             f"(= {race.q(0.99) / single_p99:.3f}x)", race.q(0.99) <= RACE_P99_X * single_p99),
            (f"race failure rate {race.failure_rate:.3%} <= {MAX_FAILURE:.1%}", race.failure_rate <= MAX_FAILURE),
            (f"hedge p99 {hedge.q(0.99) * 1000:.0f} ms <= {HEDGE_P99_X} x single p99 "
             f"(= {hedge.q(0.99) / single_p99:.3f}x)", hedge.q(0.99) <= HEDGE_P99_X * single_p99),
            (f"hedge requests/call {hedge.requests_per_call:.3f} <= {HEDGE_REQUESTS} "
             f"(servers counted {hedge.server_requests_per_call:.3f})",
             max(hedge.requests_per_call, hedge.server_requests_per_call) <= HEDGE_REQUESTS),
            (f"hedge failure rate {hedge.failure_rate:.3%} <= {MAX_FAILURE:.1%}", hedge.failure_rate <= MAX_FAILURE),
            (f"adaptive hedge p99 {hedge.q(0.99) * 1000:.0f} ms <= {ADAPTIVE_X} x best fixed "
             f"({best.name}: {best.q(0.99) * 1000:.0f} ms, = {hedge.q(0.99) / best.q(0.99):.3f}x)",
             hedge.q(0.99) <= ADAPTIVE_X * best.q(0.99)),
            (f"dispatcher adds {ovh['mixed_dispatched_ms'] - ovh['mixed_bare_ms']:+.2f} ms at the median, "
             f"{OVERHEAD_CONCURRENCY} concurrent, mixed with plain httpx calls <= {OVERHEAD_MS:g} ms "
             f"(run separately: {ovh['separate_dispatched_ms'] - ovh['separate_bare_ms']:+.2f} ms; "
             f"one at a time: {ovh['sequential_dispatched_ms'] - ovh['sequential_bare_ms']:+.2f} ms)",
             ovh["mixed_dispatched_ms"] - ovh["mixed_bare_ms"] <= OVERHEAD_MS),
            (f"at saturation ({OVERHEAD_CONCURRENCY} concurrent, run separately) the dispatcher serves "
             f"{ovh['separate_dispatched_per_s']:.0f} calls/s = {throughput_ratio:.2f} x plain httpx's "
             f"{ovh['separate_bare_per_s']:.0f} >= {THROUGHPUT_X}", throughput_ratio >= THROUGHPUT_X),
        ]
        if best_affordable is not None:
            print(f"\n(best fixed delay using no more requests/call than adaptive: {best_affordable.name}, "
                  f"p99 {best_affordable.q(0.99) * 1000:.0f} ms at {best_affordable.requests_per_call:.3f} req/call)")
        print("\ntargets")
        for text, ok in checks:
            print(f"  {verdict(ok)}  {text}")
        return 0 if all(ok for _, ok in checks) else 1
    finally:
        servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per strategy")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight at once")
    parser.add_argument("--race-concurrency", type=int, default=None,
                        help="calls in flight for race (default: half of --concurrency; see the module docstring)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls before each strategy")
    parser.add_argument("--overhead-calls", type=int, default=2000, help="calls per overhead measurement")
    parser.add_argument("--overhead-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--quick", action="store_true", help="fewer fixed delays")
    parser.add_argument("--profile", action="store_true", help="cProfile the dispatcher's separate overhead runs")
    args = parser.parse_args()
    if args.race_concurrency is None:
        args.race_concurrency = max(1, args.concurrency // 2)
    started = time.perf_counter()
    code = asyncio.run(main_async(args))
    print(f"\n(bench took {time.perf_counter() - started:.0f} s)")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
