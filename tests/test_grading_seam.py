"""The grading seam: which cases are sampled, and what the runner records for graded and ungraded cases."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.config.suite import Case, GenerationConfig, Suite, Variant
from harness.grading.base import Grade, sampled
from harness.providers.types import Generation, GenerationRequest
from harness.run.runner import RunParts, run_suite
from harness.run.store import RunStore


def test_sample_is_stable_and_close_to_the_rate() -> None:
    ids = [f"case-{i}" for i in range(4000)]
    first = [sampled(i, "estimate", 0.2) for i in ids]
    assert first == [sampled(i, "estimate", 0.2) for i in ids]
    assert 0.17 < sum(first) / len(ids) < 0.23
    assert all(sampled(i, "estimate", 1.0) for i in ids[:50])
    assert first != [sampled(i, "estimate", 0.2, seed=1) for i in ids]


@dataclass
class Hit:
    chunk_id: str
    doc_id: str
    score: float
    text: str


class FixedRetriever:
    name = "fixed"

    def search(self, query: str, k: int) -> Sequence[Hit]:
        return [Hit("doc-a#0", "doc-a", 0.9, "Ice barrier: 36 inches inside the wall line.")]


class EchoTier:
    name = "local"

    async def answer(self, request: GenerationRequest) -> Generation:
        return Generation(text="36 inches", host="h", model="m", tier="local", latency_s=0.01)

    async def aclose(self) -> None:
        pass


class KeywordGrader:
    """Scores 1 when the reference's first word is in the answer; records what it was shown."""

    name = "keyword"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def grade(self, question: str, reference: str, answer: str, context: Sequence[str]) -> Grade:
        self.seen.append((question, answer))
        return Grade("graded", score=float(reference.split()[0] in answer), grader=self.name)


def test_runner_grades_sampled_cases_and_records_the_rest_as_unmeasured(tmp_path: Path) -> None:
    cases = [Case(id=f"q{i}", question=f"question {i}", reference="36 inches", relevant={"doc-a": 3},
                  category="code-section", generate=True) for i in range(12)]
    suite = Suite(name="s", cases=cases, variants=[Variant(name="dense")], generation=GenerationConfig(),
                  metrics=["hit@5"])
    grader = KeywordGrader()
    parts = RunParts(suite=suite, retrievers={"dense": FixedRetriever()}, tiers=[EchoTier()],
                     build_prompt=lambda q, hits, tier: GenerationRequest(prompt=q), grader=grader, grading_rate=0.5)
    store = RunStore.create(tmp_path / "run")
    asyncio.run(run_suite(parts, store))
    rows = list(store.records())
    graded = [r for r in rows if r.generations["local"].grade.status == "graded"]
    expected = [c.id for c in cases if sampled(c.id, c.category, 0.5)]
    assert sorted(r.case_id for r in graded) == sorted(expected) and 0 < len(expected) < 12
    assert all(r.generations["local"].grade.score == 1.0 for r in graded)
    assert all(r.generations["local"].grade.grader_model == "keyword" for r in graded)
    assert len(grader.seen) == len(expected)
    for row in rows:
        grade = row.generations["local"].grade
        if grade.status != "graded":
            assert (grade.status, grade.reason, grade.score) == ("unmeasured", "not in the 50% grading sample", None)
