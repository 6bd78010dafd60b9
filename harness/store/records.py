"""The typed records of a run store, with a ``schema_version``, and pure builders from results to records.

The models are the contract between running and everything that reads a run (report, compare, history, gate):

- :class:`Manifest` (``manifest.json``): what ran, with which metrics, and how it ended;
- :class:`CaseRecord` (one line of ``cases.jsonl``): the case header, its :class:`RetrievalRecord` and, for
  generation cases, one :class:`GenerationRecord` per tier, each with its :class:`GradeRecord` (the grader returns
  this very record, so there is no second grade type). A generation's usage, server timing and attempts are the
  provider types themselves (:mod:`harness.providers.types`), validated as record fields: one definition each.

Version history (bump :data:`SCHEMA_VERSION` on any change a reader must know about, and teach
:mod:`harness.store.upgrade` to lift the old form):

- 1: plain dicts; one case-level ``grade`` with ``by_tier``; the manifest's ``version`` field.
- 2: these models; a grade per tier at ``generations[tier].grade``; the scored document ranking with its depth.
- 3: ``generations[tier].context``: the chunk ids the tier's prompt carried (after fitting the context budget), so
  an answer's failure can be put on retrieval or on generation (:mod:`harness.analysis.attribution`). Optional:
  a version-2 record reads as ``None`` (unknown), never as an empty context.
- 4: a generation's ``cache_entry`` (where a replayed answer came from: the run, time and model digest of the call
  that made it); the manifest's ``cache`` (the response-cache mode the run used) and each tier's ``replayed`` count in
  its verdict. An older record reads as one whose provenance was not kept.
- 5: a grade's cache tokens take the provider's names, ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens`` (were ``cache_read_tokens`` and ``cache_write_tokens``); a generation's usage,
  timing, attempts and cache entry are the provider's own types (:mod:`harness.providers.types`), not copies; the
  manifest's ``grader.second_judges``: the judges that graded the sample beside Claude, what they cost and how their
  grades ended (their grades are in ``grades.jsonl`` under their names). Optional: an older run had none. And a
  ladder of named tiers (``harness.config.tiers``): each manifest tier's ``kind`` (fleet or Claude model), its
  ``model``, and a named fleet tier's ``fleet``. An older manifest's tiers are the built-in ``local`` and ``cloud``,
  whose kind is their name (:meth:`TierInfo.kind_of`).

An unmeasured value is ``None`` with its reason next to it, never a zero.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.config.suite import CacheMode, Case
from harness.metrics import answer as answer_metrics
from harness.providers.types import Attempt, CacheEntry, Generation, ServerTiming, Usage

SCHEMA_VERSION = 5
NO_RELEVANT = "no relevant documents (answer is not in the corpus)"

GenerationStatus = Literal["ok", "failed", "skipped"]


class _Record(BaseModel):
    # Unknown fields are an error: a reader must never silently drop what a newer writer meant.
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------------ generations


GradeStatus = Literal["graded", "unmeasured", "grade_error"]


class GradeRecord(_Record):
    """The grader's verdict on one tier's answer (filled in by the grader; unmeasured with a reason otherwise).

    An unmeasured grade says why (not sampled, no key, budget); a grade_error says what went wrong. Neither carries a
    score, so a report can count them and never average a missing grade in as zero or NaN.
    """

    status: GradeStatus
    reason: str | None = None
    scores: dict[str, int] | None = Field(default=None, description="criterion -> ordinal value")
    score: float | None = Field(default=None, ge=0.0, le=1.0, description="overall, normalised to 0..1")
    confident_but_wrong: bool | None = None
    rationale: str | None = None
    grader_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cost_usd: float | None = None
    batch_id: str | None = None

    @classmethod
    def unmeasured(cls, reason: str) -> GradeRecord:
        return cls(status="unmeasured", reason=reason)


class GenerationRecord(_Record):
    """One tier's answer to one case: ok (with its answer metrics), failed (with why) or skipped (with why)."""

    status: GenerationStatus
    tier: str
    text: str | None = None
    host: str | None = None
    model: str | None = None
    latency_s: float | None = None
    # the provider's own types; the record's ``extra="forbid"`` reaches into them too
    usage: Usage = Field(default_factory=Usage)
    timing: ServerTiming = Field(default_factory=ServerTiming)
    attempts: list[Attempt] = Field(default_factory=list)
    cost_usd: float | None = None
    finish_reason: str | None = None
    answer_metrics: dict[str, float | None] = Field(default_factory=dict)
    fallback: bool = Field(default=False, description="a local call the cloud answered after every host failed")
    cached: bool = Field(default=False, description="the answer came from the response cache")
    cache_entry: CacheEntry | None = Field(
        default=None,
        description="a replay: the entry it was read from; a fresh answer: the entry it was stored as (null when the "
        "cache was off, the entry existed already, or the run predates schema 4)",
    )
    error: str | None = Field(default=None, description="why a failed call failed")
    host_reasons: dict[str, str] = Field(default_factory=dict, description="host -> why it failed")
    budget_exhausted: bool = False
    reason: str | None = Field(default=None, description="why a tier was skipped")
    context: list[str] | None = Field(
        default=None, description="ids of the chunks the prompt carried, in prompt order; null when not recorded"
    )
    grade: GradeRecord = Field(default_factory=lambda: GradeRecord.unmeasured("not graded"))


