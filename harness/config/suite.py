"""Suite files: cases, variants to compare, retrieval depth and optional generation settings."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.config.advice import AdviceConfig
from harness.config.gate import GateConfig
from harness.config.grading import GradingConfig, judge_list_problem
from harness.config.tiers import BuiltinTier, TierEntry, check_ladder
from harness.config.yaml_loader import YamlDocument, load_yaml, validate

# The keys of RETRIEVERS (retrieval/build.py) and EMBEDDERS (retrieval/embedders.py): config cannot import them, so
# tests/test_kinds_match_registries.py holds each pair equal.
RetrieverKind = Literal["dense", "bm25", "hybrid"]
TierName = BuiltinTier
DEFAULT_TIERS: tuple[TierName, ...] = ("local", "cloud")
EmbedderKind = Literal["sentence-transformers", "ollama"]
# The keys of BACKENDS (retrieval/embedders.py), held equal by tests/test_kinds_match_registries.py too.
EmbedderBackend = Literal["torch", "onnx", "onnx-int8"]
# Where a suite leaves the backend out: int8 met the quality guard at 2.6x torch's ingest speed (bench/ingest.py).
DEFAULT_BACKEND: EmbedderBackend = "onnx-int8"
# The response cache (harness/run/cache.py): replay stored answers and store new ones; call every model and store what
# is missing (a monitoring run); or neither.
CacheMode = Literal["read-write", "write-only", "off"]

BUNDLED_EMBEDDER = "all-MiniLM-L6-v2"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
# Suite names and run ids become directory names: no dots or colons, so neither `..` nor a drive-like prefix fits.
PATH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ChunkingConfig(_Strict):
    """Section-aware chunking: split on headings, then pack paragraphs up to ``max_chars`` with ``overlap``."""

    max_chars: int = Field(default=1200, ge=100, le=20000)
    overlap: int = Field(default=200, ge=0)

    @model_validator(mode="after")
    def _overlap_below_max(self) -> ChunkingConfig:
        if self.overlap >= self.max_chars:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than max_chars ({self.max_chars})")
        return self

    @property
    def label(self) -> str:
        return f"sec{self.max_chars}o{self.overlap}"


class EmbedderConfig(_Strict):
    """Which embedding model; the default is the bundled MiniLM, loaded offline.

    ``backend`` says how a sentence-transformers model runs: ``torch`` (the model as trained), ``onnx`` (exported
    once to ONNX and run by onnxruntime) or ``onnx-int8`` (the same, with weights quantized to 8 bits where that
    keeps the embeddings within the quality guard; see ``harness.retrieval.onnx_export``). Left out, it is
    :data:`DEFAULT_BACKEND`, the fastest that meets the guard (``bench/ingest.py``). Indexes are keyed by the
    backend, so an index built with one backend is never queried with another: a suite that names ``torch`` keeps
    the index it always had.
    """

    kind: EmbedderKind = "sentence-transformers"
    model: str = BUNDLED_EMBEDDER
    backend: EmbedderBackend | None = Field(
        default=None, description=f"torch | onnx | onnx-int8 (sentence-transformers only; default {DEFAULT_BACKEND})")
    url: str | None = Field(default=None, description="Ollama base URL, for kind: ollama")
    batch_size: int = Field(default=64, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _default_backend(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("backend") is None \
                and data.get("kind", "sentence-transformers") == "sentence-transformers":
            return {**data, "backend": DEFAULT_BACKEND}
        return data

    @model_validator(mode="after")
    def _backend_fits_kind(self) -> EmbedderConfig:
        if self.backend is not None and self.kind != "sentence-transformers":
            raise ValueError(f"backend {self.backend!r} is for kind sentence-transformers; an {self.kind} embedder "
                             "runs on its server (leave backend out)")
        return self

    @property
    def label(self) -> str:
        # torch keeps the label it always had, so indexes built before backends existed keep their collections.
        base = f"{self.kind}:{self.model}"
        return base if self.backend in (None, "torch") else f"{base}@{self.backend}"


class Variant(_Strict):
    """One arm of a comparison. Fields left unset inherit the suite's settings."""

    name: str = Field(pattern=ID_PATTERN)
    retriever: RetrieverKind = "dense"
    chunking: ChunkingConfig | None = None
    embedder: EmbedderConfig | None = None
    rrf_k: int = Field(default=60, ge=1, description="reciprocal-rank-fusion constant for hybrid")


