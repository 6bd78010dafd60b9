"""Gateway overhead under load: the same requests straight to a loopback fake upstream and through the gateway.

Three passes, each alternating direct and gateway runs in one process run so drift in the machine's load hits both
alike. Every answer must carry its own request's id: a missing, failed or mis-routed answer is counted, never dropped
from the figures.

1. **Model-like upstream** (the targets): ``--requests`` (2,000) non-streamed ``/api/chat`` calls, ``--concurrency``
   (200) in flight, against a fake Ollama that answers each after a log-normal latency (``--upstream-median-ms``,
   default 1,000, sigma 0.5), as a model server does. The fake reports that scripted latency in the answer's
   ``total_duration``, so each request's *overhead* is its measured latency minus the scripted one; the gateway's
   added latency is its overhead quantile minus the direct path's. Subtracting the scripted latency per request
   removes the log-normal's own sampling noise, which would otherwise swamp a p99 difference of milliseconds.
2. **Saturation** (reported, no target): the same load against a zero-latency upstream. Every request then queues
   behind CPU, and by Little's law a closed loop's latency is concurrency / throughput, so this pass reports
   throughput: how many requests per second the gateway passes compared with the upstream alone.
3. **One at a time** (``--serial``): the gateway's per-request cost without queueing.

The load generator is aiohttp (its cost per request is a fraction of httpx's), the same client for both paths. The
fake and the gateway each run in their own process (the gateway through ``harness gateway serve``, as a user runs
it), so neither competes with the load generator for the GIL; the gateway's RSS is read from /proc.

Targets:
  zero dropped or mis-routed responses
  added p50 <= 2 ms and added p99 <= 10 ms at 200 concurrent against the model-like upstream
  RSS growth over the measured runs: reported
Also reported: the gateway process's CPU time per request, which a loaded machine distorts much less than latency.

Run: ``python bench/gateway.py [--requests 2000] [--concurrency 200] [--rounds 3] [--serial 300]
[--upstream-median-ms 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
ADDED_P50_MS, ADDED_P99_MS = 2.0, 10.0
CLIENT_TIMEOUT_S = 60.0
BODY_TEMPLATE = {"model": "llama3.2", "stream": False}
MODEL_LIKE, ZERO_LATENCY = "model", "zero"  # the first word of each prompt tells the fake how long to take

# The fake must not stall on its own: a fake that keeps every request it served has a full garbage collection that
# grows with them, ~100 ms after 20,000 requests, and it lands in whichever run is active, as a p99 spike in that run
# alone. So this one keeps no request log, and what exists at start-up is frozen out of the collector's walks.
FAKE_SCRIPT = """
import gc
import sys
from harness.fakes import FakeOllama, Reply, lognormal

draw = lognormal(float(sys.argv[1]), float(sys.argv[2]), seed=7)

def echo(request):
    content = request.body["messages"][0]["content"]
    return Reply.ok("echo " + content, latency=draw() if content.startswith("model ") else 0.0)

