"""Race the embedded fleet with non-streamed and streamed answers: what stopping the losers buys, and what it costs.

llama-cpp-python keeps generating a non-streamed answer whose client went away, to the end; a streamed one stops at
its next token. In a race the loser is cancelled as soon as the winner answers, so without streaming its server is
still busy with a dead answer when the next call arrives. Streaming frees it, but the server then reports no token
counts and no timings (the provider asks ``/extras/tokenize/count`` for the prompt's count; the output count stays
unmeasured).

Set-up: two real llama.cpp servers (``start_local_fleet(2)``, one thread each) serving the bundled model, and the
real ``Dispatcher`` with strategy race. Twelve RAG questions (the ``gen-*`` cases of suites/nightly.yaml), each with
the top three chunk-sized sections of the corpus by a small IDF-weighted word overlap, built into completion-style
prompts as the nightly suite does (``context_tokens=600``, ``max_tokens=64``, temperature 0, seed 7).

Each mode (``stream: false``, then ``stream: true``) runs the twelve calls one after another, then two at a time.
Before each phase both servers are drained (one 1-token request each, awaited), so a phase never pays for the
previous one's leftovers; the drain after a phase is reported as ``tail s`` (how long a server stayed busy with
cancelled work after the last answer).

Figures per phase: p50/p95 latency per call, total wall time, tail, which host won, and how many answers recorded
input tokens, output tokens, server timings and a time to first token; finally whether the two modes gave the same
answers (greedy decoding: they should).

With ``--long`` each mode also races the same prompts without stop sequences, so every answer runs to 160
tokens (rows marked ``L``): the case of chat models and run-on answers, where a loser has more left to generate.

``--strategy hedge`` sends the second request only after the hedge delay, so the two servers are out of step and a
cancelled request has more left to do.

Run: ``python bench/race_streaming.py [--cases 12] [--threads 1] [--order ns|sn] [--long] [--strategy race|hedge]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from harness.config.fleet import Fleet, Strategy, load_fleet
from harness.dispatch import Dispatcher
from harness.localfleet.prompt import Passage, build_request
from harness.localfleet.servers import start_local_fleet
from harness.providers.base import provider_for
from harness.providers.types import Generation, GenerationRequest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpora" / "restoration"
SUITE = ROOT / "suites" / "nightly.yaml"
SECTION_CHARS = 1200  # the nightly suite's chunk size
TOP_SECTIONS = 3  # its context_chunks
LONG_TOKENS = 160

_WORD = re.compile(r"[a-z0-9][a-z0-9.,%$-]*[a-z0-9%]|[a-z0-9]")
_STOP = frozenset({
    "a", "an", "and", "are", "at", "be", "by", "can", "do", "does", "for", "from", "how", "in", "is", "it", "of",
    "on", "or", "the", "to", "was", "what", "when", "where", "which", "who", "with", "under", "must", "per", "this",
    "that", "there", "their", "they",
})


# --------------------------------------------------------------------------------------------------------------------
# Cases: nightly questions with their context, read straight from the corpus files


@dataclass(frozen=True)
class Section:
    doc_id: str
    heading: str
    text: str

    def passage(self) -> Passage:
        return Passage(self.text, f"{self.doc_id} ({self.heading})" if self.heading else self.doc_id)


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _sections(path: Path) -> list[Section]:
    """A document cut at its headings, long sections packed paragraph by paragraph into <= SECTION_CHARS."""
    raw = path.read_text(encoding="utf-8")
    doc_id = path.stem
    if raw.startswith("---"):
        front, body = raw.split("---", 2)[1:]
        found = re.search(r"^id:\s*(\S+)", front, re.MULTILINE)
        doc_id = found.group(1) if found else doc_id
    else:
        body = raw
    sections: list[Section] = []
    heading, paragraphs = "", []

    def flush() -> None:
        chunk = ""
        for paragraph in paragraphs:
            if chunk and len(chunk) + len(paragraph) + 2 > SECTION_CHARS:
                sections.append(Section(doc_id, heading, chunk))
                chunk = ""
            chunk = f"{chunk}\n\n{paragraph}" if chunk else paragraph[:SECTION_CHARS]
        if chunk:
            sections.append(Section(doc_id, heading, chunk))

    for block in re.split(r"\n\s*\n", body):
        block = block.strip()
        if not block:
            continue
        if block.startswith("#"):
            flush()
            first, _, rest = block.partition("\n")
            heading, paragraphs = first.lstrip("#").strip(), [rest.strip()] if rest.strip() else []
        else:
            paragraphs.append(block)
    flush()
    return sections


def load_cases(limit: int) -> list[tuple[str, str, list[Passage]]]:
    """(case id, question, top sections) for the nightly generation cases."""
    cases = [c for c in yaml.safe_load(SUITE.read_text())["cases"] if str(c["id"]).startswith("gen-")][:limit]
    sections = [s for path in sorted(CORPUS.rglob("*.md")) for s in _sections(path)]
    section_terms = [_terms(f"{s.heading} {s.text}") for s in sections]
    df = Counter(term for terms in section_terms for term in terms)
    idf = {term: math.log(len(sections) / count) for term, count in df.items()}
    out = []
    for case in cases:
        wanted = _terms(case["question"])
        scores = [sum(idf[t] for t in wanted & terms) for terms in section_terms]
        ranked = sorted(range(len(sections)), key=lambda i: -scores[i])[:TOP_SECTIONS]
        out.append((case["id"], case["question"], [sections[i].passage() for i in ranked]))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Phases


@dataclass
class Phase:
    stream: bool
    concurrency: int
    long: bool = False  # answers run to LONG_TOKENS (no stop sequences)
    latencies: list[float] = field(default_factory=list)
    generations: dict[str, Generation] = field(default_factory=dict)
    wall_s: float = 0.0
    tail_s: float = 0.0
    cpu_s: float = 0.0
    failures: int = 0


def with_stream(fleet: Fleet, stream: bool) -> Fleet:
    return fleet.model_copy(update={"hosts": [h.model_copy(update={"stream": stream}) for h in fleet.hosts]})


async def drain(fleet: Fleet) -> float:
    """Seconds until every server has answered a 1-token request, i.e. has finished whatever it was doing."""
    started = time.perf_counter()
    providers = [provider_for(host.model_copy(update={"stream": False})) for host in fleet.hosts]
    try:
        request = GenerationRequest(prompt="Roof", max_tokens=1, temperature=0.0)
        await asyncio.gather(*(p.generate(request) for p in providers))
    finally:
        for provider in providers:
            await provider.aclose()
    return time.perf_counter() - started


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (/proc/<pid>/stat fields 14 and 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def run_phase(fleet: Fleet, requests: list[tuple[str, GenerationRequest]], phase: Phase,
                    pids: list[int], strategy: Strategy) -> None:
    gate = asyncio.Semaphore(phase.concurrency)
    cpu_before = cpu_seconds(pids)
    async with Dispatcher(with_stream(fleet, phase.stream)) as dispatcher:

        async def one(case_id: str, request: GenerationRequest) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    generation = await dispatcher.generate(request, strategy=strategy)
                except Exception as exc:  # a bench reports failures, it does not stop at the first
                    phase.failures += 1
                    print(f"  {case_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    return
                phase.latencies.append(time.perf_counter() - started)
                phase.generations[case_id] = generation

        started = time.perf_counter()
        await asyncio.gather(*(one(case_id, request) for case_id, request in requests))
        phase.wall_s = time.perf_counter() - started
    phase.tail_s = await drain(fleet)
    phase.cpu_s = cpu_seconds(pids) - cpu_before


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)  # linear interpolation, like numpy's default
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def report(phases: list[Phase]) -> None:
    print()
    header = (f"{'mode':<12} {'conc':>4} {'calls':>5} {'p50 s':>7} {'p95 s':>7} {'mean s':>7} {'wall s':>7} "
              f"{'tail s':>7} {'cpu s':>6} {'in tok':>6} {'out tok':>7} {'timings':>7} {'ttft':>5} {'wins':<22}")
    print(header)
    print("-" * len(header))
    for phase in phases:
        gens = list(phase.generations.values())
        n = len(gens)
        wins = Counter(g.host for g in gens)
        print(
            f"{('stream' if phase.stream else 'no-stream') + (' L' if phase.long else ''):<12} "
            f"{phase.concurrency:>4} {n:>5} "
            f"{quantile(phase.latencies, 0.5):>7.2f} {quantile(phase.latencies, 0.95):>7.2f} "
            f"{statistics.fmean(phase.latencies) if phase.latencies else math.nan:>7.2f} {phase.wall_s:>7.1f} "
            f"{phase.tail_s:>7.2f} {phase.cpu_s:>6.1f} "
            f"{sum(g.usage.input_tokens is not None for g in gens):>3}/{n:<2} "
            f"{sum(g.usage.output_tokens is not None for g in gens):>4}/{n:<2} "
            f"{sum(g.timing.total_s is not None for g in gens):>4}/{n:<2} "
            f"{sum(g.timing.time_to_first_token_s is not None for g in gens):>2}/{n:<2} "
            f"{', '.join(f'{h} {c}' for h, c in sorted(wins.items())):<22}"
            + (f"  failures {phase.failures}" if phase.failures else "")
        )
    by_mode: dict[bool, dict[str, str]] = {}
    for phase in phases:
        if phase.concurrency == 1 and not phase.long:
            by_mode[phase.stream] = {k: g.text for k, g in phase.generations.items()}
    if len(by_mode) == 2:
        common = by_mode[False].keys() & by_mode[True].keys()
        same = sum(by_mode[False][k] == by_mode[True][k] for k in common)
        print(f"\nsame answer streamed and not (sequential phases): {same}/{len(common)}")
    ttfts = [g.timing.time_to_first_token_s for p in phases for g in p.generations.values()
             if g.timing.time_to_first_token_s is not None]
    if ttfts:
        print(f"time to first token (streamed): p50 {quantile(ttfts, 0.5):.2f} s, p95 {quantile(ttfts, 0.95):.2f} s")
    inputs = [g.usage.input_tokens for p in phases for g in p.generations.values() if g.usage.input_tokens]
    if inputs:
        print(f"prompt tokens: min {min(inputs)}, median {statistics.median(inputs):.0f}, max {max(inputs)}")


async def count_cost(fleet: Fleet, request: GenerationRequest, repeats: int = 10) -> float:
    """Median seconds of one /extras/tokenize/count request for a real prompt (the streamed path's extra step)."""
    provider = provider_for(fleet.hosts[0])
    prompt = (request.system + "\n\n" if request.system else "") + request.prompt
    try:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            count = await provider.count_prompt_tokens(prompt)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - started)
            if count is None:
                return math.nan
    finally:
        await provider.aclose()
    return statistics.median(times)


