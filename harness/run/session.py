"""Assemble a run from the command line's choices: suite, corpus, retrievers, tiers, prompt, run store, manifest.

This is the one place that wires the layers together, so ``harness run`` and ``harness nightly`` share it. The tiers
are built in :mod:`harness.run.tier_setup`, the grading in :mod:`harness.grading.setup`, each tier's prompt in
:mod:`harness.run.prompts`, the projected cloud cost in :mod:`harness.run.cloud_projection`, and the manifest's
record of the run (its make-up, how to resume it, how it ended) in :mod:`harness.run.manifest_record`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config.fleet import Fleet
from harness.config.pricing import PricingTable
from harness.config.suite import CacheMode, Suite, check_judge_hosts, load_suite
from harness.config.tiers import TierPlan
from harness.config.yaml_loader import load_yaml
from harness.corpus.documents import Corpus, load_corpus, resolve_corpus
from harness.errors import CorpusError, HarnessError, RunInterrupted
from harness.grading.setup import GradingSetup, build_grading
from harness.money.costs import use_pricing
from harness.run.cache_identity import with_cache
from harness.run.cloud_projection import planned_cloud_calls, projected_ladder_usd
from harness.run.ladder import (
    build_ladder,
    fleet_of_tier,
    ladder_capacity,
    ladder_model_uses,
    plan_ladder,
)
from harness.run.manifest_record import CACHE_FLAGS, record_start
from harness.run.model_uses import check_run_models, run_model_uses
from harness.run.predict import Embed
from harness.run.prompts import prompt_builder, prompt_context
from harness.run.provenance import now
from harness.run.resume_checks import check_resumable
from harness.run.runner import RunParts
from harness.run.shard import apply_shard
from harness.run.tier_setup import fleet_capacity, load_run_fleet, run_fleet_path
from harness.run.tiers import AnswerTier, Budget, SkippedTier, cloud_key_present
from harness.store.paths import run_dir
from harness.store.records import (
    CacheInfo,
    Manifest,
    ManifestFields,
    RunStatus,
    ShardInfo,
)
from harness.store.store import RunStore

DEFAULT_STORE = Path(".harness/index")


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
    cache_dir: Path = Path(".harness/cache")  # the response cache's directory
    cache_mode: CacheMode | None = None  # from a command-line flag; None: the suite's `cache:`, else default_cache_mode
    default_cache_mode: CacheMode = "read-write"  # `harness run`'s; `harness nightly` calls every model (write-only)
    command: str = "run"  # the harness command that started the run, as the manifest names what chose the cache mode
    shard: str | None = None  # "i/n": run only that stable subset of the cases (harness.run.shard)
    ray: RayOptions | None = None  # --ray: ingest and retrieve on a Ray cluster; generation stays here
    cloud_model: str | None = None  # --cloud-model: the cloud tier's and fallback's model instead of the fleet's
    fleet_overrides: dict[str, Path] = field(default_factory=dict)  # --fleet NAME=FILE: a named fleet tier's file


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
    model_warnings: tuple[str, ...] = ()  # models the run calls that retire within 30 days


def new_run_id(reports_dir: Path | None = None, suite_name: str | None = None) -> str:
    """The UTC time to the second; with a suffix when a run of the suite already has that id (two runs in a second)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if reports_dir is None or suite_name is None:
        return stamp
    candidate, n = stamp, 1
    while (reports_dir / suite_name / candidate).exists():
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate


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


# The flag that sets each cache mode on the command line (harness.cli.running), for the manifest and --resume.


def cache_mode(options: RunOptions, suite: Suite) -> tuple[CacheMode, str]:
    """The run's response-cache mode and what chose it: a command-line flag, else the suite, else the command."""
    if options.cache_mode is not None:
        return options.cache_mode, f"the {CACHE_FLAGS[options.cache_mode]} flag"
    if suite.cache is not None:
        return suite.cache, "the suite's cache setting"
    return options.default_cache_mode, f"the default of harness {options.command}"


@dataclass
class RunPlan:
    """What a run is made of, all checked before the run directory is claimed (no model needed)."""

    suite: Suite
    corpus: Corpus
    suite_sha: str
    shard: ShardInfo | None
    pricing: PricingTable
    budget: Budget
    fleet: Fleet | None
    plans: list[TierPlan]
    tiers: list[AnswerTier]
    skipped: list[SkippedTier]
    build_prompt: Any
    prompt_context: Any
    grading: GradingSetup
    run_id: str
    cache: CacheInfo
    model_warnings: tuple[str, ...]


def prepare(options: RunOptions) -> PreparedRun:
    """Validate everything that needs no model, claim the run directory, then ingest and fill in the manifest."""
    plan = _plan(options)
    store = _store(options, plan.suite, plan.corpus, plan.suite_sha, plan.run_id)  # locked from here on
    retrieval, ann_fidelity = _retrievers_or_record_failure(store, plan, options)
    parts = RunParts(
        suite=plan.suite,
        retrievers=retrieval.retrievers,
        tiers=plan.tiers,
        skipped_tiers=plan.skipped,
        build_prompt=plan.build_prompt,
        prompt_context=plan.prompt_context,
        grading=plan.grading.plan,
        concurrency=options.concurrency or _capacity(plan),
        embed=_answer_embedder(plan.suite, retrieval.indexes),
        retrieve=_ray_retrieval(options, plan.suite, plan.corpus),
    )
    record_start(store, options, plan, ann_fidelity)
    cloud_calls = planned_cloud_calls(plan.suite, plan.tiers)
    projected = projected_ladder_usd(plan.suite, plan.tiers)
    reports = list(retrieval.reports)
    return PreparedRun(
        plan.suite, plan.corpus, store, parts, plan.budget, projected, cloud_calls, reports, plan.grading,
        plan.model_warnings,
    )


