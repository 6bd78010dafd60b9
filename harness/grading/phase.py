"""The grading phase of a run: after the answers are logged, grade the sampled ones, directly or in one Batch.

Which answers: every (case, variant, tier) whose logged grade is still :data:`~harness.store.grade_log.PENDING` --
the runner marks the sampled cases' answers so when it logs them, and records every other answer as unmeasured with
its reason. So a resumed run grades exactly what is left, and the sample never changes.

Order: cases are shuffled per ``grading.seed`` (and the answers within a case too), so nothing about the order of
calls says which tier or variant an answer came from. The prompts themselves carry no tier, host or model.

Batches: the batch id and its custom ids are written to the run store before anything else happens; a run that
finds an open batch polls it instead of creating another. Results are matched by custom id; expired and errored
requests become ``grade_error``\\ s with their reasons; a reply that does not parse gets its one retry as a direct
call. A batch still pending at ``batch_timeout_s`` leaves its answers pending, for ``--resume``.

Second judges (``grading.judges`` after Claude) grade the same sample after Claude has: every answered (case,
variant, tier) of a sampled case that the judge has no logged grade for, in the same seeded order, with direct calls.
Their grades go to the same grade log under their own name, so a resumed run asks each judge only what it has not
graded, and Claude's grade on the case record is never replaced.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from harness.errors import BudgetExceeded, ProviderError
from harness.grading.grader import ClaudeGrader, Judge
from harness.grading.rubric import GradeInput, grade_inputs
from harness.grading.sampling import shuffled
from harness.grading.spend import Spend
from harness.money.budget import Reservation
from harness.providers.structured import BatchOutcome, BatchState, StructuredRequest
from harness.store.grade_log import (
    PENDING,
    GradeEntry,
    GradeKey,
    GradeWriter,
    OpenBatch,
    append_grades,
    close_batch,
    read_open_batch,
    read_second_judges,
    write_open_batch,
)
from harness.store.records import CaseRecord, GradeRecord
from harness.store.store import RunStore

ContextOf = Callable[[CaseRecord], Sequence[str]]
"""The passages an answer was written from (what the grader checks faithfulness against)."""


class BatchClient(Protocol):
    def params(self, request: StructuredRequest) -> dict[str, Any]: ...

    async def create_batch(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> str: ...

    async def batch_state(self, batch_id: str) -> BatchState: ...

    async def batch_results(self, batch_id: str) -> dict[str, BatchOutcome]: ...


@dataclass
class GradingPlan:
    """What the runner needs to mark and grade answers.

    Args:
        sample: the case ids to grade (the same for every tier and variant).
        describe: how the sample was drawn, for the unmeasured reason of the rest.
        grader: None when grading cannot run; ``reason`` says why.
        batch: grade through the Message Batches API.
    """

    sample: frozenset[str]
    describe: str
    seed: int = 0
    grader: ClaudeGrader | None = None
    reason: str = "no grader configured"
    batch: bool = False
    concurrency: int = 4
    poll_s: float = 30.0
    timeout_s: float = 24 * 3600.0
    sleep: Callable[[float], Any] = field(default=asyncio.sleep, repr=False)
    diagnoser: Any = None  # harness.grading.claims.ClaimsDiagnoser with grading.diagnose; None otherwise
    judges: list[Any] = field(default_factory=list)  # the second judges (harness.grading.second_judge.HttpJudge)

    def placeholder(self, case_id: str, answered: bool, tier: str, status: str) -> GradeRecord:
        """The grade an answer is logged with: pending when it will be graded, else unmeasured with why."""
        if not answered:
            return GradeRecord.unmeasured(f"no {tier} answer to grade ({status})")
        if self.grader is None:
            return GradeRecord.unmeasured(self.reason)
        if case_id not in self.sample:
            return GradeRecord.unmeasured(f"not in the grading sample ({self.describe})")
        return GradeRecord.unmeasured(PENDING)


@dataclass
class GradingOutcome:
    graded: int = 0
    errored: int = 0
    unmeasured: int = 0
    pending: int = 0
    batch_id: str | None = None
    note: str | None = None
    second: dict[str, GradingOutcome] = field(default_factory=dict)  # each second judge's, by name


@dataclass(frozen=True)
class _Item:
    key: GradeKey
    record: CaseRecord
    answer: str


def custom_id(key: GradeKey) -> str:
    """A Batch custom id (``^[a-zA-Z0-9_-]{1,64}$``) for a (case, variant, tier), stable across resumes."""
    return "g" + hashlib.sha256("|".join(key).encode()).hexdigest()[:40]


def pending_items(store: RunStore, seed: int) -> list[_Item]:
    """The answers still to grade, in the grading order (cases shuffled by seed, then answers within a case)."""
    by_case: dict[str, list[_Item]] = {}
    for record in store.records():
        for tier, generation in record.generations.items():
            grade = generation.grade
            if grade.status == "unmeasured" and grade.reason == PENDING and generation.text is not None:
                item = _Item((record.case_id, record.variant, tier), record, generation.text)
                by_case.setdefault(record.case_id, []).append(item)
    return _ordered(by_case, seed)


def second_judge_items(store: RunStore, sample: frozenset[str], seed: int, graded: Collection[GradeKey]) -> (
    list[_Item]
):
    """What a second judge has still to grade: every answer of a sampled case it has no logged grade for, in the
    same order as Claude's."""
    by_case: dict[str, list[_Item]] = {}
    for record in store.records():
        if record.case_id not in sample:
            continue
        for tier, generation in record.generations.items():
            key = (record.case_id, record.variant, tier)
            if generation.status == "ok" and generation.text is not None and key not in graded:
                by_case.setdefault(record.case_id, []).append(_Item(key, record, generation.text))
    return _ordered(by_case, seed)


