"""One case × variant, whole: the question and reference, the passages the generator was given, every tier's answer
with how it was served, its grade and the people's labels of it.

The run store keeps the ids of the chunks fed to the generator (the first ``context_chunks`` of the retrieved
chunks) and the scored document ranking, not the passages' text; a passage is shown by its chunk and document id,
its rank, its document's score and the document's relevance grade from the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.config.criteria import CRITERIA
from harness.store.labels import LabelRecord
from harness.store.loaded import RunView
from harness.store.records import CaseRecord, GenerationRecord
from harness.view.catalog import NotFound


@dataclass(frozen=True)
class Passage:
    rank: int
    chunk_id: str
    doc_id: str
    doc_rank: int | None
    score: float | None
    relevance: int


@dataclass(frozen=True)
class TierAnswer:
    tier: str
    generation: GenerationRecord
    labels: list[LabelRecord]
    criteria: list[tuple[str, int | None]]


@dataclass(frozen=True)
class CaseDetail:
    record: CaseRecord
    passages: list[Passage]
    context_chunks: int | None
    ranking: list[tuple[int, str, float, int]]  # rank, doc id, score, relevance grade
    answers: list[TierAnswer]


def find_record(view: RunView, case_id: str, variant: str) -> CaseRecord:
    for record in view.records:
        if record.case_id == case_id and record.variant == variant:
            return record
    raise NotFound(f"run {view.run_id} has no case {case_id!r} in variant {variant!r}",
                     hint="open a case from the cases page")


def context_chunks(view: RunView) -> int | None:
    """How many of the retrieved chunks the prompt was built from (the suite's ``generation.context_chunks``)."""
    generation: Any = (view.suite.config or {}).get("generation")
    value = generation.get("context_chunks") if isinstance(generation, dict) else None
    return value if isinstance(value, int) else None


def tier_order(view: RunView) -> list[str]:
    """The suite's ladder order (``generation.tiers``); the store's files list tiers alphabetically."""
    generation: Any = (view.suite.config or {}).get("generation")
    tiers = generation.get("tiers") if isinstance(generation, dict) else None
    if not isinstance(tiers, list):
        return list(view.manifest.tiers)
    return [str(tier.get("name")) if isinstance(tier, dict) else str(tier) for tier in tiers]


def in_tier_order(tiers: list[str], order: list[str]) -> list[str]:
    return sorted(tiers, key=lambda tier: (order.index(tier) if tier in order else len(order), tier))


def case_detail(view: RunView, record: CaseRecord, labels: list[LabelRecord]) -> CaseDetail:
    scores = dict(record.retrieval.ranked)
    doc_ranks = {doc: rank for rank, (doc, _) in enumerate(record.retrieval.ranked, start=1)}
    given = context_chunks(view)
    chunks = record.retrieval.chunks if given is None else record.retrieval.chunks[:given]
    passages = []
    for rank, chunk_id in enumerate(chunks if record.generations else [], start=1):
        doc = chunk_id.rsplit("#", 1)[0]  # chunk ids are "<doc id>#<n>" (harness.corpus.chunking)
        passages.append(Passage(rank, chunk_id, doc, doc_ranks.get(doc), scores.get(doc), record.relevant.get(doc, 0)))
    ranking = [(rank, doc, score, record.relevant.get(doc, 0))
               for rank, (doc, score) in enumerate(record.retrieval.ranked, start=1)]
    answers = []
    for tier in in_tier_order(list(record.generations), tier_order(view)):
        generation = record.generations[tier]
        mine = [label for label in labels if label.key == (record.case_id, record.variant, tier)]
        given_scores = generation.grade.scores or {}
        answers.append(TierAnswer(tier, generation, mine, [(name, given_scores.get(name)) for name in CRITERIA]))
    return CaseDetail(record, passages, given, ranking, answers)