class GenerationConfig(_Strict):
    """How generation cases are answered."""

    context_chunks: int = Field(default=4, ge=1, le=50)
    max_context_tokens: int = Field(default=700, ge=50, description="budget for the retrieved passages in the prompt")
    max_tokens: int = Field(default=96, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int = 7
    tiers: list[TierEntry] = Field(
        default_factory=lambda: list[TierEntry](DEFAULT_TIERS), min_length=1,
        description="local and cloud, or named tiers {name, fleet: FILE | cloud: MODEL} (harness.config.tiers)",
    )
    reference: str | None = Field(
        default=None, description="the tier every other is measured against; default: the costliest that ran"
    )
    variants: list[str] | None = Field(default=None, description="which variants feed the generator; default all")
    max_failure_rate: float | None = Field(
        default=None, ge=0, le=1, description="share of failed calls over which a tier fails the run (default 0.2)"
    )


class Case(_Strict):
    """One question with its reference answer and graded relevant documents."""

    id: str = Field(pattern=ID_PATTERN)
    question: str = Field(min_length=1)
    reference: str = ""
    relevant: dict[str, int] = Field(default_factory=dict)
    category: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    generate: bool = False
    must_include: list[str] = Field(default_factory=list)

    @field_validator("relevant")
    @classmethod
    def _grades_in_range(cls, relevant: dict[str, int]) -> dict[str, int]:
        bad = {doc: grade for doc, grade in relevant.items() if not 0 <= grade <= 3}
        if bad:
            raise ValueError(f"grades must be 0..3 (3 answers it, 2 needed part, 1 related); got {bad}")
        return relevant


class Suite(_Strict):
    """A whole suite file."""

    name: str = Field(default="", pattern=r"^$|" + PATH_ID_PATTERN)
    description: str = ""
    corpus: str = "restoration"
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    k: int = Field(default=10, ge=1, le=1000)
    metrics: list[str] = Field(
        default_factory=lambda: ["recall@10", "precision@5", "hit@5", "mrr@10", "ndcg@10", "map"]
    )
    variants: list[Variant] = Field(default_factory=lambda: [Variant(name="dense")], min_length=1)
    generation: GenerationConfig | None = None
    gate: GateConfig | None = None
    advice: AdviceConfig = Field(default_factory=AdviceConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    cache: CacheMode | None = Field(
        default=None,
        description="response cache mode; default: read-write for `harness run`, write-only for `harness nightly`. "
        "The command line's --cache / --no-cache / --fresh override it",
    )
    cases: list[Case] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, variants: list[Variant]) -> list[Variant]:
        _reject_duplicates([v.name for v in variants], "variant name")
        return variants

    def variant_chunking(self, variant: Variant) -> ChunkingConfig:
        return variant.chunking or self.chunking

    def variant_embedder(self, variant: Variant) -> EmbedderConfig:
        return variant.embedder or self.embedder

    def tier_names(self) -> list[str]:
        """The names of the tiers the suite asks for, in its order."""
        if self.generation is None:
            return []
        return [t if isinstance(t, str) else t.name for t in self.generation.tiers]

    def generating_variants(self) -> list[Variant]:
        if self.generation is None:
            return []
        wanted = self.generation.variants
        return [v for v in self.variants if wanted is None or v.name in wanted]


def _reject_duplicates(values: list[str], what: str) -> None:
    seen: set[str] = set()
    duplicates = [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]
    if duplicates:
        raise ValueError(f"duplicate {what}(s): {', '.join(sorted(set(duplicates)))}")


def load_suite(path: str | Path, corpus_ids: set[str] | None = None) -> Suite:
    """Read and validate a suite; with ``corpus_ids``, also check every relevant doc id exists.

    Errors name the file, line and field.
    """
    document = load_yaml(path)
    _check_judge_list(document)
    suite = validate(Suite, document)
    if not suite.name:
        if not re.fullmatch(PATH_ID_PATTERN, Path(path).stem):
            raise document.error(
                f"the file name {Path(path).stem!r} cannot name the run directory",
                ("name",),
                hint="add `name:` with letters, digits, `-` and `_` only",
            )
        suite = suite.model_copy(update={"name": Path(path).stem})
    _check_cases(suite, document)
    if suite.generation is not None:
        check_ladder(suite.generation.tiers, suite.generation.reference, document)
    _check_metric_names(suite, document)
    if suite.generation and suite.generation.variants:
        unknown = sorted(set(suite.generation.variants) - {v.name for v in suite.variants})
        if unknown:
            raise document.error(
                f"unknown variant(s): {', '.join(unknown)}",
                ("generation", "variants"),
                hint=f"variants defined: {', '.join(v.name for v in suite.variants)}",
            )
    if corpus_ids is not None:
        check_relevant_ids(suite, document, corpus_ids)
    return suite


def _check_judge_list(document: YamlDocument) -> None:
    """``grading.judges``' list rules (claude first, names unique), checked on the raw YAML so the error names the
    entry's own line; each entry's fields are checked by the model."""
    grading = document.data.get("grading") if isinstance(document.data, dict) else None
    judges = grading.get("judges") if isinstance(grading, dict) else None
    if not isinstance(judges, list) or not all(isinstance(j, dict) for j in judges):
        return
    problem = judge_list_problem([j.get("name") for j in judges])
    if problem is not None:
        index, message = problem
        raise document.error(message, ("grading", "judges", index, "name"),
                             hint="see `grading.judges` in the README")


def _check_cases(suite: Suite, document: YamlDocument) -> None:
    first_index: dict[str, int] = {}
    for index, case in enumerate(suite.cases):
        if case.id in first_index:
            first_line = document.line_of(("cases", first_index[case.id]))
            raise document.error(
                f"duplicate case id {case.id!r} (first at line {first_line})",
                ("cases", index, "id"),
                hint="case ids must be unique within a suite",
            )
        first_index[case.id] = index
        if case.generate and not case.reference.strip():
            raise document.error("a generation case needs a reference answer", ("cases", index, "reference"))
    if any(case.generate for case in suite.cases) and suite.generation is None:
        index = next(i for i, case in enumerate(suite.cases) if case.generate)
        raise document.error(
            "case has generate: true but the suite has no `generation:` section",
            ("cases", index, "generate"),
            hint="add `generation: {}` to use the defaults",
        )


def _check_metric_names(suite: Suite, document: YamlDocument) -> None:
    from harness.errors import InputError
    from harness.metrics.retrieval import parse_metric

    first_index: dict[str, int] = {}
    for index, name in enumerate(suite.metrics):
        try:
            spec = parse_metric(name)
        except InputError as exc:
            raise document.error(exc.message, ("metrics", index), hint=exc.hint) from exc
        if name in first_index:
            raise document.error(
                f"metric {name!r} is listed twice (first at line {document.line_of(('metrics', first_index[name]))})",
                ("metrics", index),
                hint="list each metric once",
            )
        first_index[name] = index
        if spec.k is not None and spec.k > suite.k:
            raise document.error(
                f"metric {name!r} cuts at {spec.k}, deeper than the retrieval depth k: {suite.k}",
                ("metrics", index),
                hint=f"raise `k:` to at least {spec.k}, or use a cutoff of at most {suite.k}",
            )


def check_relevant_ids(suite: Suite, document: YamlDocument, corpus_ids: set[str]) -> None:
    """Every ``relevant`` doc id must exist in the corpus; the error lists the unknown ids."""
    for index, case in enumerate(suite.cases):
        unknown = sorted(set(case.relevant) - corpus_ids)
        if unknown:
            raise document.error(
                f"unknown document id(s) in case {case.id!r}: {', '.join(unknown)}",
                ("cases", index, "relevant"),
                hint=f"ids must match the `id:` front matter of a document in corpus {suite.corpus!r}",
            )


def check_judge_hosts(suite: Suite, document: YamlDocument, fleet_hosts: Collection[str] | None) -> None:
    """Every second judge given by ``host:`` names a host of the run's fleet file (known only when a run starts)."""
    if suite.generation is None:
        return  # nothing is graded
    for index, judge in enumerate(suite.grading.judges):
        if judge.host is None:
            continue
        if fleet_hosts is None:
            raise document.error(
                f"judge {judge.name!r} names fleet host {judge.host!r}, but this run has no fleet file",
                ("grading", "judges", index, "host"),
                hint="pass --fleet FILE, or give the judge url, kind and model instead of host",
            )
        if judge.host not in fleet_hosts:
            raise document.error(
                f"judge {judge.name!r} names host {judge.host!r}, which the fleet file does not have",
                ("grading", "judges", index, "host"),
                hint=f"hosts in the fleet file: {', '.join(sorted(fleet_hosts))}",
            )