def _plan(options: RunOptions) -> RunPlan:
    suite, corpus = load_suite_and_corpus(options.suite_path)
    suite_sha = hashlib.sha256(options.suite_path.read_bytes()).hexdigest()
    suite, shard = apply_shard(suite, options.shard)
    pricing = use_pricing(options.pricing_path)  # one table prices the whole run
    budget = Budget(options.budget_usd)
    fleet = load_run_fleet(options.fleet_path) if suite.generation else None
    # A retired model is refused here, before the run directory exists and before any call (exit 2).
    uses = run_model_uses(suite, options.suite_path, fleet, run_fleet_path(options.fleet_path), options.cloud_model)
    if fleet is not None and options.cloud_model is not None:
        fleet = fleet.model_copy(update={"cloud_model": options.cloud_model})
    # Every named tier, with its fleet file read and its model checked, before anything runs (exit 2).
    plans = plan_ladder(suite, options.suite_path, fleet, run_fleet_path(options.fleet_path),
                        options.fleet_overrides, options.cloud_model)  # fmt: skip
    model_warnings = tuple(check_run_models(uses + ladder_model_uses(plans, options.suite_path)))
    tiers, skipped = build_ladder(plans, budget)
    # Named before anything is asked, because every answer stored in the response cache names the run that made it.
    run_id = options.resume or options.run_id or new_run_id(options.reports_dir, suite.name)
    mode, mode_chosen_by = cache_mode(options, suite)
    tiers = with_cache(tiers, fleet, options.cache_dir, mode, run_id)
    cache = CacheInfo(mode=mode, chosen_by=mode_chosen_by, path=None if mode == "off" else str(options.cache_dir))
    if suite.grading.second_judges:
        check_judge_hosts(suite, load_yaml(options.suite_path), [h.name for h in fleet.hosts] if fleet else None)
    grading = build_grading(
        suite, budget, len(tiers), key_present=cloud_key_present(), batch=options.grade_batch, fleet=fleet
    )
    return RunPlan(
        suite=suite,
        corpus=corpus,
        suite_sha=suite_sha,
        shard=shard,
        pricing=pricing,
        budget=budget,
        fleet=fleet,
        plans=plans,
        tiers=tiers,
        skipped=skipped,
        build_prompt=prompt_builder(suite, fleet, fleet_of_tier(plans)),
        prompt_context=prompt_context(suite, fleet, fleet_of_tier(plans)),
        grading=grading,
        run_id=run_id,
        cache=cache,
        model_warnings=model_warnings,
    )


def _capacity(plan: RunPlan) -> int:
    """Calls at once: every fleet tier's slots when the suite names its tiers, else the one fleet's."""
    return ladder_capacity(plan.plans, fleet_capacity) if plan.plans else fleet_capacity(plan.fleet)


def _retrievers_or_record_failure(store: RunStore, plan: RunPlan, options: RunOptions) -> tuple[Any, dict[str, Any]]:
    """The retrievers; if building them fails or is interrupted, the manifest says so and the store is released."""
    try:
        return _retrievers(plan.suite, plan.corpus, options)
    except BaseException as exc:
        reason = exc.message if isinstance(exc, HarnessError) else type(exc).__name__
        stopped = isinstance(exc, RunInterrupted | KeyboardInterrupt)
        status: RunStatus = "interrupted" if stopped else "failed"
        store.update_manifest(ManifestFields(status=status, error=f"preparing retrieval: {reason}", finished_at=now()))
        store.release()
        raise


def _store(options: RunOptions, suite: Suite, corpus: Corpus, suite_sha: str, run_id: str) -> RunStore:
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
    path = run_dir(options.reports_dir, suite.name, run_id)
    return RunStore.create(path, Manifest(run_id=path.name, pid=os.getpid()))


def _retrievers(suite: Suite, corpus: Corpus, options: RunOptions) -> tuple[Any, dict[str, Any]]:
    """A retriever per variant (indexes ingested incrementally first), and ANN fidelity per dense collection."""
    from harness.run.fidelity import suite_ann_fidelity

    setup = prepare_retrieval(suite, corpus, options.store_dir, options.chroma_url, options.ray)
    # Each distinct question once per embedder, in batches: ANN fidelity, the dense and hybrid variants and a
    # resumed run's grading all look the vectors up instead of embedding again.
    setup.indexes.embed_queries([case.question for case in suite.cases])
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


def _answer_embedder(suite: Suite, indexes: Any) -> Embed | None:
    """The suite's embedder, for the embedding-cosine predictor; loaded only when the suite generates answers.

    References are embedded up front in batches, each once; answers (which arrive one case at a time) are embedded
    as they come, and every text is kept so none is embedded twice.
    """
    if suite.generation is None:
        return None
    vectors = indexes.query_vectors(suite.embedder)
    vectors.prefetch([case.reference for case in suite.cases if case.generate and case.reference])
    embed: Embed = vectors.many
    return embed