fake = FakeOllama(script=echo)
fake.keep_requests = False
with fake:
    gc.freeze()
    print(fake.url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""


@dataclass
class RunResult:
    label: str
    latencies_ms: list[float] = field(default_factory=list)
    overheads_ms: list[float] = field(default_factory=list)  # measured latency minus the upstream's scripted one
    failed: int = 0
    misrouted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def quantile(self, q: float, *, overhead: bool = False) -> float:
        values = self.overheads_ms if overhead else self.latencies_ms
        return float(np.quantile(values, q)) if values else float("nan")


async def load(
    url: str,
    headers: dict[str, str],
    label: str,
    requests: int,
    concurrency: int,
    offset: int,
    kind: str,
    stagger_s: float = 0.0,
) -> RunResult:
    """``requests`` calls, ``concurrency`` at a time, each checked against its own id.

    The connections are opened (one unmeasured request each) before the clock starts, and the workers' first calls
    are spread evenly over ``stagger_s``: otherwise all of them arrive in the same instant, and what is measured is
    how long a burst of ``concurrency`` simultaneous requests takes to get through, not the steady state.
    """
    result = RunResult(label)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(offset + index)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                ident = f"{kind} req-{queue.get_nowait()}"
                body = {**BODY_TEMPLATE, "messages": [{"role": "user", "content": ident}]}
                started = time.perf_counter()
                try:
                    async with session.post("/api/chat", json=body) as response:
                        answer = await response.json() if response.status == 200 else None
                    elapsed = (time.perf_counter() - started) * 1000.0
                except (aiohttp.ClientError, TimeoutError) as exc:
                    result.failed += 1
                    result.reasons[type(exc).__name__] += 1
                    continue
                if answer is None:
                    result.failed += 1
                    result.reasons[f"HTTP {response.status}"] += 1
                    continue
                if answer["message"]["content"] != f"echo {ident}":
                    result.misrouted += 1
                    continue
                result.latencies_ms.append(elapsed)
                result.overheads_ms.append(elapsed - answer["total_duration"] / 1e6)

        async def warm() -> None:
            body = {**BODY_TEMPLATE, "messages": [{"role": "user", "content": f"{ZERO_LATENCY} warm-up"}]}
            async with session.post("/api/chat", json=body) as response:
                await response.read()

        await asyncio.gather(*(warm() for _ in range(concurrency)))

        async def staggered(index: int) -> None:
            await asyncio.sleep(stagger_s * index / concurrency)
            await worker()

        began = time.perf_counter()
        await asyncio.gather(*(staggered(index) for index in range(concurrency)))
        result.seconds = time.perf_counter() - began
    return result


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc: a cost that a loaded machine stretches far less than latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_fake(median_s: float, sigma: float) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE_SCRIPT, str(median_s), str(sigma)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def start_gateway(upstream: str, keys: Path, port: int, audit: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [
        sys.executable,
        "-m",
        "harness.cli.main",
        "gateway",
        "serve",
        "--upstream",
        upstream,
        "--port",
        str(port),
        "--keys",
        str(keys),
        "--rate",
        "100000",
        "--burst",
        "100000",
        "--max-upstream",
        "256",
        "--connect-timeout",  # as patient as the load generator's own client, so both paths fail alike
        str(CLIENT_TIMEOUT_S),
        "--audit-log",
        str(audit),
    ]
    # stderr to a file: an unread pipe would fill and stall the gateway mid-run
    log = audit.with_name("gateway-stderr.log").open("w")
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)


def mint_token(keys: Path) -> str:
    from harness.gateway.keys import load_keyset
    from harness.gateway.tokens import TokenPolicy, mint

    return mint(load_keyset(keys).signing_key(), subject="bench", scopes=["chat"], ttl_s=3600, policy=TokenPolicy())


def wait_ready(url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            body = {**BODY_TEMPLATE, "messages": [{"role": "user", "content": "ready"}]}
            if httpx.post(f"{url}/api/chat", json=body, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pooled(runs: list[RunResult]) -> RunResult:
    merged = RunResult(runs[0].label)
    for run in runs:
        merged.latencies_ms += run.latencies_ms
        merged.overheads_ms += run.overheads_ms
        merged.failed += run.failed
        merged.misrouted += run.misrouted
        merged.seconds += run.seconds
        merged.reasons.update(run.reasons)
    return merged


def report_pair(direct: list[RunResult], gateway: list[RunResult], title: str) -> tuple[float, float, float]:
    """Print both paths; returns (added overhead p50, added overhead p99, gateway/direct throughput)."""
    d, g = pooled(direct), pooled(gateway)
    print(f"\n{title}")
    print(
        f"{'':10} {'n ok':>6} {'failed':>6} {'misrouted':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'ovh p50':>8} {'ovh p99':>8} {'req/s':>8}"
    )
    rates = []
    for run in (d, g):
        rate = len(run.latencies_ms) / run.seconds if run.seconds else float("nan")
        rates.append(rate)
        print(
            f"{run.label:10} {len(run.latencies_ms):6d} {run.failed:6d} {run.misrouted:9d} {run.quantile(0.5):8.2f} "
            f"{run.quantile(0.9):8.2f} {run.quantile(0.99):8.2f} {run.quantile(0.5, overhead=True):8.2f} "
            f"{run.quantile(0.99, overhead=True):8.2f} {rate:8.0f}"
        )
    for run in (d, g):
        if run.reasons:
            print(f"{run.label} failures: {dict(run.reasons)}")
    added50 = g.quantile(0.5, overhead=True) - d.quantile(0.5, overhead=True)
    added99 = g.quantile(0.99, overhead=True) - d.quantile(0.99, overhead=True)
    low50, high50 = added_interval(d.overheads_ms, g.overheads_ms, 0.5)
    low99, high99 = added_interval(d.overheads_ms, g.overheads_ms, 0.99)
    print(
        f"added by the gateway (overhead = latency minus the upstream's scripted latency): "
        f"p50 {added50:+.2f} ms [{low50:+.2f}, {high50:+.2f}], p99 {added99:+.2f} ms [{low99:+.2f}, {high99:+.2f}] "
        f"(95% bootstrap intervals, n = {len(d.overheads_ms)} direct and {len(g.overheads_ms)} through the gateway); "
        f"throughput gateway / direct = {rates[1] / rates[0]:.2f}"
    )
    return added50, added99, rates[1] / rates[0]


def added_interval(direct: list[float], gateway: list[float], q: float, resamples: int = 1000) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval for quantile(gateway) - quantile(direct), each path resampled on its own.
    It covers the sampling noise within these runs, not the drift of a shared machine from one run to the next."""
    if not direct or not gateway:
        return float("nan"), float("nan")
    rng = np.random.default_rng(0)
    gaps = np.quantile(rng.choice(gateway, (resamples, len(gateway))), q, axis=1) - np.quantile(
        rng.choice(direct, (resamples, len(direct))), q, axis=1
    )
    low, high = np.percentile(gaps, [2.5, 97.5])
    return float(low), float(high)


def alternate(
    gateway_pid: int, urls: tuple[str, str], auth: dict[str, str], args: argparse.Namespace, kind: str, offset: int
) -> tuple[list[RunResult], list[RunResult], float]:
    """``--rounds`` of direct then gateway runs; returns both lists and the gateway's CPU seconds per request."""
    upstream, gateway_url = urls
    stagger_s = args.upstream_median_ms / 1000.0 if kind == MODEL_LIKE else 0.0
    direct_runs: list[RunResult] = []
    gateway_runs: list[RunResult] = []
    cpu = 0.0
    for round_index in range(args.rounds):
        base = offset + round_index * 2 * args.requests
        direct_runs.append(
            asyncio.run(load(upstream, {}, "direct", args.requests, args.concurrency, base, kind, stagger_s))
        )
        cpu_start = cpu_seconds(gateway_pid)
        gateway_runs.append(
            asyncio.run(
                load(
                    gateway_url, auth, "gateway", args.requests, args.concurrency, base + args.requests, kind, stagger_s
                )
            )
        )
        cpu += cpu_seconds(gateway_pid) - cpu_start
    return direct_runs, gateway_runs, cpu / (args.rounds * args.requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serial", type=int, default=300)
    parser.add_argument("--upstream-median-ms", type=float, default=1000.0, help="the model-like upstream's median")
    args = parser.parse_args()

    from harness.gateway.keys import keygen, public_path

    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.json"
        keygen(keys, "EdDSA")
        token = mint_token(keys)
        fake, upstream = start_fake(args.upstream_median_ms / 1000.0, 0.5)
        port = free_port()
        audit = Path(tmp) / "audit.jsonl"
        gateway = start_gateway(upstream, public_path(keys), port, audit)
        urls = (upstream, f"http://127.0.0.1:{port}")
        auth = {"Authorization": f"Bearer {token}"}
        try:
            wait_ready(upstream, {})
            wait_ready(urls[1], auth)
            # warm both paths (connection pools, code paths) before measuring
            asyncio.run(load(upstream, {}, "direct", 400, args.concurrency, 10_000_000, ZERO_LATENCY))
            asyncio.run(load(urls[1], auth, "gateway", 400, args.concurrency, 20_000_000, ZERO_LATENCY))
            rss_before = rss_kib(gateway.pid)
            model_direct, model_gateway, cpu_model = alternate(gateway.pid, urls, auth, args, MODEL_LIKE, 0)
            zero_direct, zero_gateway, cpu_zero = alternate(gateway.pid, urls, auth, args, ZERO_LATENCY, 5_000_000)
            rss_after = rss_kib(gateway.pid)
            serial_direct = asyncio.run(load(upstream, {}, "direct", args.serial, 1, 30_000_000, ZERO_LATENCY))
            cpu_start = cpu_seconds(gateway.pid)
            serial_gateway = asyncio.run(load(urls[1], auth, "gateway", args.serial, 1, 40_000_000, ZERO_LATENCY))
            cpu_serial = (cpu_seconds(gateway.pid) - cpu_start) / args.serial
        finally:
            gateway.terminate()
            gateway.wait(timeout=20)
            assert fake.stdin is not None
            fake.stdin.close()
            fake.wait(timeout=20)
        refusals = Counter(
            f"{record['status']} {record['reason']}"
            for line in audit.read_text().splitlines()
            if (record := json.loads(line))["status"] != 200 or record["reason"]  # a reason: cut mid-answer
        )

    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f} (a shared machine: figures are noisy)")
    runs = f"{args.rounds} x {args.requests} requests at {args.concurrency} concurrent, alternating direct / gateway"
    added50, added99, _ = report_pair(
        model_direct,
        model_gateway,
        f"1. model-like upstream (log-normal, median {args.upstream_median_ms:.0f} ms, sigma 0.5): {runs}",
    )
    _, _, saturated = report_pair(zero_direct, zero_gateway, f"2. zero-latency upstream, saturated: {runs}")
    report_pair([serial_direct], [serial_gateway], f"3. {args.serial} requests one at a time (per-request cost)")
    print(
        f"\ngateway CPU per request: {cpu_model * 1000:.2f} ms (pass 1), {cpu_zero * 1000:.2f} ms (pass 2), "
        f"{cpu_serial * 1000:.2f} ms (pass 3) (process user+system time; the part of its latency the gateway spends)"
    )
    if refusals:
        print(f"gateway audit log, requests not answered 200 in full: {dict(refusals)}")
    lost = sum(r.failed + r.misrouted for r in model_direct + model_gateway + zero_direct + zero_gateway)
    print(
        f"gateway RSS: {rss_before / 1024:.1f} MiB after warm-up, {rss_after / 1024:.1f} MiB after "
        f"{args.rounds * args.requests * 2} requests (growth {(rss_after - rss_before) / 1024:+.1f} MiB)"
    )
    print(f"saturated throughput through the gateway: {saturated:.2f} x the upstream's alone (reported, no target)")
    checks = {
        "zero dropped or mis-routed": lost == 0,
        f"added p50 <= {ADDED_P50_MS} ms": added50 <= ADDED_P50_MS,
        f"added p99 <= {ADDED_P99_MS} ms": added99 <= ADDED_P99_MS,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
