"""Grading inside a run, through the real SDK against the loopback fake: the paired sample, blindness, the grading
order, resume, and Message Batches (several polls; a run killed while its batch is pending, then resumed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness.config.grading import GradingConfig
from harness.config.suite import Case, GenerationConfig, Suite, Variant
from harness.fakes import FakeAnthropic, RecordedRequest, Reply
from harness.fakes.anthropic import BATCH_ENTRY_PATH, grade_json
from harness.grading.grader import ClaudeGrader
from harness.grading.phase import GradingPlan
from harness.grading.sampling import stratified_sample
from harness.money.budget import Budget
from harness.providers.anthropic_grader import AnthropicGraderClient
from harness.providers.types import Generation, GenerationRequest, Tier
from harness.retrieval.base import ScoredChunk
from harness.run.runner import RunParts, run_suite
from harness.store.grade_log import BATCH, GRADES, PENDING, read_open_batch
from harness.store.store import RunStore

GRADER = "claude-sonnet-4-6"
HOSTS = {"local": ("gpu-a.internal", "gemma3-answerer-270m"), "cloud": ("api-host", "claude-answerer-x")}
CATEGORIES = {"estimate": 8, "code-section": 4, "mold": 2}
CASES = [
    Case(id=f"{cat}-{i}", question=f"Question {i} about {cat}?", reference=f"Reference {i} for {cat}.",
         relevant={"doc-a": 3}, category=cat, generate=True)
    for cat, size in CATEGORIES.items() for i in range(size)
]  # fmt: skip
SUITE = Suite(
    name="s",
    cases=CASES,
    variants=[Variant(name="dense"), Variant(name="hybrid", retriever="hybrid")],
    generation=GenerationConfig(context_chunks=1),
    metrics=["hit@5"],
)


class FixedRetriever:
    name = "fixed"

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        return [ScoredChunk("doc-a#0", "doc-a", 0.9, 1, "Ice barrier: 36 inches inside the wall line.")]


class EchoTier:
    """An answering tier whose answer names nothing about itself."""

    def __init__(self, name: Tier) -> None:
        self.name = name

    async def answer(self, request: GenerationRequest) -> Generation:
        host, model = HOSTS[self.name]
        return Generation(text=f"The answer is 36 inches ({len(request.prompt)}).", host=host, model=model,
                          tier=self.name, latency_s=0.01)  # fmt: skip

    async def aclose(self) -> None:
        pass


CLIENTS: list[AnthropicGraderClient] = []


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server
        while CLIENTS:
            await CLIENTS.pop().aclose()


def plan_for(fake: FakeAnthropic, config: GradingConfig, *, batch: bool = False, cap: float | None = None) -> (
    GradingPlan
):
    CLIENTS.append(AnthropicGraderClient(GRADER, api_key="test-key", base_url=fake.url))
    sample = stratified_sample(((c.id, c.category) for c in CASES), config.rate, config.min_per_category, config.seed)
    grader = ClaudeGrader(CLIENTS[-1], config, Budget(cap, name="grading"))
    return GradingPlan(sample, "test sample", seed=config.seed, grader=grader, batch=batch, poll_s=0.01,
                       concurrency=config.concurrency)  # fmt: skip


def parts(plan: GradingPlan | None) -> RunParts:
    return RunParts(
        suite=SUITE,
        retrievers={"dense": FixedRetriever(), "hybrid": FixedRetriever()},
        tiers=[EchoTier("local"), EchoTier("cloud")],
        build_prompt=lambda q, hits, tier: GenerationRequest(prompt=q),
        grading=plan,
    )


def grades(store: RunStore) -> dict[tuple[str, str, str], dict]:
    return {
        (r.case_id, r.variant, tier): g.grade.model_dump()
        for r in store.records()
        for tier, g in r.generations.items()
    }


def grader_questions(fake: FakeAnthropic, path: str = "/v1/messages") -> list[str]:
    out = []
    for request in fake.requests_to(path):
        content = request.body["messages"][0]["content"]
        out.append(content.split("<question>")[1].split("</question>")[0])
    return out


async def test_the_same_sampled_cases_are_graded_for_every_tier_and_variant(fake: FakeAnthropic, tmp_path: Path) -> (
    None
):
    config = GradingConfig(rate=0.25, min_per_category=1, seed=11)
    plan = plan_for(fake, config)
    store = RunStore.create(tmp_path / "run")
    outcome = await run_suite(parts(plan), store)
    assert outcome.grading is not None and outcome.grading.graded == len(plan.sample) * 4
    assert {len([c for c in plan.sample if c.startswith(cat)]) for cat in CATEGORIES} == {2, 1}  # 8*.25, 4*.25, min 1
    logged = grades(store)
    graded = {key for key, grade in logged.items() if grade["status"] == "graded"}
    assert graded == {(c, v, t) for c in plan.sample for v in ("dense", "hybrid") for t in ("local", "cloud")}
    for key, grade in logged.items():
        if key not in graded:
            assert grade["status"] == "unmeasured" and grade["reason"] == "not in the grading sample (test sample)"
            assert grade["score"] is None
    assert len(fake.requests_to("/v1/messages")) == len(graded)


async def test_the_grader_is_blind_and_the_order_is_shuffled_per_seed(fake: FakeAnthropic, tmp_path: Path) -> None:
    config = GradingConfig(rate=1.0, seed=5, concurrency=1)
    await run_suite(parts(plan_for(fake, config)), RunStore.create(tmp_path / "a"))
    requests = fake.requests_to("/v1/messages")
    assert len(requests) == len(CASES) * 4
    for request in requests:
        prompt = json.dumps([request.body["system"], request.body["messages"]]).lower()
        for word in ("local", "cloud", *HOSTS["local"], *HOSTS["cloud"]):
            assert word.lower() not in prompt, word
    first_order = grader_questions(fake)
    suite_order = [c.question for c in CASES for _ in range(4)]
    assert sorted(first_order) == sorted(suite_order) and first_order != suite_order
    fake.reset_counters()
    await run_suite(parts(plan_for(fake, config)), RunStore.create(tmp_path / "b"))
    assert grader_questions(fake) == first_order  # the same seed, the same order
    fake.reset_counters()
    other = GradingConfig(rate=1.0, seed=6, concurrency=1)
    await run_suite(parts(plan_for(fake, other)), RunStore.create(tmp_path / "c"))
    assert grader_questions(fake) != first_order


async def test_resume_grades_exactly_what_was_left(fake: FakeAnthropic, tmp_path: Path) -> None:
    config = GradingConfig(rate=0.5, min_per_category=1, seed=2, concurrency=1)
    fake.script = Reply.ok(grade_json(2, 2, 2), latency=0.05)
    store = RunStore.create(tmp_path / "run")
    task = asyncio.create_task(run_suite(parts(plan_for(fake, config)), store))
    while not (store.path / GRADES).exists() or len((store.path / GRADES).read_text().splitlines()) < 3:
        await asyncio.sleep(0.01)
    task.cancel()  # killed in the middle of grading
    with pytest.raises(asyncio.CancelledError):
        await task
    pending = [k for k, g in grades(store).items() if g["reason"] == PENDING]
    assert pending, "the kill should leave some answers pending"
    before = len(fake.requests_to("/v1/messages"))
    plan = plan_for(fake, config)
    await run_suite(parts(plan), RunStore.open(store.path))
    logged = [json.loads(line) for line in (store.path / GRADES).read_text().splitlines()]
    keys = [(e["case_id"], e["variant"], e["tier"]) for e in logged]
    final = grades(store)
    graded = {k for k, g in final.items() if g["status"] == "graded"}
    assert graded == {(c, v, t) for c in plan.sample for v in ("dense", "hybrid") for t in ("local", "cloud")}
    # at most the one grade that was in flight at the kill is graded twice; nothing else is repeated
    assert len(keys) - len(set(keys)) <= 1
    # the call in flight at the kill may reach the fake after it; otherwise exactly the pending ones are called
    assert len(pending) <= len(fake.requests_to("/v1/messages")) - before <= len(pending) + 1


def scripted_by_question(request: RecordedRequest) -> Reply:
    content = request.body["messages"][0]["content"]
    if "Question 0 about estimate" in content:
        return Reply.expired()
    if "Question 1 about estimate" in content:
        return Reply.error(500, "internal error while processing")
    if "Question 2 about estimate" in content and request.path == BATCH_ENTRY_PATH:
        return Reply.ok("{malformed")  # the direct retry of the same answer then succeeds
    return Reply.ok(grade_json(3, 2, 3))


async def test_a_batch_that_ends_after_several_polls_is_matched_by_custom_id(fake: FakeAnthropic, tmp_path: Path) -> (
    None
):
    fake.batch_polls_to_end = 4
    fake.script = scripted_by_question
    config = GradingConfig(rate=1.0, seed=3)
    plan = plan_for(fake, config, batch=True)
    store = RunStore.create(tmp_path / "run")
    outcome = await run_suite(parts(plan), store)
    assert len(fake.batches) == 1 and outcome.grading is not None
    batch = next(iter(fake.batches.values()))
    # four status polls until it ended, and the SDK's own look-up of the results URL
    assert batch.polls == 4 + 1 and outcome.grading.batch_id == batch.id
    assert not (store.path / BATCH).exists()  # closed once its results were read
    logged = grades(store)
    for (case_id, _, _), grade in logged.items():
        if case_id == "estimate-0":
            assert grade["status"] == "grade_error" and "expired" in grade["reason"]
        elif case_id == "estimate-1":
            assert grade["status"] == "grade_error" and "internal error while processing" in grade["reason"]
        else:
            assert grade["status"] == "graded" and grade["batch_id"] == batch.id
            assert grade["scores"] == {"correctness": 3, "faithfulness": 2, "completeness": 3}
    # the malformed batch replies were retried directly, one call per answer
    assert sorted(grader_questions(fake)) == ["Question 2 about estimate?"] * 4
    # batch replies are priced at half the standard rate
    batch_only = [g for (c, _, _), g in logged.items() if c not in ("estimate-0", "estimate-1", "estimate-2")]
    for grade in batch_only:
        full = (grade["input_tokens"] * 3 + grade["output_tokens"] * 15 + grade["cache_creation_input_tokens"] * 3.75
                + grade["cache_read_input_tokens"] * 0.30) / 1e6  # fmt: skip
        assert grade["cost_usd"] == pytest.approx(full / 2, rel=1e-9)


async def test_a_run_killed_while_its_batch_is_pending_resumes_by_polling_it(fake: FakeAnthropic, tmp_path: Path) -> (
    None
):
    fake.batch_polls_to_end = 10**9  # pending until the test says otherwise
    config = GradingConfig(rate=0.5, min_per_category=1, seed=9)
    store = RunStore.create(tmp_path / "run")
    task = asyncio.create_task(run_suite(parts(plan_for(fake, config, batch=True)), store))
    while not fake.batches or next(iter(fake.batches.values())).polls < 2:
        await asyncio.sleep(0.01)
    task.cancel()  # the process dies while the batch is pending
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = read_open_batch(store.path)
    batch = next(iter(fake.batches.values()))
    assert stored is not None and stored.batch_id == batch.id and len(stored.items) == len(batch.entries)
    assert all(g["reason"] == PENDING for k, g in grades(store).items() if k[0] in plan_for(fake, config).sample)

    fake.batch_polls_to_end = batch.polls + 3  # it will end a few polls after the restart
    outcome = await run_suite(parts(plan_for(fake, config, batch=True)), RunStore.open(store.path))
    assert len(fake.batches) == 1  # polled the stored batch; created no other
    assert outcome.grading is not None and outcome.grading.graded == len(batch.entries)
    graded = [g for g in grades(store).values() if g["status"] == "graded"]
    assert len(graded) == len(batch.entries) and {g["batch_id"] for g in graded} == {batch.id}
    assert read_open_batch(store.path) is None


async def test_no_grader_records_why_and_calls_nothing(tmp_path: Path) -> None:
    plan = GradingPlan(frozenset({"estimate-0"}), "test", reason="grader skipped: ANTHROPIC_API_KEY is not set")
    store = RunStore.create(tmp_path / "run")
    await run_suite(parts(plan), store)
    assert {g["reason"] for g in grades(store).values()} == {"grader skipped: ANTHROPIC_API_KEY is not set"}
