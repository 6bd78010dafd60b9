"""Assemble a run from the command line's choices: suite, corpus, retrievers, tiers, prompt, run store, manifest.

This is the one place that wires the layers together, so ``harness run`` and ``harness nightly`` share it. The tiers
are built in :mod:`harness.run.tier_setup`, the grading in :mod:`harness.grading.setup`, and the projected cloud
cost in :mod:`harness.run.cloud_projection`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config.fleet import Fleet
from harness.config.suite import Suite, load_suite
from harness.config.yaml_loader import load_yaml
from harness.corpus.documents import Corpus, load_corpus, resolve_corpus
from harness.errors import CorpusError, HarnessError, InputError, RunInterrupted
from harness.grading.setup import GradingSetup, build_grading, grading_summary
from harness.metrics.answer import ANSWER_METRICS
from harness.metrics.predictors import PREDICTOR_METRICS
from harness.money.costs import use_pricing
from harness.providers.types import GenerationRequest
from harness.retrieval.base import ScoredChunk
from harness.run.cache_identity import with_cache
from harness.run.cloud_projection import planned_cloud_calls, projected_cloud_usd
from harness.run.predict import Embed
from harness.run.resume_checks import check_resumable, document_digests
from harness.run.runner import RunOutcome, RunParts
from harness.run.shard import apply_shard, check_resumed_shard
from harness.run.tier_setup import build_tiers, fleet_capacity, load_run_fleet, run_fleet_path, tier_manifest
from harness.run.tiers import Budget, cloud_key_present
from harness.run.verdict import Verdict, judge, resolve_max_failure_rate, tally_tiers
from harness.store.paths import run_dir
from harness.store.records import Manifest
from harness.store.store import RunStore

DEFAULT_STORE = Path(".harness/index")
PACKAGES = (
    "rag-fleet-harness",
    "chromadb",
    "sentence-transformers",
    "bm25s",
    "anthropic",
    "httpx",
    "pandas",
    "llama-cpp-python",
    "torch",
    "numpy",
)


@dataclass(frozen=True)
class RayOptions:
    """``--ray [ADDRESS]``: where the Ray work goes, and how many chunks or cases one Ray batch holds."""

    address: str = "local"
    batch_size: int = 256  # chunks per ingest batch
    case_batch: int = 8  # (case, variant) pairs per retrieval task

    def parsed(self) -> Any:
        from harness.retrieval.ray_cluster import parse_address

        return parse_address(self.address)


@dataclass
class RunOptions:
    suite_path: Path
    reports_dir: Path = Path("reports")
    run_id: str | None = None
    resume: str | None = None
    fleet_path: Path | None = None
    budget_usd: float | None = None
    store_dir: Path = DEFAULT_STORE
    chroma_url: str | None = None
    concurrency: int | None = None  # cases answered at once; default: what the fleet can serve without queueing
    pricing_path: Path | None = None  # cloud price table; default: $HARNESS_PRICING, else the bundled table
    grade_batch: bool | None = None  # grade through Message Batches; None: the suite's grading.batch
    cache_dir: Path | None = Path(".harness/cache")  # response cache; None with --no-cache
    shard: str | None = None  # "i/n": run only that stable subset of the cases (harness.run.shard)
    ray: RayOptions | None = None  # --ray: ingest and retrieve on a Ray cluster; generation stays here


@dataclass
class PreparedRun:
    suite: Suite
    corpus: Corpus
    store: RunStore
    parts: RunParts
    budget: Budget
    projected_cloud_usd: float | None
    cloud_calls: int
    ingest_reports: list[Any]  # what bringing each index up to date did (IngestReport)
    grading: GradingSetup | None = None


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def load_suite_and_corpus(suite_path: Path) -> tuple[Suite, Corpus]:
    """Load the suite, then its corpus, then re-check the suite's relevant ids against the corpus."""
    suite = load_suite(suite_path)
    try:
        corpus_dir = _corpus_dir(suite.corpus, suite_path)
    except CorpusError as exc:  # name the suite line that asked for it
        raise load_yaml(suite_path).error(exc.message, ("corpus",), hint=exc.hint) from exc
    corpus = load_corpus(corpus_dir, name=corpus_dir.name)
    return load_suite(suite_path, corpus_ids=set(corpus.ids)), corpus


def _corpus_dir(corpus: str, suite_path: Path) -> Path:
    """A bare name is looked up under ./corpora, then beside the suite's folder; a path is relative to the suite."""
    suite_dir = suite_path.resolve().parent
    bare = "/" not in corpus and not corpus.startswith(".")
    bases = [Path.cwd(), suite_dir.parent] if bare else [suite_dir, Path.cwd()]
    errors: list[CorpusError] = []
    for base in bases:
        try:
            return resolve_corpus(corpus, base=base)
        except CorpusError as exc:
            errors.append(exc)
    raise errors[0]