def _ordered(by_case: dict[str, list[_Item]], seed: int) -> list[_Item]:
    ordered: list[_Item] = []
    for case_id in shuffled(sorted(by_case), seed):
        ordered.extend(shuffled(sorted(by_case[case_id], key=lambda i: i.key), seed))
    return ordered


async def grade_pending(plan: GradingPlan, store: RunStore, context_of: ContextOf, advance: Callable[[], None]) -> (
    GradingOutcome
):
    """Grade what is pending in ``store``; every grade is appended to the grade log as soon as it is known."""
    grader = plan.grader
    open_batch = read_open_batch(store.path)
    items = pending_items(store, plan.seed)
    if grader is None or (not items and open_batch is None):
        return GradingOutcome()
    phase = _Phase(plan, grader, plan.concurrency, store, context_of, advance)
    if plan.batch or open_batch is not None:
        await phase.grade_batch(items, open_batch)
    else:
        await phase.grade_direct(items)
    return phase.outcome


async def grade_second_judges(
    plan: GradingPlan,
    store: RunStore,
    context_of: ContextOf,
    start: Callable[[str, int], None],
    advance: Callable[[str], None],
) -> dict[str, GradingOutcome]:
    """Each second judge grades what it has not yet graded of the sample, one judge after another (one writer of the
    grade log at a time). ``start(name, total)`` and ``advance(name)`` report progress per judge."""
    graded = read_second_judges(store.path)
    outcomes: dict[str, GradingOutcome] = {}
    for judge in plan.judges:
        items = second_judge_items(store, plan.sample, plan.seed, graded.get(judge.name, {}).keys())
        start(judge.name, len(items))
        phase = _Phase(plan, judge, judge.concurrency, store, context_of, partial(advance, judge.name))
        await phase.grade_direct(items)
        phase.outcome.note = judge.stopped
        outcomes[judge.name] = phase.outcome
    return outcomes


