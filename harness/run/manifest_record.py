"""What a run's manifest says of it: its make-up when it starts (a resumed run keeps its start), the command that
resumes it, and how it ended. :mod:`harness.run.session` assembles the run; this module only records it."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config.fleet import Fleet
from harness.config.suite import CacheMode
from harness.errors import InputError
from harness.grading.setup import grading_summary
from harness.metrics.answer import ANSWER_METRICS
from harness.metrics.predictors import PREDICTOR_METRICS
from harness.run.ladder import ladder_manifest
from harness.run.provenance import git_commit, now, package_versions
from harness.run.resume_checks import document_digests
from harness.run.runner import RunOutcome
from harness.run.shard import check_resumed_shard
from harness.run.verdict import Verdict, judge, resolve_max_failure_rate, tally_tiers
from harness.store.records import CorpusInfo, GraderInfo, ManifestFields, PricingInfo, RunStatus, SuiteInfo
from harness.store.store import RunStore

if TYPE_CHECKING:
    from harness.run.session import PreparedRun, RunOptions, RunPlan

CACHE_FLAGS: dict[CacheMode, str] = {"read-write": "--cache", "write-only": "--fresh", "off": "--no-cache"}


def record_start(store: RunStore, options: RunOptions, plan: RunPlan, ann_fidelity: dict[str, Any]) -> None:
    """Write what this run is made of into the manifest and mark it running (a resumed run keeps its start)."""
    suite, corpus = plan.suite, plan.corpus
    fields = ManifestFields(
        run_id=store.path.name,
        pid=os.getpid(),
        suite=SuiteInfo(
            name=suite.name,
            path=str(options.suite_path),
            sha256=plan.suite_sha,
            cases=len(suite.cases),
            variants=[v.name for v in suite.variants],
            metrics=suite.metrics,
            answer_metrics=[*ANSWER_METRICS, *PREDICTOR_METRICS] if suite.generation else [],
            k=suite.k,
            config=suite.model_dump(mode="json", exclude={"cases"}),
        ),
        corpus=CorpusInfo(
            name=corpus.name,
            documents=len(corpus.ids),
            fingerprint=corpus.fingerprint,
            document_sha256=document_digests(corpus),
        ),
        tiers=ladder_manifest(plan.plans, plan.skipped),
        grader=GraderInfo.model_validate(plan.grading.manifest()),
        fleet=_fleet_manifest(plan.fleet),
        budget_usd=options.budget_usd,
        pricing_as_of=plan.pricing.as_of.isoformat(),
        pricing=PricingInfo.model_validate(plan.pricing.manifest()),
        ann_fidelity=ann_fidelity,
        resume_with=resume_command(options, store.path.name, plan.cache.mode),
        shard=plan.shard,
        cache=plan.cache,
        model_warnings=list(plan.model_warnings),
    )
    if options.resume:
        try:
            check_resumed_shard(store.manifest().shard, plan.shard, options.resume)
        except InputError:
            store.release()
            raise
        store.update_manifest(fields.model_copy(update={"status": "running", "resumed_at": now()}))
    else:
        started = {"status": "running", "started_at": now(), "versions": package_versions(), "git_commit": git_commit()}
        store.update_manifest(fields.model_copy(update=started))


def resume_command(options: RunOptions, run_id: str, mode: CacheMode = "read-write") -> str:
    """The command that continues this run, as the manifest and the interrupt message show it: with the flag of the
    run's cache mode, so a nightly run resumed with ``harness run`` still calls every model."""
    words = ["harness", "run", str(options.suite_path), "--resume", run_id, CACHE_FLAGS[mode]]
    if options.reports_dir != Path("reports"):
        words += ["--reports", str(options.reports_dir)]
    if options.fleet_path is not None:
        words += ["--fleet", str(options.fleet_path)]
    if options.shard is not None:
        words += ["--shard", options.shard]
    if options.ray is not None:
        words += ["--ray", options.ray.address]
    if options.cloud_model is not None:
        words += ["--cloud-model", options.cloud_model]
    for name, path in sorted(options.fleet_overrides.items()):
        words += ["--fleet", f"{name}={path}"]
    return shlex.join(words)


def _fleet_manifest(fleet: Fleet | None) -> dict[str, Any] | None:
    if fleet is None:
        return None
    return fleet.model_dump(mode="json")


def finish(prepared: PreparedRun, outcome: RunOutcome, max_failure_rate: float | None = None) -> Verdict:
    """Record how the run ended. A run with failed calls says so; a tier that answered nothing, or failed more than
    ``max_failure_rate`` of its calls (else the suite's limit), marks the run ``failed`` (see :mod:`.verdict`)."""
    total = len(prepared.suite.cases) * len(prepared.suite.variants)
    generation = prepared.suite.generation
    limit = resolve_max_failure_rate(max_failure_rate, generation.max_failure_rate if generation else None)
    written: set[tuple[str, str]] = set()
    outcomes = []
    for record in prepared.store.records():  # one pass over the run's records
        written.add(record.key)
        outcomes += [(tier, answer.status, answer.error, answer.cached) for tier, answer in record.generations.items()]
    done = len(written)
    verdict = judge(tally_tiers(outcomes, [t.name for t in prepared.parts.tiers]), limit)
    status: RunStatus = "failed" if verdict.failed else "complete" if done == total else "partial"
    ended = ManifestFields(
        status=status,
        finished_at=now(),
        records_expected=total,
        records_written=done,
        generation_failures=outcome.generation_failures,
        budget_exhausted=outcome.budget_exhausted,
        cloud_spent_usd=prepared.budget.spent_usd,
        verdict=verdict.to_manifest(),
        error="; ".join(verdict.reasons) if verdict.failed else None,
    )
    summary = grading_summary(prepared.store, prepared.grading, outcome.grading)
    if "grader" in summary:  # no summary: the grader's entry stays as the run began
        ended.grader = GraderInfo.model_validate(summary["grader"])
    prepared.store.update_manifest(ended)
    return verdict