def prepare(options: RunOptions) -> PreparedRun:
    """Validate everything that needs no model, claim the run directory, then ingest and fill in the manifest."""
    suite, corpus = load_suite_and_corpus(options.suite_path)
    suite_sha = hashlib.sha256(options.suite_path.read_bytes()).hexdigest()
    suite, shard = apply_shard(suite, options.shard)
    pricing = use_pricing(options.pricing_path)  # one table prices the whole run
    budget = Budget(options.budget_usd)
    fleet = load_run_fleet(options.fleet_path) if suite.generation else None
    tiers, skipped = build_tiers(suite, fleet, budget, run_fleet_path(options.fleet_path))
    tiers = with_cache(tiers, fleet, options.cache_dir)
    build_prompt = prompt_builder(suite, fleet)
    grading = build_grading(suite, budget, len(tiers), key_present=cloud_key_present(), batch=options.grade_batch)
    store = _store(options, suite, corpus, suite_sha)  # locked from here on; released by the caller
    try:
        retrieval, ann_fidelity = _retrievers(suite, corpus, options)
    except BaseException as exc:
        reason = exc.message if isinstance(exc, HarnessError) else type(exc).__name__
        stopped = isinstance(exc, RunInterrupted | KeyboardInterrupt)
        store.update_manifest(
            status="interrupted" if stopped else "failed", error=f"preparing retrieval: {reason}", finished_at=_now()
        )
        store.release()
        raise
    cloud_calls = planned_cloud_calls(suite, tiers)
    projected = projected_cloud_usd(suite, fleet, cloud_calls)
    parts = RunParts(
        suite=suite,
        retrievers=retrieval.retrievers,
        tiers=tiers,
        skipped_tiers=skipped,
        build_prompt=build_prompt,
        grading=grading.plan,
        concurrency=options.concurrency or fleet_capacity(fleet),
        embed=_answer_embedder(suite),
        retrieve=_ray_retrieval(options, suite, corpus),
    )
    manifest_fields = {
        "run_id": store.path.name,
        "pid": os.getpid(),
        "suite": {
            "name": suite.name,
            "path": str(options.suite_path),
            "sha256": suite_sha,
            "cases": len(suite.cases),
            "variants": [v.name for v in suite.variants],
            "metrics": suite.metrics,
            "answer_metrics": [*ANSWER_METRICS, *PREDICTOR_METRICS] if suite.generation else [],
            "k": suite.k,
            "config": suite.model_dump(mode="json", exclude={"cases"}),
        },
        "corpus": {
            "name": corpus.name,
            "documents": len(corpus.ids),
            "fingerprint": corpus.fingerprint,
            "document_sha256": document_digests(corpus),
        },
        "tiers": tier_manifest(suite, tiers, skipped),
        "grader": grading.manifest(),
        "fleet": _fleet_manifest(fleet),
        "budget_usd": options.budget_usd,
        "pricing_as_of": pricing.as_of.isoformat(),
        "pricing": pricing.manifest(),
        "ann_fidelity": ann_fidelity,
        "resume_with": resume_command(options, store.path.name),
        "shard": shard.model_dump() if shard else None,
    }
    if options.resume:
        try:
            check_resumed_shard(store.manifest().shard, shard, options.resume)
        except InputError:
            store.release()
            raise
        store.update_manifest(status="running", resumed_at=_now(), **manifest_fields)
    else:
        store.update_manifest(
            status="running", started_at=_now(), versions=_versions(), git_commit=_git_commit(), **manifest_fields
        )
    return PreparedRun(suite, corpus, store, parts, budget, projected, cloud_calls, list(retrieval.reports), grading)


def resume_command(options: RunOptions, run_id: str) -> str:
    """The command that continues this run, as the manifest and the interrupt message show it."""
    words = ["harness", "run", str(options.suite_path), "--resume", run_id]
    if options.reports_dir != Path("reports"):
        words += ["--reports", str(options.reports_dir)]
    if options.fleet_path is not None:
        words += ["--fleet", str(options.fleet_path)]
    if options.shard is not None:
        words += ["--shard", options.shard]
    if options.ray is not None:
        words += ["--ray", options.ray.address]
    return shlex.join(words)