def _count(outcome: GradingOutcome, grade: GradeRecord) -> None:
    if grade.status == "graded":
        outcome.graded += 1
    elif grade.status == "grade_error":
        outcome.errored += 1
    else:
        outcome.unmeasured += 1


@dataclass
class _Phase:
    """One grading phase of one judge: what its steps share (the plan, the judge and how many of its calls run at
    once, the run store, where an answer's context comes from, the progress callback) and the outcome they count
    into. Claude's phase grades directly or in a batch; a second judge's, directly."""

    plan: GradingPlan
    grader: Judge
    concurrency: int
    store: RunStore
    context_of: ContextOf
    advance: Callable[[], None]
    outcome: GradingOutcome = field(default_factory=GradingOutcome)

    def input(self, item: _Item) -> GradeInput:
        record = item.record
        return grade_inputs(record.question, record.reference or "", self.context_of(record), item.answer)

    def entry(self, key: GradeKey, grade: GradeRecord) -> GradeEntry:
        """A grade-log entry naming this phase's judge."""
        return GradeEntry(case_id=key[0], variant=key[1], tier=key[2], grade=grade, judge=self.grader.name)

    def counted(self, grade: GradeRecord) -> None:
        _count(self.outcome, grade)
        self.advance()

    async def grade_direct(self, items: list[_Item]) -> None:
        semaphore = asyncio.Semaphore(self.concurrency)
        writer = GradeWriter(self.store.path)

        async def one(item: _Item) -> None:
            async with semaphore:
                grade = await self.grader.grade(self.input(item))
            await writer.write(self.entry(item.key, grade))
            self.counted(grade)

        await asyncio.gather(*(one(item) for item in items))

    async def grade_batch(self, items: list[_Item], open_batch: OpenBatch | None) -> None:
        """Submit the pending answers as one batch (or pick up the run's open one), wait for it, log its grades."""
        grader = self.grader
        client: BatchClient = grader.client  # type: ignore[assignment]
        held: Reservation | None = None
        if open_batch is None:
            created = await self._create_batch(client, items)
            if created is None:
                return
            open_batch, held = created
        self.outcome.batch_id = open_batch.batch_id
        state = await _poll(self.plan, client, self.store, open_batch)
        if state != "ended":
            if held is not None:
                grader.budget.release(held)  # held again from the stored batch's real cost when it ends
            self.outcome.pending = len(open_batch.items)
            self.outcome.note = (
                f"grading batch {open_batch.batch_id} still {state} after {self.plan.timeout_s:g}s; "
                f"its {len(open_batch.items)} answers stay pending (continue with --resume)"
            )
            return
        try:
            results = await client.batch_results(open_batch.batch_id)
        except ProviderError:
            if held is not None:
                grader.budget.release(held)
            raise
        entries, total = await self._grades_of(open_batch, results, {item.key: item for item in items})
        # one write for the whole batch: until the batch is closed below, a restart reads its results again
        append_grades(self.store.path, entries)
        if held is not None:
            grader.budget.settle(held, total)
        else:
            grader.budget.spend(total)  # a batch from before a restart: billed whatever happens now
        close_batch(self.store.path)

    async def _grades_of(
        self, batch: OpenBatch, results: dict[str, BatchOutcome], by_key: dict[GradeKey, _Item]
    ) -> tuple[list[GradeEntry], float]:
        """Each batch item's grade (a reply that does not parse gets one direct retry), and what the batch cost."""
        grader, batch_id = self.grader, batch.batch_id
        total = 0.0
        entries: list[GradeEntry] = []
        for cid, key in batch.items.items():
            result = results.get(cid)
            spend = Spend()
            if result is None:
                grade = grader.error(f"no result for custom id {cid} in batch {batch_id}", spend, batch_id)
            elif result.reply is None:
                grade = grader.error(result.error or "batch request failed", spend, batch_id)
            else:
                cost = grader.price(result.reply, batch=True)
                total += cost or 0.0
                parsed = grader.finish(result.reply, spend, cost, batch_id)
                if isinstance(parsed, GradeRecord):
                    grade = parsed
                elif key in by_key:
                    grade = await _retry_direct(grader, self.input(by_key[key]), spend, parsed, batch_id)
                else:
                    grade = grader.error(f"bad grader output ({parsed}); no retry", spend, batch_id)
            entries.append(self.entry(key, grade))
            self.counted(grade)
        return entries, total

    async def _create_batch(self, client: BatchClient, items: list[_Item]) -> tuple[OpenBatch, Reservation] | None:
        """Pick the pending answers the budget can hold, submit them as one batch, store its id at once."""
        grader, store = self.grader, self.store
        if grader.stopped:
            return None
        chosen: list[tuple[_Item, StructuredRequest]] = []
        remaining = grader.budget.remaining_usd
        planned = 0.0
        for item in items:
            request = grader.request(self.input(item))
            cost = grader.projected_usd(request, batch=True)
            if remaining is not None and planned + cost > remaining:
                why = f"budget: {grader.budget.describe()} cannot hold this grade in the batch"
                grade = GradeRecord.unmeasured(why)
                append_grades(store.path, [self.entry(item.key, grade)])
                self.counted(grade)
                continue
            planned += cost
            chosen.append((item, request))
        if not chosen:
            return None
        held = grader.budget.reserve(planned, "grading batch")  # fits: chosen within what remains
        requests = [(custom_id(item.key), client.params(request)) for item, request in chosen]
        try:
            batch_id = await client.create_batch(requests)
        except ProviderError as exc:
            grader.budget.release(held)
            if exc.status in (402, 429) and not exc.retryable:
                grader.stopped = f"grader stopped after: {exc.message}"
            error = grader.error(f"grading batch not created: {exc.message}", Spend())
            grades = [self.entry(item.key, error) for item, _ in chosen]
            append_grades(store.path, grades)
            self.outcome.errored += len(grades)
            return None
        batch = OpenBatch(
            batch_id=batch_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            items={cid: item.key for cid, (item, _) in zip((r[0] for r in requests), chosen, strict=True)},
        )
        write_open_batch(store.path, batch)  # before anything else: a killed run must find it
        return batch, held


