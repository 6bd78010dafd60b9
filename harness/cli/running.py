"""A suite run as `harness run` and `harness nightly` drive it: checks before anything loads, the run with its
progress, its reports and summary, and the exit its verdict asks for."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from harness.cli.console import RichProgress, errors
from harness.cli.ray_flag import leave_ray
from harness.errors import HarnessError, InputError, RunFailed, RunInterrupted
from harness.run.interrupt import record_interrupt
from harness.store.records import ManifestFields

if TYPE_CHECKING:
    from harness.config.suite import CacheMode


def cache_mode_flag(cache: bool | None, fresh: bool = False) -> CacheMode | None:
    """The cache mode the command line asks for (``None``: it asks for none; the suite or the command decides)."""
    if fresh and cache is not None:
        flag = "--cache" if cache else "--no-cache"
        raise InputError(f"--fresh and {flag} ask for two cache modes",
                         hint="--fresh calls every model and fills the cache; pass one of the three")
    if fresh:
        return "write-only"
    if cache is None:
        return None
    return "read-write" if cache else "off"


def fail_if_failed(summary: dict[str, Any]) -> None:
    """A run whose verdict failed ends with exit 3 and its reasons, after its report is written."""
    if summary["status"] == "failed":
        raise RunFailed(
            "run failed: " + "; ".join(summary["failure_reasons"]),
            hint=f"read {summary['run_dir']}/report.md; `harness fleet status` shows which hosts answer",
        )


def run_and_report(
    suite: Path,
    *,
    run_id: str | None,
    reports: Path,
    fleet: Path | None,
    budget: float | None,
    resume: str | None,
    store: Path,
    chroma_url: str | None,
    concurrency: int | None,
    quiet: bool,
    pricing: Path | None = None,
    max_failure_rate: float | None = None,
    grade_batch: bool | None = None,
    cache_mode: CacheMode | None = None,
    default_cache_mode: CacheMode = "read-write",
    command: str = "run",
    shard: str | None = None,
    ray: Any = None,
    cloud_model: str | None = None,
    fleet_overrides: dict[str, Path] | None = None,
) -> dict[str, Any]:
    from harness.run.session import RunOptions, prepare
    from harness.run.signals import interrupts_raise
    from harness.store.paths import check_run_id

    if run_id and resume:
        raise InputError("--run-id and --resume both name a run", hint="use --resume ID alone to continue a run")

    for given, option in ((run_id, "--run-id"), (resume, "--resume")):
        if given is not None:
            check_run_id(given, option)  # before the suite, corpus or any model is loaded
    options = RunOptions(
        suite_path=suite,
        reports_dir=reports,
        run_id=run_id,
        resume=resume,
        fleet_path=fleet,
        budget_usd=budget,
        store_dir=store,
        chroma_url=chroma_url,
        concurrency=concurrency,
        pricing_path=pricing,
        grade_batch=grade_batch,
        cache_mode=cache_mode,
        default_cache_mode=default_cache_mode,
        command=command,
        shard=shard,
        ray=ray,
        cloud_model=cloud_model,
        fleet_overrides=dict(fleet_overrides or {}),
    )
    try:
        with interrupts_raise():
            prepared = prepare(options)
            try:
                return _run_prepared(prepared, budget=budget, quiet=quiet, max_failure_rate=max_failure_rate)
            finally:
                prepared.store.release()
    finally:
        leave_ray(ray)


def _run_prepared(
    prepared: Any, *, budget: float | None, quiet: bool, max_failure_rate: float | None
) -> dict[str, Any]:
    from harness.report.writer import write_reports
    from harness.run.manifest_record import finish
    from harness.run.runner import run_suite

    say = (lambda *a: None) if quiet else _say
    for warning in prepared.model_warnings:  # shown even when quiet: a model about to retire needs action
        errors.print(Text("warning: ", style="yellow").append(warning), highlight=False, soft_wrap=True)
    for report in prepared.ingest_reports:
        say(ingest_line(report))
    for tier in prepared.parts.skipped_tiers:
        say(f"{tier.name} tier skipped: {tier.reason}")
    if prepared.projected_cloud_usd is not None:
        cap = f" (budget ${budget:.2f})" if budget is not None else " (no --budget cap)"
        say(f"projected cloud cost: up to ${prepared.projected_cloud_usd:.4f} for {prepared.cloud_calls} calls{cap}")
    if prepared.grading is not None and (line := prepared.grading.plan_line()) and not quiet:
        errors.print(line, markup=False, highlight=False)
    try:
        with RichProgress(enabled=not quiet) as progress:
            outcome = asyncio.run(_run_and_close(prepared, run_suite, progress))
    except RunInterrupted as exc:
        exc.hint = record_interrupt(prepared.store, exc.signum, write_reports)
        raise
    except HarnessError as exc:
        prepared.store.update_manifest(ManifestFields(status="failed", error=exc.message))
        exc.hint = exc.hint or f"fix the cause, then continue with --resume {prepared.store.path.name}"
        raise
    verdict = finish(prepared, outcome, max_failure_rate)
    view = write_reports(prepared.store.path)
    summary = {
        "run_dir": str(prepared.store.path),
        "records": len(view.records),
        "written": outcome.written,
        "already_done": outcome.skipped_done,
        "generation_failures": outcome.generation_failures,
        "cloud_spent_usd": prepared.budget.spent_usd if prepared.cloud_calls else None,
        "status": "failed" if verdict.failed else "ok",
        "failure_reasons": list(verdict.reasons),
        "model_warnings": list(prepared.model_warnings),
    }
    say(f"wrote {prepared.store.path}/report.md")
    return summary


def _say(text: str) -> None:
    errors.print(text, markup=False, highlight=False)


async def _run_and_close(prepared, run_suite, progress):
    from harness.run.signals import run_stoppable

    try:
        return await run_stoppable(run_suite(prepared.parts, prepared.store, progress))
    finally:
        for tier in prepared.parts.tiers:
            await tier.aclose()


def ingest_line(report: Any) -> str:
    """What ingesting one collection did, in one line: `harness ingest` prints it, and a run that ingests first."""
    return (
        f"{report.collection}: {report.total} chunks — {report.added} added, {report.updated} updated, "
        f"{report.deleted} deleted, {report.unchanged} unchanged; {report.embedded} embedded in {report.seconds:.1f}s"
    )