def _store(options: RunOptions, suite: Suite, corpus: Corpus, suite_sha: str) -> RunStore:
    if options.resume:
        store = RunStore.open(run_dir(options.reports_dir, suite.name, options.resume, "--resume"))
        store.acquire()
        try:
            check_resumable(store.manifest(), suite, corpus, options.suite_path, suite_sha)
            store.repair_torn_tail()
        except BaseException:
            store.release()
            raise
        return store
    path = run_dir(options.reports_dir, suite.name, options.run_id or new_run_id())
    return RunStore.create(path, Manifest(run_id=path.name, pid=os.getpid()))


def _retrievers(suite: Suite, corpus: Corpus, options: RunOptions) -> tuple[Any, dict[str, Any]]:
    """A retriever per variant (indexes ingested incrementally first), and ANN fidelity per dense collection."""
    from harness.run.fidelity import suite_ann_fidelity

    setup = prepare_retrieval(suite, corpus, options.store_dir, options.chroma_url, options.ray)
    return setup, suite_ann_fidelity(suite, setup)


def prepare_retrieval(suite: Suite, corpus: Corpus, store_dir: Path, chroma_url: str | None,
                      ray: RayOptions | None = None) -> Any:
    """Retrievers for every variant, their indexes synced first: in this process, or on Ray when ``ray`` is given."""
    from harness.retrieval.build import build_retrievers

    syncer = None
    if ray is not None:
        from harness.retrieval.ray_ingest import ray_sync

        syncer = ray_sync(ray.parsed(), batch_size=ray.batch_size)
    # Absolute, because Chroma shares one client per path string within a process: a relative path reused after a
    # change of directory would reach the old store.
    return build_retrievers(suite, corpus, store_dir.resolve(), chroma_url=chroma_url, syncer=syncer)


def _ray_retrieval(options: RunOptions, suite: Suite, corpus: Corpus) -> Any:
    """With ``--ray``, retrieval fans out to the cluster; generation and the run store stay here."""
    if options.ray is None:
        return None
    from harness.run.ray_executor import ray_retrieval

    return ray_retrieval(options.ray, suite, corpus, options.chroma_url)


def prompt_builder(suite: Suite, fleet: Fleet | None) -> Any:
    from harness.localfleet.prompt import build_request, fleet_prompt_style

    generation = suite.generation
    if generation is None:
        return None
    local_style = fleet_prompt_style(fleet) if fleet is not None else "chat"

    def build(question: str, hits: Sequence[ScoredChunk], tier: str) -> GenerationRequest:
        # The cloud tier always gets the chat prompt; the local tier gets what its hosts' endpoint expects.
        style = local_style if tier == "local" else "chat"
        passages = list(hits[: generation.context_chunks])  # chunks, so each passage is labelled with its doc id
        return build_request(
            question,
            passages,
            style=style,
            max_tokens=generation.max_tokens,
            context_tokens=generation.max_context_tokens,
            temperature=generation.temperature,
            seed=generation.seed,
        )

    return build


def _answer_embedder(suite: Suite) -> Embed | None:
    """The suite's embedder, for the embedding-cosine predictor; loaded only when the suite generates answers."""
    if suite.generation is None:
        return None
    from harness.retrieval.embedders import get_embedder

    return get_embedder(suite.embedder).embed


def _fleet_manifest(fleet: Fleet | None) -> dict[str, Any] | None:
    if fleet is None:
        return None
    return fleet.model_dump(mode="json")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def finish(prepared: PreparedRun, outcome: RunOutcome, max_failure_rate: float | None = None) -> Verdict:
    """Record how the run ended. A run with failed calls says so; a tier that answered nothing, or failed more than
    ``max_failure_rate`` of its calls (else the suite's limit), marks the run ``failed`` (see :mod:`.verdict`)."""
    total = len(prepared.suite.cases) * len(prepared.suite.variants)
    done = len(prepared.store.completed())
    generation = prepared.suite.generation
    limit = resolve_max_failure_rate(max_failure_rate, generation.max_failure_rate if generation else None)
    outcomes = [
        (tier, generation.status, generation.error)
        for record in prepared.store.records()
        for tier, generation in record.generations.items()
    ]
    verdict = judge(tally_tiers(outcomes, [t.name for t in prepared.parts.tiers]), limit)
    status = "failed" if verdict.failed else "complete" if done == total else "partial"
    prepared.store.update_manifest(
        status=status,
        finished_at=_now(),
        records_expected=total,
        records_written=done,
        generation_failures=outcome.generation_failures,
        budget_exhausted=outcome.budget_exhausted,
        cloud_spent_usd=prepared.budget.spent_usd,
        verdict=verdict.to_manifest(),
        error="; ".join(verdict.reasons) if verdict.failed else None,
        **grading_summary(prepared.store, prepared.grading, outcome.grading),
    )
    return verdict