async def _poll(plan: GradingPlan, client: BatchClient, store: RunStore, batch: OpenBatch) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + plan.timeout_s
    while True:
        state = await client.batch_state(batch.batch_id)
        batch = batch.model_copy(update={"status": state.status, "polls": batch.polls + 1})
        write_open_batch(store.path, batch)
        if state.status == "ended" or loop.time() >= deadline:
            return state.status
        await plan.sleep(min(plan.poll_s, max(0.0, deadline - loop.time())))


async def _retry_direct(
    grader: Judge, item: GradeInput, spend: Spend, first: str, batch_id: str
) -> GradeRecord:
    """A batch reply that did not parse gets its one retry as a direct call."""
    if grader.stopped:
        return grader.error(f"bad grader output ({first}); no retry: {grader.stopped}", spend, batch_id)
    request = grader.request(item)
    try:
        held = grader.budget.reserve(grader.projected_usd(request, batch=False), "grade retry")
    except BudgetExceeded as exc:
        return grader.error(f"bad grader output ({first}); the retry was refused: {exc.message}", spend, batch_id)
    try:
        reply = await grader.client.structured(request)
    except ProviderError as exc:
        grader.budget.release(held)
        return grader.error(f"bad grader output ({first}); the retry failed: {exc.message}", spend, batch_id)
    cost = grader.price(reply, batch=False)
    grader.budget.settle(held, cost)
    outcome = grader.finish(reply, spend, cost, batch_id)
    if isinstance(outcome, GradeRecord):
        return outcome
    return grader.error(f"bad grader output twice: {first}; {outcome}", spend, batch_id)
