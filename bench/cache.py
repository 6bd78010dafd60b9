"""Response cache: a cached re-run of the nightly suite against the uncached run, in one process; and the storage
measured both ways (one SQLite file vs a sharded directory of one file per key).

The nightly suite runs for real (real Chroma, MiniLM, BM25, the runner, reports) against a local tier. By default
that tier is two loopback llama.cpp-protocol fakes answering after a lognormal delay (median ``--latency`` seconds,
about what the bundled 270M model takes on two cores), so the figure does not depend on the machine's load on the
model side; ``--fleet FILE`` uses a real fleet instead. The index (``--store``) is brought up to date before timing.

Printed: the uncached run (``--no-cache``), the run that fills the cache, the cached re-run, their ratio, model
calls made by each, and the cache's size on disk. Then the storage comparison: writes, reads and size for
``--entries`` answers.

Run: ``python bench/cache.py [--suite suites/nightly.yaml] [--fleet FILE] [--latency 0.5] [--entries 5000]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from harness.cli.main import app
from harness.fakes import FakeOpenAI, Reply
from harness.fakes.script import lognormal
from harness.providers.types import Generation, Usage
from harness.run.cache import DB_NAME, ResponseCache

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str]) -> float:
    started = time.perf_counter()
    result = app(args, standalone_mode=False)
    if result not in (None, 0):
        raise SystemExit(f"harness {' '.join(args)} exited {result}")
    return time.perf_counter() - started


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def nightly(suite: Path, fleet: Path | None, latency: float, work: Path, store: Path) -> None:
    os.chdir(work)
    fakes = []
    if fleet is None:
        fakes = [FakeOpenAI(script=Reply.ok("36 inches", latency=lognormal(latency, 0.4, seed=i))) for i in range(2)]
        for fake in fakes:
            fake.__enter__()
        hosts = "\n".join(
            f"  - {{name: h{i}, url: '{fake.url}', kind: openai, endpoint: completion, model: gemma3-270m}}"
            for i, fake in enumerate(fakes)
        )
        fleet = work / "fleet.yaml"
        fleet.write_text(f"strategy: race\ntimeout_s: 30\nhosts:\n{hosts}\n", encoding="utf-8")
    try:
        run(["ingest", str(suite), "--store", str(store)])
        base = ["run", str(suite), "--fleet", str(fleet), "--quiet", "--store", str(store)]
        calls = lambda: sum(fake.generations for fake in fakes)  # noqa: E731
        before = calls()
        uncached = run([*base, "--run-id", "uncached", "--no-cache"])
        uncached_calls = calls() - before
        before = calls()
        filling = run([*base, "--run-id", "filling"])
        filling_calls = calls() - before
        before = calls()
        cached = run([*base, "--run-id", "cached"])
        cached_calls = calls() - before
    finally:
        for fake in fakes:
            fake.__exit__(None, None, None)
    cache_file = work / ".harness" / "cache" / DB_NAME
    size = sum(p.stat().st_size for p in cache_file.parent.glob(DB_NAME + "*"))
    entries = len(ResponseCache.open(cache_file.parent))
    tier = f"two loopback fakes, median {latency:.2f} s" if fakes else str(fleet)

    def counted(n: int) -> str:
        return f"{n} model calls" if fakes else "model calls not counted on a real fleet"

    print(f"nightly suite {suite.name}, local tier: {tier}")
    print(f"  uncached run (--no-cache): {uncached:7.2f} s, {counted(uncached_calls)}")
    print(f"  run filling the cache:     {filling:7.2f} s, {counted(filling_calls)}")
    print(f"  cached re-run:             {cached:7.2f} s, {counted(cached_calls)}")
    print(f"  ratio uncached / cached:   {uncached / cached:7.2f}x")
    print(f"  cache on disk: {size / 1024:.1f} KiB for {entries} answers ({cache_file})")


def storage(entries: int, work: Path) -> None:
    generation = Generation(text="At least 36 inches inside the exterior wall line. " * 3, host="h0",
                            model="gemma3-270m", tier="local", latency_s=0.42, usage=Usage(512, 40))
    payload = json.dumps(asdict(generation), sort_keys=True)
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(entries)]

    sqlite_dir = work / "sqlite"
    cache = ResponseCache.open(sqlite_dir)
    started = time.perf_counter()
    for key in keys:
        cache.put(key, "local", generation)
    sqlite_write = time.perf_counter() - started
    started = time.perf_counter()
    for key in keys:
        assert cache.get(key) is not None
    sqlite_read = time.perf_counter() - started
    cache.close()
    sqlite_size = dir_size(sqlite_dir)

    sharded = work / "sharded"
    started = time.perf_counter()
    for key in keys:  # the usual layout: ab/cdef…json, written to a temp file and renamed (safe for concurrent writers)
        target = sharded / key[:2] / f"{key[2:]}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(payload)
        os.replace(tmp, target)
    dir_write = time.perf_counter() - started
    started = time.perf_counter()
    for key in keys:
        json.loads((sharded / key[:2] / f"{key[2:]}.json").read_text())
    dir_read = time.perf_counter() - started
    dir_bytes = dir_size(sharded)
    files = sum(1 for _ in sharded.rglob("*.json"))
    blocks = sum(f.stat().st_blocks * 512 for f in sharded.rglob("*") if f.is_file())

    print(f"storage, {entries} answers of {len(payload)} bytes:")
    print(f"  SQLite (WAL):        write {sqlite_write * 1e6 / entries:7.1f} µs/answer, read "
          f"{sqlite_read * 1e6 / entries:6.1f} µs/answer, {sqlite_size / 1024:8.1f} KiB in 1-3 files")
    print(f"  sharded directory:   write {dir_write * 1e6 / entries:7.1f} µs/answer, read "
          f"{dir_read * 1e6 / entries:6.1f} µs/answer, {dir_bytes / 1024:8.1f} KiB of data in {files} files "
          f"({blocks / 1024:.0f} KiB allocated)")
    print(f"  ratio directory / SQLite: write {dir_write / sqlite_write:.2f}x, read {dir_read / sqlite_read:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=ROOT / "suites" / "nightly.yaml")
    parser.add_argument("--fleet", type=Path, default=None)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--store", type=Path, default=ROOT / ".harness" / "index",
                        help="index directory (built once if missing; shared with `make nightly`)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        storage(args.entries, work)
        nightly(args.suite.resolve(), args.fleet.resolve() if args.fleet else None, args.latency, work,
                args.store.resolve())
    finally:
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
