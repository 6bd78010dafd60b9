"""Dollars and wall time of grading a 500-case suite: every case, the stratified sample, and the sample in a Batch.

Everything goes through the real code path: ``run_suite`` answers 500 generation cases on two scripted tiers, then
the grading phase sends each grade through the official ``anthropic`` SDK to the loopback ``FakeAnthropic``. The
fake's scripted token counts (words of the real rubric and prompt in, a scripted output length out, prompt-cache
writes and reads as the API reports them) are priced with the run's pricing table (``harness/money/pricing.yaml``), so
the dollars are what these token counts would cost at list price. Wall time depends on the scripted grader latency
(``--latency``, log-normal median) and, for Batches, on the scripted number of polls, so it shows the shape, not a
real API's speed.

Wall time is the grading phase only (from its start to the last grade logged, each grade flushed to disk as it
comes), not the answering before it. Baseline: grading every answer with direct calls. Printed: each option's
calls, tokens, dollars, wall time, and the ratio of its dollars to the baseline's.

Run: ``python bench/grading.py [--cases 500] [--rate 0.2] [--min-per-category 2] [--latency 0.05]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config.grading import GradingConfig
from harness.config.suite import Case, GenerationConfig, Suite, Variant
from harness.fakes import FakeAnthropic, Reply, lognormal
from harness.fakes.anthropic import grade_json
from harness.grading.grader import ClaudeGrader
from harness.grading.phase import GradingPlan
from harness.grading.sampling import stratified_sample
from harness.money.budget import Budget
from harness.providers.anthropic_grader import AnthropicGraderClient
from harness.providers.types import Generation, GenerationRequest, Tier
from harness.retrieval.base import ScoredChunk
from harness.run.runner import RunParts, run_suite
from harness.store.store import RunStore

MODEL = "claude-sonnet-4-6"
# Uneven categories, as real suites have: a few big ones and a long tail.
CATEGORY_WEIGHTS = {"estimate": 0.30, "code-section": 0.25, "supplement": 0.20, "jurisdiction": 0.10,
                    "water": 0.06, "mold": 0.04, "not-in-corpus": 0.03, "siding": 0.02}  # fmt: skip
CONTEXT = (
    "R905.1.2 Ice barriers. In Marlow County an ice barrier that consists of at least two layers of underlayment "
    "cemented together, or a self-adhering polymer-modified bitumen sheet, shall be used in lieu of normal "
    "underlayment and extend from the lowest edges of all roof surfaces to a point not less than 36 inches inside "
    "the exterior wall line of the building, and in every valley 18 inches each side of the centre line."
)


def suite(n_cases: int) -> Suite:
    cases: list[Case] = []
    for category, weight in CATEGORY_WEIGHTS.items():
        for i in range(max(1, round(weight * n_cases))):
            cases.append(Case(id=f"{category}-{i}", question=f"What does the code require for item {i} in "
                              f"{category}?", reference="At least 36 inches inside the exterior wall line.",
                              relevant={"doc-a": 3}, category=category, generate=True))  # fmt: skip
    return Suite(name="bench", cases=cases[:n_cases], variants=[Variant(name="dense")], metrics=["hit@5"],
                 generation=GenerationConfig(context_chunks=1))  # fmt: skip


class Retriever:
    name = "fixed"

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        return [ScoredChunk("doc-a#0", "doc-a", 0.9, 1, CONTEXT)]


class ScriptedTier:
    def __init__(self, name: Tier) -> None:
        self.name = name

    async def answer(self, request: GenerationRequest) -> Generation:
        text = "The ice barrier must reach at least 36 inches inside the exterior wall line, and 18 inches each side "
        return Generation(text=text + "of every valley.", host="h", model="m", tier=self.name, latency_s=0.0)

    async def aclose(self) -> None:
        pass


class PhaseClock:
    """A progress sink that notes when the grading phase starts, so answering time is not counted."""

    def __init__(self) -> None:
        self.grading_started: float | None = None

    def start(self, phase: str, total: int) -> None:
        if phase == "grading":
            self.grading_started = time.perf_counter()

    def advance(self, phase: str) -> None:
        pass


@dataclass
class Result:
    name: str
    grades: int
    calls: int
    input_tokens: int
    cache_read: int
    cache_write: int
    output_tokens: int
    usd: float
    wall_s: float


async def measure(name: str, s: Suite, fake: FakeAnthropic, config: GradingConfig, *, sample_all: bool,
                  batch: bool, poll_s: float) -> Result:  # fmt: skip
    client = AnthropicGraderClient(MODEL, api_key="bench-key", base_url=fake.url)
    cases = [(c.id, c.category) for c in s.cases]
    sample = frozenset(c for c, _ in cases) if sample_all else stratified_sample(
        cases, config.rate, config.min_per_category, config.seed)
    grader = ClaudeGrader(client, config, Budget(None, name="grading"))
    plan = GradingPlan(sample, "bench", seed=config.seed, grader=grader, batch=batch,
                       concurrency=config.concurrency, poll_s=poll_s)  # fmt: skip
    parts = RunParts(suite=s, retrievers={"dense": Retriever()}, tiers=[ScriptedTier("local"), ScriptedTier("cloud")],
                     build_prompt=lambda q, hits, tier: GenerationRequest(prompt=q), grading=plan)  # fmt: skip
    fake.reset_counters()
    fake.forget_cache()  # each option starts with a cold prompt cache
    clock = PhaseClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore.create(Path(tmp) / "run")
        await run_suite(parts, store, clock)
        assert clock.grading_started is not None
        wall = time.perf_counter() - clock.grading_started
        grades = [g.grade for r in store.records() for g in r.generations.values() if g.grade.status == "graded"]
    await client.aclose()
    return Result(
        name, len(grades), len(fake.requests) if not batch else len(fake.requests_to("/v1/messages/batches")),
        sum(g.input_tokens or 0 for g in grades), sum(g.cache_read_input_tokens or 0 for g in grades),
        sum(g.cache_creation_input_tokens or 0 for g in grades), sum(g.output_tokens or 0 for g in grades),
        sum(g.cost_usd or 0.0 for g in grades), wall,
    )  # fmt: skip


async def run(args: argparse.Namespace) -> list[Result]:
    s = suite(args.cases)
    config = GradingConfig(rate=args.rate, min_per_category=args.min_per_category, seed=1,
                           concurrency=args.concurrency)  # fmt: skip
    reply = Reply.ok(grade_json(2, 3, 2, rationale="Right on the 36 inches; the valley requirement is missing."),
                     latency=lognormal(args.latency, 0.5, seed=3), usage={"output_tokens": args.output_tokens})
    results = []
    async with FakeAnthropic(script=reply, batch_polls_to_end=3) as fake:
        results.append(await measure("every case, direct", s, fake, config, sample_all=True, batch=False, poll_s=0))
        results.append(await measure("stratified sample, direct", s, fake, config, sample_all=False, batch=False,
                                     poll_s=0))  # fmt: skip
        results.append(await measure("stratified sample, Batches", s, fake, config, sample_all=False, batch=True,
                                     poll_s=args.poll_s))  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--min-per-category", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="median scripted grader latency, seconds")
    parser.add_argument("--output-tokens", type=int, default=80, help="scripted grader output tokens per reply")
    parser.add_argument("--poll-s", type=float, default=0.2, help="seconds between batch polls (3 polls to end)")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    base = results[0]
    print(f"grading {args.cases} cases x 2 tiers with {MODEL}; rate {args.rate}, at least {args.min_per_category} "
          f"per category; scripted latency median {args.latency}s, {args.output_tokens} output tokens")  # fmt: skip
    print(f"{'option':30} {'grades':>7} {'requests':>8} {'input':>9} {'cache rd':>9} {'cache wr':>9} {'output':>8} "
          f"{'dollars':>10} {'wall s':>8} {'$ vs all':>9}")  # fmt: skip
    for r in results:
        print(f"{r.name:30} {r.grades:7d} {r.calls:8d} {r.input_tokens:9d} {r.cache_read:9d} {r.cache_write:9d} "
              f"{r.output_tokens:8d} {r.usd:10.4f} {r.wall_s:8.2f} {r.usd / base.usd:9.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
