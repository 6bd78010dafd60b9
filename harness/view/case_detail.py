"""One case × variant, whole: the question and reference, the passages the generator was given (with their text when
the run's suite and corpus are at hand), every tier's answer with how it was served, its grade, the second judges'
grades of it, its claim verdicts and the people's labels of it.

The run store keeps the ids of the chunks fed to the generator (the first ``context_chunks`` of the retrieved
chunks) and the scored document ranking, not the passages' text. A passage is shown by its chunk and document id,
its rank, its document's score and the document's relevance grade from the suite; its text is rebuilt from the
corpus by :mod:`harness.grading.passages`, as the terminal labeller does, with a warning when the corpus has changed
since the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.config.criteria import CRITERIA
from harness.grading.passages import Passages
from harness.store.claims_log import ClaimsKey, ClaimsRecord
from harness.store.grade_log import GradeKey
from harness.store.labels import LabelRecord
from harness.store.loaded import RunView
from harness.store.records import CaseRecord, GenerationRecord, GradeRecord, Manifest
from harness.view.catalog import NotFound
from harness.view.ladder import context_chunks, in_tier_order, tier_order

VERDICT_MARKS = {"entailed": "✓", "contradicted": "✗", "neutral": "·"}


@dataclass(frozen=True)
class Passage:
    rank: int
    chunk_id: str
    doc_id: str
    doc_rank: int | None
    score: float | None
    relevance: int
    text: str | None = None  # None when the corpus is not at hand


@dataclass(frozen=True)
class TierAnswer:
    tier: str
    generation: GenerationRecord
    labels: list[LabelRecord]
    criteria: list[tuple[str, int | None]]
    claims: ClaimsRecord | None = None
    second_judges: list[tuple[str, GradeRecord]] = field(default_factory=list)  # (judge name, its grade)


@dataclass(frozen=True)
class CaseDetail:
    record: CaseRecord
    passages: list[Passage]
    context_chunks: int | None
    ranking: list[tuple[int, str, float, int]]  # rank, doc id, score, relevance grade
    answers: list[TierAnswer]
    passages_note: str | None = None  # why there is no passage text, or that the corpus changed since the run
    has_claims: bool = False


def find_record(view: RunView, case_id: str, variant: str) -> CaseRecord:
    for record in view.records:
        if record.case_id == case_id and record.variant == variant:
            return record
    raise NotFound(f"run {view.run_id} has no case {case_id!r} in variant {variant!r}",
                     hint="open a case from the cases page")


def _passage_texts(record: CaseRecord, passages: Passages | None) -> tuple[dict[str, str] | None, str | None]:
    if passages is None:
        return None, None
    if passages.reason is not None:
        return None, f"Passage text is not shown: {passages.reason}."
    return passages.by_variant.get(record.variant, {}), passages.warning


def case_detail(manifest: Manifest, record: CaseRecord, labels: list[LabelRecord],
                passages: Passages | None = None, claims: Mapping[ClaimsKey, ClaimsRecord] | None = None,
                second_judges: Mapping[str, Mapping[GradeKey, GradeRecord]] | None = None) -> CaseDetail:
    scores = dict(record.retrieval.ranked)
    doc_ranks = {doc: rank for rank, (doc, _) in enumerate(record.retrieval.ranked, start=1)}
    given = context_chunks(manifest)
    chunks = record.retrieval.chunks if given is None else record.retrieval.chunks[:given]
    texts, note = _passage_texts(record, passages)
    shown = []
    for rank, chunk_id in enumerate(chunks if record.generations else [], start=1):
        doc = chunk_id.rsplit("#", 1)[0]  # chunk ids are "<doc id>#<n>" (harness.corpus.chunking)
        text = None if texts is None else texts.get(chunk_id, f"(chunk {chunk_id} is no longer in the corpus)")
        shown.append(Passage(rank, chunk_id, doc, doc_ranks.get(doc), scores.get(doc), record.relevant.get(doc, 0),
                             text))
    ranking = [(rank, doc, score, record.relevant.get(doc, 0))
               for rank, (doc, score) in enumerate(record.retrieval.ranked, start=1)]
    answers = []
    claims = claims or {}
    for tier in in_tier_order(list(record.generations), tier_order(manifest)):
        generation = record.generations[tier]
        key = (record.case_id, record.variant, tier)
        mine = [label for label in labels if label.key == key]
        given_scores = generation.grade.scores or {}
        judged = [(judge, grades[key]) for judge, grades in (second_judges or {}).items() if key in grades]
        answers.append(TierAnswer(tier, generation, mine, [(name, given_scores.get(name)) for name in CRITERIA],
                                  claims.get(key), judged))
    return CaseDetail(record, shown, given, ranking, answers, note,
                      has_claims=any(answer.claims is not None for answer in answers))
