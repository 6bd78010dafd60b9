"""Diagnose the graded answers' claims after grading (``grading.diagnose: true``), appending to ``claims.jsonl``.

Which answers: every graded (case, variant, tier) without a claims entry yet, so a resumed run diagnoses exactly
what is left. The passages are those the answer's prompt carried (``generations[tier].context``; the grader's
passages stand in for a record that did not store it), in prompt order, shuffled across cases by ``grading.seed``
like grades. Calls are direct, ``grading.concurrency`` at a time, on the grading budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from harness.grading.claims import ClaimsDiagnoser, claims_input
from harness.grading.sampling import shuffled
from harness.store.claims_log import ClaimsEntry, append_claims, read_claims
from harness.store.records import CaseRecord
from harness.store.store import RunStore

ContextOf = Callable[[CaseRecord], Sequence[str]]


async def diagnose_pending(
    diagnoser: ClaimsDiagnoser, store: RunStore, context_of: ContextOf, *, seed: int = 0, concurrency: int = 4
) -> int:
    """Diagnose every graded answer that has no claims entry; returns how many were diagnosed now."""
    done = read_claims(store.path)
    todo: list[tuple[CaseRecord, str]] = []
    for record in store.records():
        for tier, generation in record.generations.items():
            key = (record.case_id, record.variant, tier)
            if generation.grade.status == "graded" and generation.text is not None and key not in done:
                todo.append((record, tier))
    todo = shuffled(sorted(todo, key=lambda item: (item[0].case_id, item[0].variant, item[1])), seed)
    semaphore = asyncio.Semaphore(concurrency)
    lock = asyncio.Lock()

    async def one(record: CaseRecord, tier: str) -> None:
        generation = record.generations[tier]
        texts = list(context_of(record))
        ids = list(generation.context) if generation.context is not None else list(record.retrieval.chunks)
        count = min(len(texts), len(ids))
        item = claims_input(record.question, record.reference or "", texts[:count], ids[:count],
                            generation.text or "")  # fmt: skip
        async with semaphore:
            claims = await diagnoser.diagnose(item)
        async with lock:
            await asyncio.to_thread(append_claims, store.path, [ClaimsEntry(
                case_id=record.case_id, variant=record.variant, tier=tier, claims=claims)])

    await asyncio.gather(*(one(record, tier) for record, tier in todo))
    return len(todo)