# ------------------------------------------------------------------------------------------------ retrieval


class RetrievalRecord(_Record):
    """The scored document ranking (a document's score is its best chunk's) and the metrics computed on it."""

    ranked: list[tuple[str, float]] = Field(description="(doc id, score), best first, as scored")
    chunks: list[str] = Field(default_factory=list, description="ids of the chunks fetched, best first")
    chunks_fetched: int | None = Field(default=None, description="chunks asked of the retriever to fill the ranking")
    exhausted: bool = Field(default=False, description="the retriever had no more chunks to give")
    metrics: dict[str, float | None]
    unmeasured_reason: str | None = None
    latency_s: float | None = None


class CaseRecord(_Record):
    """One case × variant: one line of ``cases.jsonl``."""

    schema_version: int = SCHEMA_VERSION
    case_id: str
    variant: str
    category: str
    tags: list[str] = Field(default_factory=list)
    question: str
    reference: str | None = None
    must_include: list[str] = Field(default_factory=list)
    relevant: dict[str, int] = Field(default_factory=dict)
    generate: bool = False
    retrieval: RetrievalRecord
    generations: dict[str, GenerationRecord] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.case_id, self.variant)

    @property
    def answerable(self) -> bool:
        return any(grade > 0 for grade in self.relevant.values())


# ------------------------------------------------------------------------------------------------ manifest


class SuiteInfo(_Record):
    name: str
    path: str
    sha256: str
    cases: int
    variants: list[str]
    metrics: list[str] = Field(description="the retrieval metrics this run computed")
    answer_metrics: list[str] = Field(default_factory=list, description="the answer metrics this run computed")
    k: int
    config: dict[str, Any] = Field(default_factory=dict)


class CorpusInfo(_Record):
    name: str
    documents: int
    fingerprint: str
    document_sha256: dict[str, str] = Field(
        default_factory=dict, description="doc id -> sha256 of its content, so a resume can name what changed"
    )


class TierInfo(_Record):
    """One tier the suite asked for (``harness.run.ladder``): run or skipped with why, its kind and what serves it."""

    status: Literal["run", "skipped"]
    reason: str | None = None
    kind: Literal["local", "cloud"] | None = Field(
        default=None, description="a fleet (local) or a Claude model (cloud); null before schema 5: the tier's name"
    )
    model: str | None = Field(default=None, description="the Claude model, or the models the fleet's hosts serve")
    fleet: dict[str, Any] | None = Field(default=None, description="a named fleet tier's fleet file, as loaded")
    fleet_path: str | None = Field(default=None, description="where a named fleet tier's fleet file was read")

    def kind_of(self, name: str) -> Literal["local", "cloud"]:
        """The kind, or for a run before schema 5 (only ``local`` and ``cloud`` then) the tier's name."""
        return self.kind or ("cloud" if name == "cloud" else "local")


class JudgeInfo(_Record):
    """A second judge (``grading.judges`` after Claude): where it ran, what it spent, how its grades ended."""

    name: str
    kind: str = Field(description="ollama | openai")
    model: str
    where: str = Field(description="a fleet host, or the kind of server it was reached on")
    paid: bool = Field(default=False, description="a paid API: its calls were held to the grading budget")
    spent_usd: float | None = Field(default=None, description="its list price, or its host's cost model (self-hosted)")
    calls: int | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="grade status -> answers")
    note: str | None = None


class GraderInfo(_Record):
    """How grading was set up and how it ended (``harness.grading.setup``); ``model`` is the primary judge's."""

    status: str
    reason: str | None = None
    model: str | None = None
    sample_cases: int | None = Field(default=None, description="cases in the stratified sample")
    sample: str | None = Field(default=None, description="how the sample was drawn")
    batch: bool = False
    max_usd: float | None = None
    projected_usd: float | None = Field(default=None, description="upper estimate shown before the run")
    spent_usd: float | None = None
    calls: int | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="grade status -> answers")
    batch_id: str | None = None
    note: str | None = None
    second_judges: list[JudgeInfo] = Field(default_factory=list, description="judges beside Claude (version 5)")


class PricingInfo(_Record):
    """The cloud pricing table that priced a run: where it was, its as-of date and a hash of its content."""

    path: str
    as_of: str
    sha256: str


class ShardInfo(_Record):
    """A run of one shard of a suite (``--shard index/count``), or a run merged from shards (``merged_from``)."""

    index: int | None = Field(default=None, description="1-based shard number; None for a merged run")
    count: int
    suite_cases: int = Field(description="cases in the whole suite")
    case_ids: list[str] = Field(default_factory=list, description="the cases this shard runs")
    merged_from: list[str] = Field(default_factory=list, description="run ids of the shards merged into this run")


class CacheInfo(_Record):
    """How a run used the response cache (``harness.run.cache``)."""

    mode: CacheMode
    chosen_by: str = Field(description="what set the mode: a command-line flag, the suite, or the command's default")
    path: str | None = Field(default=None, description="the cache directory; null when the mode is off")