async def main_async(args: argparse.Namespace, fleet_path: Path, pids: list[int]) -> None:
    fleet = load_fleet(fleet_path)
    cases = load_cases(args.cases)
    requests = [(case_id, build_request(question, passages, style="completion", context_tokens=600, max_tokens=64,
                                        temperature=0.0, seed=7))
                for case_id, question, passages in cases]
    # Run-on answers: what a loser left running costs when answers are long (chat models, missing stop sequences).
    long_requests = [(case_id, replace(request, stop=(), max_tokens=LONG_TOKENS)) for case_id, request in requests]
    print(f"strategy {args.strategy}, {len(requests)} cases; warming both servers (the few-shot header enters their "
          "prompt cache)")
    warm = build_request("What is the deductible?", [], style="completion", max_tokens=1)
    for host in fleet.hosts:
        provider = provider_for(host)
        try:
            await provider.generate(warm)
        finally:
            await provider.aclose()
    print(f"/extras/tokenize/count for one prompt: {1000 * await count_cost(fleet, requests[0][1]):.1f} ms (median)")
    modes = [False, True] if args.order == "ns" else [True, False]
    phases = []
    for stream in modes:
        for concurrency in (1, 2):
            phase = Phase(stream=stream, concurrency=concurrency)
            print(f"running stream={str(stream).lower()}, {concurrency} at a time ...", flush=True)
            await run_phase(fleet, requests, phase, pids, args.strategy)
            phases.append(phase)
        if args.long:
            phase = Phase(stream=stream, concurrency=1, long=True)
            print(f"running stream={str(stream).lower()}, {LONG_TOKENS}-token answers, 1 at a time ...", flush=True)
            await run_phase(fleet, long_requests, phase, pids, args.strategy)
            phases.append(phase)
    report(phases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--long", action="store_true",
                        help=f"also race {LONG_TOKENS}-token answers without stop sequences, one at a time")
    parser.add_argument("--strategy", choices=["race", "hedge"], default="race",
                        help="hedge: the second host gets the call only after the hedge delay (fleet file policy)")
    parser.add_argument("--order", choices=["ns", "sn"], default="ns", help="non-streamed first (ns) or streamed first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="race-streaming-") as state_dir:
        started = time.perf_counter()
        fleet = start_local_fleet(2, state_dir=Path(state_dir), threads=args.threads)
        try:
            print(f"2 servers up in {time.perf_counter() - started:.1f} s: {', '.join(fleet.urls)}")
            asyncio.run(main_async(args, fleet.fleet_path, fleet.pids))
        finally:
            fleet.stop()


if __name__ == "__main__":
    main()
