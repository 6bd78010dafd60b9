"""Gateway overhead under load: the same requests straight to a loopback fake upstream and through the gateway.

Workload: ``--requests`` (2,000) non-streamed ``/api/chat`` calls, ``--concurrency`` (200) in flight, against a fake
Ollama that echoes each request's id at once (zero scripted latency), so every millisecond measured is HTTP, proxy
and scheduling cost. Direct and gateway runs alternate (``--rounds`` of each, default 1, in one process run) so
drift in the machine's load hits both alike. Each answer must carry its own request's id: a missing, failed or
mis-routed answer is counted, never dropped from the figures. A second, sequential pass (``--serial`` calls, one at
a time) gives the gateway's per-request cost without queueing.

The fake and the gateway each run in their own process (the gateway through ``harness gateway serve``, as a user runs
it), so neither competes with the load generator for the GIL; the gateway's RSS is read from /proc before and after.

Targets:
  zero dropped or mis-routed responses
  added p50 <= 2 ms and added p99 <= 10 ms at 200 concurrent (gateway quantile minus direct quantile)
  RSS growth over the measured run: reported
Also reported: the gateway process's CPU time per request, which a loaded machine distorts much less than latency.

Run: ``python bench/gateway.py [--requests 2000] [--concurrency 200] [--rounds 1] [--serial 300]``.
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

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
ADDED_P50_MS, ADDED_P99_MS = 2.0, 10.0
CLIENT_TIMEOUT_S = 60.0
BODY_TEMPLATE = {"model": "llama3.2", "stream": False}

FAKE_SCRIPT = """
import sys, time
from harness.fakes import FakeOllama, Reply

def echo(request):
    return Reply.ok("echo " + request.body["messages"][0]["content"])

with FakeOllama(script=echo) as fake:
    print(fake.url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""


@dataclass
class RunResult:
    label: str
    latencies_ms: list[float] = field(default_factory=list)
    failed: int = 0
    misrouted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


async def load(
    url: str, headers: dict[str, str], label: str, requests: int, concurrency: int, offset: int
) -> RunResult:
    """``requests`` calls, ``concurrency`` at a time, each checked against its own id."""
    result = RunResult(label)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(offset + index)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=CLIENT_TIMEOUT_S) as client:

        async def worker() -> None:
            while not queue.empty():
                ident = f"req-{queue.get_nowait()}"
                body = {**BODY_TEMPLATE, "messages": [{"role": "user", "content": ident}]}
                started = time.perf_counter()
                try:
                    response = await client.post("/api/chat", json=body)
                    elapsed = (time.perf_counter() - started) * 1000.0
                except httpx.HTTPError as exc:
                    result.failed += 1
                    result.reasons[type(exc).__name__] += 1
                    continue
                if response.status_code != 200:
                    result.failed += 1
                    result.reasons[f"HTTP {response.status_code}"] += 1
                    continue
                if response.json()["message"]["content"] != f"echo {ident}":
                    result.misrouted += 1
                    continue
                result.latencies_ms.append(elapsed)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
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


def start_fake() -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
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


def report_pair(direct: list[RunResult], gateway: list[RunResult], title: str) -> tuple[float, float]:
    def pooled(runs: list[RunResult]) -> RunResult:
        merged = RunResult(runs[0].label)
        for run in runs:
            merged.latencies_ms += run.latencies_ms
            merged.failed += run.failed
            merged.misrouted += run.misrouted
            merged.seconds += run.seconds
            merged.reasons.update(run.reasons)
        return merged

    d, g = pooled(direct), pooled(gateway)
    print(f"\n{title}")
    print(f"{'':10} {'n ok':>6} {'failed':>6} {'misrouted':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for run in (d, g):
        rate = len(run.latencies_ms) / run.seconds if run.seconds else float("nan")
        print(
            f"{run.label:10} {len(run.latencies_ms):6d} {run.failed:6d} {run.misrouted:9d} {run.quantile(0.5):8.2f} "
            f"{run.quantile(0.9):8.2f} {run.quantile(0.99):8.2f} {rate:8.0f}"
        )
    for run in (d, g):
        if run.reasons:
            print(f"{run.label} failures: {dict(run.reasons)}")
    added50, added99 = g.quantile(0.5) - d.quantile(0.5), g.quantile(0.99) - d.quantile(0.99)
    print(
        f"added by the gateway: p50 {added50:+.2f} ms, p99 {added99:+.2f} ms; "
        f"ratio to direct: p50 x{g.quantile(0.5) / d.quantile(0.5):.2f}, p99 x{g.quantile(0.99) / d.quantile(0.99):.2f}"
    )
    return added50, added99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serial", type=int, default=300)
    args = parser.parse_args()

    from harness.gateway.keys import keygen, public_path

    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.json"
        keygen(keys, "EdDSA")
        token = mint_token(keys)
        fake, upstream = start_fake()
        port = free_port()
        audit = Path(tmp) / "audit.jsonl"
        gateway = start_gateway(upstream, public_path(keys), port, audit)
        gateway_url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        try:
            wait_ready(upstream, {})
            wait_ready(gateway_url, auth)
            # warm both paths (connection pools, code paths) before measuring
            asyncio.run(load(upstream, {}, "direct", 400, args.concurrency, 10_000_000))
            asyncio.run(load(gateway_url, auth, "gateway", 400, args.concurrency, 20_000_000))
            rss_before = rss_kib(gateway.pid)
            direct_runs: list[RunResult] = []
            gateway_runs: list[RunResult] = []
            cpu_concurrent = 0.0
            for round_index in range(args.rounds):
                offset = round_index * 2 * args.requests
                direct_runs.append(asyncio.run(load(upstream, {}, "direct", args.requests, args.concurrency, offset)))
                cpu_start = cpu_seconds(gateway.pid)
                gateway_runs.append(
                    asyncio.run(
                        load(gateway_url, auth, "gateway", args.requests, args.concurrency, offset + args.requests)
                    )
                )
                cpu_concurrent += cpu_seconds(gateway.pid) - cpu_start
            rss_after = rss_kib(gateway.pid)
            serial_direct = asyncio.run(load(upstream, {}, "direct", args.serial, 1, 30_000_000))
            cpu_start = cpu_seconds(gateway.pid)
            serial_gateway = asyncio.run(load(gateway_url, auth, "gateway", args.serial, 1, 40_000_000))
            cpu_serial = cpu_seconds(gateway.pid) - cpu_start
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
    added50, added99 = report_pair(
        direct_runs,
        gateway_runs,
        f"{args.rounds} x {args.requests} requests at {args.concurrency} concurrent, alternating direct / gateway",
    )
    report_pair([serial_direct], [serial_gateway], f"{args.serial} requests one at a time (per-request cost)")
    print(
        f"gateway CPU per request: {cpu_concurrent / (args.rounds * args.requests) * 1000:.2f} ms at "
        f"{args.concurrency} concurrent, {cpu_serial / args.serial * 1000:.2f} ms one at a time "
        "(process user+system time; the part of its latency the gateway itself spends)"
    )
    if refusals:
        print(f"gateway audit log, requests not answered 200 in full: {dict(refusals)}")
    lost = sum(r.failed + r.misrouted for r in direct_runs + gateway_runs)
    print(
        f"\ngateway RSS: {rss_before / 1024:.1f} MiB after warm-up, {rss_after / 1024:.1f} MiB after "
        f"{args.rounds * args.requests} requests (growth {(rss_after - rss_before) / 1024:+.1f} MiB)"
    )
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