RunStatus = Literal["created", "running", "complete", "partial", "failed", "interrupted"]


class TierTallyInfo(_Record):
    calls: int
    answered: int
    failed: int
    failure_rate: float | None = Field(description="failed / calls; null when the tier made no call")
    replayed: int = Field(default=0, description="answers replayed from the response cache (not calls)")


class VerdictInfo(_Record):
    """Whether every tier the run ran answered (see :mod:`harness.run.verdict`); ``failed`` fails the run."""

    status: Literal["passed", "failed"]
    reasons: list[str] = Field(default_factory=list, description="one per failing tier")
    max_failure_rate: float
    tiers: dict[str, TierTallyInfo] = Field(default_factory=dict)


class ManifestFields(_Record):
    """Every field of ``manifest.json`` a run writes, typed; also the update :meth:`RunStore.update_manifest` applies.

    As an update, only the fields given are applied: one given as ``None`` clears its value, one left out keeps it.
    """

    run_id: str | None = None
    status: RunStatus = "created"
    started_at: str | None = None
    resumed_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    suite: SuiteInfo | None = None
    corpus: CorpusInfo | None = None
    tiers: dict[str, TierInfo] = Field(default_factory=dict)
    grader: GraderInfo | None = None
    fleet: dict[str, Any] | None = None
    budget_usd: float | None = None
    pricing_as_of: str | None = None
    pricing: PricingInfo | None = None
    ann_fidelity: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str | None] = Field(default_factory=dict)
    git_commit: str | None = None
    records_expected: int | None = None
    records_written: int | None = None
    generation_failures: int | None = None
    budget_exhausted: bool | None = None
    cloud_spent_usd: float | None = None
    verdict: VerdictInfo | None = None
    pid: int | None = Field(default=None, description="the process that last wrote the run")
    resume_with: str | None = Field(default=None, description="the command that continues this run")
    interrupted_at: str | None = None
    interrupted_by: str | None = Field(default=None, description="the signal that stopped the run, e.g. SIGTERM")
    shard: ShardInfo | None = None
    cache: CacheInfo | None = Field(default=None, description="the response-cache mode; null before schema 4")
    model_warnings: list[str] = Field(
        default_factory=list, description="models the run called that were due to retire within 30 days"
    )


class Manifest(ManifestFields):
    """``manifest.json``. Fields filled once the run is prepared are optional, so a just-created store is valid."""

    schema_version: int = SCHEMA_VERSION


SCHEMA_MODELS: dict[str, type[BaseModel]] = {"manifest": Manifest, "case_record": CaseRecord}
"""Every top-level record of the run store, by the name of its exported JSON Schema."""


# ------------------------------------------------------------------------------------------------ builders


def case_record(case: Case, variant: str, retrieval: RetrievalRecord) -> CaseRecord:
    return CaseRecord(
        case_id=case.id,
        variant=variant,
        category=case.category,
        tags=list(case.tags),
        question=case.question,
        reference=case.reference,
        must_include=list(case.must_include),
        relevant=dict(case.relevant),
        generate=case.generate,
        retrieval=retrieval,
    )


def retrieval_record(
    ranked_docs: list[tuple[str, float]],
    chunk_ids: list[str],
    metrics: dict[str, float | None],
    latency_s: float,
    has_relevant: bool,
    *,
    chunks_fetched: int | None = None,
    exhausted: bool = False,
) -> RetrievalRecord:
    return RetrievalRecord(
        ranked=[(doc, float(score)) for doc, score in ranked_docs],
        chunks=chunk_ids,
        chunks_fetched=chunks_fetched,
        exhausted=exhausted,
        metrics=metrics,
        unmeasured_reason=None if has_relevant else NO_RELEVANT,
        latency_s=latency_s,
    )


def generation_record(
    generation: Generation, case: Case, *, answerable: bool, context: list[str] | None = None
) -> GenerationRecord:
    """A successful generation with its cheap answer metrics and the chunk ids its prompt carried."""
    data = asdict(generation)
    # A not-in-corpus case is scored on whether the answer declined, not on overlap with "this is not covered".
    scores = answer_metrics.score_answer(
        generation.text,
        case.reference if answerable else None,
        case.must_include if answerable and case.must_include else None,
    )
    fallback = generation.tier == "cloud" and any(a.host != "cloud" for a in generation.attempts)
    return GenerationRecord.model_validate(
        {**data, "status": "ok", "answer_metrics": scores, "fallback": fallback, "context": context}
    )


def failed_generation_record(
    tier: str, error: str, reasons: dict[str, str] | None = None, *, budget_exhausted: bool = False
) -> GenerationRecord:
    return GenerationRecord(
        status="failed", tier=tier, error=error, host_reasons=reasons or {}, budget_exhausted=budget_exhausted
    )


def skipped_generation_record(tier: str, reason: str) -> GenerationRecord:
    return GenerationRecord(status="skipped", tier=tier, reason=reason, grade=GradeRecord.unmeasured(reason))
