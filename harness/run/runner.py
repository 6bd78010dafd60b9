"""Run a suite: retrieve every case for every variant, answer the generation cases on each tier, log as we go.

The runner receives ready-made parts (retrievers, tiers, prompt builder) so the same code serves the embedded fleet,
a real Ollama fleet, and the tests' loopback fakes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from harness.config.suite import Case, Suite
from harness.errors import BudgetExceeded, FleetUnavailable, HarnessError
from harness.grading.claims_phase import diagnose_pending
from harness.grading.phase import GradingOutcome, GradingPlan, grade_pending, grade_second_judges, pending_items
from harness.metrics.retrieval import evaluate
from harness.providers.types import GenerationRequest
from harness.retrieval.base import Retriever, ScoredChunk
from harness.run.doc_ranking import rank_documents
from harness.run.predict import Embed, record_predictors
from harness.run.tiers import AnswerTier, SkippedTier
from harness.store import records
from harness.store.records import CaseRecord, GenerationRecord, GradeRecord, RetrievalRecord
from harness.store.store import RunStore

PromptBuilder = Callable[[str, Sequence[ScoredChunk], str], GenerationRequest]
"""(question, context hits, tier name) -> request."""
PromptContext = Callable[[str, Sequence[ScoredChunk], str], list[str]]
"""(question, context hits, tier name) -> ids of the chunks the prompt carries (recorded with the answer)."""


class Retrieved(NamedTuple):
    """One (case, variant) retrieved: its record and the ranked chunks the prompt is built from."""

    case: Case
    variant: str
    record: RetrievalRecord
    hits: Sequence[ScoredChunk]


RetrieveAll = Callable[[Sequence[tuple[Case, str]]], AsyncIterator[Retrieved]]
"""Retrieves the pending (case, variant) pairs, yielding each as it finishes, in any order (the Ray executor)."""


class Progress(Protocol):
    def start(self, phase: str, total: int) -> None: ...

    def advance(self, phase: str) -> None: ...


class _SilentProgress:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str) -> None:
        pass


@dataclass
class RunParts:
    """Everything a run needs, built by the caller."""

    suite: Suite
    retrievers: dict[str, Retriever]
    tiers: list[AnswerTier] = field(default_factory=list)
    skipped_tiers: list[SkippedTier] = field(default_factory=list)
    build_prompt: PromptBuilder | None = None
    prompt_context: PromptContext | None = None  # None: the first generation.context_chunks hits
    grading: GradingPlan | None = None  # None: answers are logged as unmeasured, "no grader configured"
    concurrency: int = 4
    embed: Embed | None = None  # the suite's embedder, for the embedding-cosine predictor
    retrieve: RetrieveAll | None = None  # None: retrieve here, one pair at a time; else e.g. on a Ray cluster


@dataclass
class RunOutcome:
    written: int
    skipped_done: int
    generation_failures: int
    budget_exhausted: bool
    grading: GradingOutcome | None = None


async def run_suite(parts: RunParts, store: RunStore, progress: Progress | None = None) -> RunOutcome:
    """Process every (case, variant) not already in the store; append one record each."""
    progress = progress or _SilentProgress()
    suite = parts.suite
    done = store.completed()
    generating = {v.name for v in suite.generating_variants()}
    pending = [
        (case, variant.name)
        for case in suite.cases
        for variant in suite.variants
        if (case.id, variant.name) not in done
    ]

    progress.start("retrieval", len(pending))
    retrieved: list[tuple[Case, str, CaseRecord, Sequence[ScoredChunk]]] = []
    written = 0
    retrieve_all = parts.retrieve or _local_retrieval(parts)
    async for case, variant, retrieval, hits in retrieve_all(pending):
        record = records.case_record(case, variant, retrieval)
        if case.generate and variant in generating and (parts.tiers or parts.skipped_tiers):
            retrieved.append((case, variant, record, hits))
        else:
            store.append(record)
            written += 1
        progress.advance("retrieval")

    failures = 0
    budget_hit = False
    contexts: dict[tuple[str, str], list[str]] = {}
    if retrieved:
        progress.start("generation", len(retrieved))
        semaphore = asyncio.Semaphore(parts.concurrency)

        async def answer_one(case: Case, variant: str, record: CaseRecord, hits: Sequence[ScoredChunk]) -> None:
            nonlocal failures, written, budget_hit
            async with semaphore:
                generations = await _answer_on_tiers(parts, case, hits)
            await record_predictors(generations, case, hits, parts.embed)
            for tier_record in generations.values():
                failures += tier_record.status == "failed"
                budget_hit = budget_hit or tier_record.budget_exhausted
            _mark_grades(parts.grading, case, generations)
            contexts[(case.id, variant)] = _context(parts, hits)
            record.generations = generations
            store.append(record)
            written += 1
            progress.advance("generation")

        await asyncio.gather(*(answer_one(*item) for item in retrieved))
    grading = await _grade_phase(parts, store, contexts, progress)
    return RunOutcome(written, len(done), failures, budget_hit, grading)


def _local_retrieval(parts: RunParts) -> RetrieveAll:
    suite = parts.suite

    async def retrieve_all(pending: Sequence[tuple[Case, str]]) -> AsyncIterator[Retrieved]:
        for case, variant in pending:
            # In a worker thread, so a signal's cancellation is acted on within one search, not after the whole loop.
            retrieval, hits = await asyncio.to_thread(
                retrieve_case, parts.retrievers[variant], case, suite.k, suite.metrics)
            yield Retrieved(case, variant, retrieval, hits)

    return retrieve_all


def retrieve_case(
    retriever: Retriever, case: Case, k: int, metric_names: list[str]
) -> tuple[RetrievalRecord, Sequence[ScoredChunk]]:
    """Search for one case and score the ranking against its relevant documents."""
    started = time.perf_counter()
    documents = rank_documents(retriever, case.question, k)
    latency = time.perf_counter() - started
    ranked, hits = documents.ranked, documents.hits
    has_relevant = any(grade > 0 for grade in case.relevant.values())
    if has_relevant:
        frame = evaluate({case.id: case.relevant}, {case.id: dict(ranked)}, metric_names)
        row = frame.loc[case.id].to_dict()
        metrics: dict[str, float | None] = {name: float(row[name]) for name in metric_names}
    else:
        metrics = dict.fromkeys(metric_names)
    record = records.retrieval_record(
        ranked, [hit.chunk_id for hit in hits], metrics, latency, has_relevant,
        chunks_fetched=documents.chunks_fetched, exhausted=documents.exhausted,
    )
    return record, hits


async def _answer_on_tiers(parts: RunParts, case: Case, hits: Sequence[ScoredChunk]) -> dict[str, GenerationRecord]:
    answerable = any(grade > 0 for grade in case.relevant.values())
    out: dict[str, GenerationRecord] = {
        skipped.name: records.skipped_generation_record(skipped.name, skipped.reason) for skipped in parts.skipped_tiers
    }
    if parts.build_prompt is None:
        return out
    build_prompt = parts.build_prompt

    async def one(tier: AnswerTier) -> tuple[str, GenerationRecord]:
        request = build_prompt(case.question, hits, tier.name)
        try:
            generation = await tier.answer(request)
        except FleetUnavailable as exc:
            return tier.name, records.failed_generation_record(tier.name, exc.message, exc.reasons)
        except BudgetExceeded as exc:
            # the cap was reached: skipped with its reason, not a failed tier (the run still ends cleanly)
            skipped = records.skipped_generation_record(tier.name, f"budget: {exc.message}")
            skipped.budget_exhausted = True
            return tier.name, skipped
        except HarnessError as exc:
            return tier.name, records.failed_generation_record(tier.name, exc.message)
        context = _prompt_context(parts, case.question, hits, tier.name)
        return tier.name, records.generation_record(generation, case, answerable=answerable, context=context)

    results = await asyncio.gather(*(one(tier) for tier in parts.tiers))
    out.update(dict(results))
    return out


def _mark_grades(plan: GradingPlan | None, case: Case, generations: dict[str, GenerationRecord]) -> None:
    """The grade each answer is logged with: pending for the sample, else unmeasured with why (graded later)."""
    for tier, answer in generations.items():
        answered = answer.status == "ok" and answer.text is not None
        if plan is None:
            reason = f"no {tier} answer to grade ({answer.status})" if not answered else "no grader configured"
            answer.grade = GradeRecord.unmeasured(reason)
        else:
            answer.grade = plan.placeholder(case.id, answered, tier, answer.status)


def _prompt_context(parts: RunParts, question: str, hits: Sequence[ScoredChunk], tier: str) -> list[str]:
    if parts.prompt_context is not None:
        return parts.prompt_context(question, hits, tier)
    generation = parts.suite.generation
    count = generation.context_chunks if generation is not None else len(hits)
    return [hit.chunk_id for hit in hits[:count]]


def _context(parts: RunParts, hits: Sequence[ScoredChunk]) -> list[str]:
    """The passages the grader checks faithfulness against: those the prompt was built from, as a prompt with the
    suite's ``max_context_tokens`` shows them, so the grader sees what the answer could draw on (and the grading cost
    projected before the run bounds what it reads)."""
    generation = parts.suite.generation
    if generation is None:
        return [hit.text for hit in hits]
    from harness.localfleet.prompt import shown_texts

    return shown_texts(hits[: generation.context_chunks], generation.max_context_tokens)


async def _grade_phase(
    parts: RunParts, store: RunStore, contexts: dict[tuple[str, str], list[str]], progress: Progress
) -> GradingOutcome | None:
    """Grade the sampled answers still pending (this run's and, on resume, an earlier process's)."""
    plan = parts.grading
    if plan is None or (plan.grader is None and not plan.judges):
        return None

    def context_of(record: CaseRecord) -> list[str]:
        key = (record.case_id, record.variant)
        if key not in contexts:  # answered before a resume: retrieval is deterministic, so search again
            hits = parts.retrievers[record.variant].search(record.question, parts.suite.k * 3)
            contexts[key] = _context(parts, hits)
        return contexts[key]

    outcome = GradingOutcome()
    if plan.grader is not None:
        progress.start("grading", sum(1 for _ in pending_items(store, plan.seed)))
        outcome = await grade_pending(plan, store, context_of, lambda: progress.advance("grading"))
        if plan.diagnoser is not None:
            await diagnose_pending(plan.diagnoser, store, context_of, seed=plan.seed, concurrency=plan.concurrency)
    if plan.judges:
        try:
            outcome.second = await grade_second_judges(
                plan, store, context_of,
                lambda name, total: progress.start(f"judge {name}", total),
                lambda name: progress.advance(f"judge {name}"),
            )
        finally:
            for judge in plan.judges:
                await judge.aclose()
    return outcome
