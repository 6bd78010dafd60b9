"""The eval commands: ingest, run, report and the nightly main job."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from harness.cli.console import RichProgress, console, errors, print_json
from harness.cli.options import (
    CacheOpt,
    ChromaOpt,
    CloudModelOpt,
    FreshOpt,
    JsonOpt,
    MaxFailureRateOpt,
    PricingOpt,
    QuietOpt,
    RayBatchOpt,
    RayOpt,
    ReportsOpt,
    StoreOpt,
    SuiteArg,
)
from harness.errors import HarnessError, InputError, RunFailed, RunInterrupted
from harness.providers.anthropic_key import anthropic_api_key
from harness.run.interrupt import record_interrupt
from harness.store.records import ManifestFields

if TYPE_CHECKING:
    from harness.config.suite import CacheMode


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(run)
    app.command()(report)
    app.command()(nightly)
    _register_models(app)
    _register_fleet(app)
    _register_gateway(app)
    _register_analysis(app)
    _register_label(app)


def _register_label(app: typer.Typer) -> None:
    from harness.cli.label import label

    app.command()(label)


def _register_analysis(app: typer.Typer) -> None:
    from harness.cli import analysis

    analysis.register(app)
    from harness.cli import view

    view.register(app)


def _register_models(app: typer.Typer) -> None:
    from harness.cli.models import models

    app.command()(models)


def _register_fleet(app: typer.Typer) -> None:
    from harness.cli.fleet import fleet_app

    app.add_typer(fleet_app, name="fleet", help="Operate the local fleet: status, ask, up, down.")


def _register_gateway(app: typer.Typer) -> None:
    from harness.cli.gateway import gateway_app

    app.add_typer(gateway_app, name="gateway", help="The signed-token gateway in front of the fleet.")


def ingest(
    suite: SuiteArg = Path("suites/retrieval.yaml"),
    store: StoreOpt = Path(".harness/index"),
    chroma_url: ChromaOpt = None,
    ray: RayOpt = None,
    ray_batch_size: RayBatchOpt = 256,
    json_out: JsonOpt = False,
) -> None:
    """Chunk, embed and index the suite's corpus for every variant; unchanged chunks are never re-embedded."""
    from harness.run.session import load_suite_and_corpus, prepare_retrieval

    ray_options = _ray_options(ray, chroma_url, batch_size=ray_batch_size)
    loaded_suite, corpus = load_suite_and_corpus(suite)
    try:
        setup = prepare_retrieval(loaded_suite, corpus, store, chroma_url, ray_options)
    finally:
        _leave_ray(ray_options)
    if json_out:
        reports = [report.as_dict() for report in setup.reports]
        print_json(
            {"corpus": corpus.name, "documents": len(corpus.ids), "collections": reports, "variants": setup.info}
        )
        return
    for report in setup.reports:
        console.print(_ingest_line(report))


def _ray_options(address: str | None, chroma_url: str | None, *, batch_size: int = 256, case_batch: int = 8) -> Any:
    """``--ray``'s settings, checked before anything loads: the ray package and a Chroma server every worker reaches."""
    if address is None:
        return None
    from harness.retrieval.ray_cluster import check_reachable, import_ray, parse_address
    from harness.run.session import RayOptions

    import_ray()
    check_reachable(parse_address(address))
    if not (chroma_url or os.environ.get("HARNESS_CHROMA_URL")):
        raise InputError(
            "--ray needs a Chroma server that every Ray worker can reach, and HARNESS_CHROMA_URL is not set",
            hint="start one (`chroma run --path DIR --host 0.0.0.0`) and set HARNESS_CHROMA_URL=http://HOST:8000, "
            "or pass --chroma-url",
        )
    return RayOptions(address=address, batch_size=batch_size, case_batch=case_batch)


def _leave_ray(options: Any) -> None:
    if options is not None:
        from harness.retrieval.ray_cluster import shutdown

        shutdown()


def _ingest_line(report: Any) -> str:
    return (
        f"{report.collection}: {report.total} chunks — {report.added} added, {report.updated} updated, "
        f"{report.deleted} deleted, {report.unchanged} unchanged; {report.embedded} embedded in {report.seconds:.1f}s"
    )


def run(
    suite: SuiteArg,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="name of the run directory (default: UTC time)")
    ] = None,
    reports: ReportsOpt = Path("reports"),
    fleet: Annotated[
        list[str] | None,
        typer.Option("--fleet", help="fleet file for the local tier; NAME=FILE overrides a named fleet tier's file"),
    ] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="cap on cloud spend in USD for this run")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="run id to continue; finished cases are kept")] = None,
    store: StoreOpt = Path(".harness/index"),
    chroma_url: ChromaOpt = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="cases answered at once (default: the fleet's capacity)")
    ] = None,
    pricing: PricingOpt = None,
    max_failure_rate: MaxFailureRateOpt = None,
    grade_batch: Annotated[
        bool | None,
        typer.Option("--grade-batch/--no-grade-batch", help="grade through Message Batches (half price, slower)"),
    ] = None,
    cache: CacheOpt = None,
    fresh: FreshOpt = False,
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/n: run only shard i of n (stable by case id); join with merge")
    ] = None,
    ray: RayOpt = None,
    ray_batch_size: RayBatchOpt = 256,
    ray_case_batch: Annotated[
        int, typer.Option("--ray-case-batch", min=1, help="with --ray: (case, variant) pairs per retrieval task")
    ] = 8,
    cloud_model: CloudModelOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a suite and write reports/<suite>/<run-id>/. Exit 3 if a tier it ran answered nothing or failed too often."""
    from harness.config.tiers import parse_fleet_overrides

    fleet_path, fleet_overrides = parse_fleet_overrides(fleet or [])
    summary = _run_suite(
        suite,
        run_id=run_id,
        reports=reports,
        fleet=fleet_path,
        fleet_overrides=fleet_overrides,
        budget=budget,
        resume=resume,
        store=store,
        chroma_url=chroma_url,
        concurrency=concurrency,
        max_failure_rate=max_failure_rate,
        quiet=quiet or json_out,
        pricing=pricing,
        grade_batch=grade_batch,
        cache_mode=cache_mode_flag(cache, fresh),
        shard=shard,
        ray=_ray_options(ray, chroma_url, batch_size=ray_batch_size, case_batch=ray_case_batch),
        cloud_model=cloud_model,
    )
    if json_out:
        print_json(summary)
    _fail_if_failed(summary)


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


def _fail_if_failed(summary: dict[str, Any]) -> None:
    """A run whose verdict failed ends with exit 3 and its reasons, after its report is written."""
    if summary["status"] == "failed":
        raise RunFailed(
            "run failed: " + "; ".join(summary["failure_reasons"]),
            hint=f"read {summary['run_dir']}/report.md; `harness fleet status` shows which hosts answer",
        )


def _run_suite(
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

    if run_id and resume:
        raise InputError("--run-id and --resume both name a run", hint="use --resume ID alone to continue a run")
    from harness.store.paths import check_run_id

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
        _leave_ray(ray)


def _run_prepared(
    prepared: Any, *, budget: float | None, quiet: bool, max_failure_rate: float | None
) -> dict[str, Any]:
    from harness.report.writer import write_reports
    from harness.run.runner import run_suite
    from harness.run.session import finish

    say = (lambda *a: None) if quiet else _say
    for warning in prepared.model_warnings:  # shown even when quiet: a model about to retire needs action
        errors.print(Text("warning: ", style="yellow").append(warning), highlight=False, soft_wrap=True)
    for report in prepared.ingest_reports:
        say(_ingest_line(report))
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


def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, e.g. reports/retrieval/<run-id>")],
    json_out: JsonOpt = False,
) -> None:
    """Rebuild results.parquet, report.md and report.html from a run's log, and print the summary."""
    from harness.report.writer import write_reports

    view = write_reports(run_dir)
    if json_out:
        print_json(_json_summary(view))
        return
    console.print((run_dir / "report.md").read_text(encoding="utf-8"), markup=False, highlight=False)


def _json_summary(view) -> dict[str, Any]:
    from harness.report import tables

    retrieval = tables.retrieval_by_variant(view.retrieval, view.metrics, view.variants)
    out = {
        "run_dir": str(view.path),
        "manifest": view.manifest.model_dump(mode="json"),
        "retrieval": retrieval.reset_index().to_dict(orient="records"),
    }
    if not view.generation.empty:
        names = [n for n in view.answer_metric_names if n in view.generation.columns]
        summary = tables.generation_summary(view.generation, names)
        # unmeasured cells are null in JSON (pandas holds them as NaN, which JSON has no word for)
        out["generation"] = summary.astype(object).where(summary.notna(), None).to_dict(orient="records")
    return out


def nightly(
    suite: Annotated[Path, typer.Option("--suite", help="the suite to run")] = Path("suites/nightly.yaml"),
    local: Annotated[int, typer.Option("--local", min=1, help="llama.cpp servers to start for the local tier")] = 2,
    fleet: Annotated[
        Path | None, typer.Option("--fleet", help="use this fleet instead of starting local servers")
    ] = None,
    reports: ReportsOpt = Path("reports"),
    budget: Annotated[float | None, typer.Option("--budget", help="cap on cloud spend in USD")] = 2.0,
    keep_fleet: Annotated[
        bool, typer.Option("--keep-fleet", help="leave the local servers running afterwards")
    ] = False,
    store: StoreOpt = Path(".harness/index"),
    chroma_url: ChromaOpt = None,
    pricing: PricingOpt = None,
    max_failure_rate: MaxFailureRateOpt = None,
    cache: Annotated[
        bool | None,
        typer.Option(
            "--cache/--no-cache",
            help="--cache: replay answers stored in .harness/cache/ (their latency and cost are then not measured); "
            "--no-cache: neither read nor fill it. Default: the suite's `cache:`, else call every model and fill it",
            show_default=False,
        ),
    ] = None,
    cloud_model: CloudModelOpt = None,
) -> None:
    """The main job: start the local fleet, run the nightly suite (it ingests the corpus first), write the report.

    It calls every model (tonight's latency, cost and failures) and fills the response cache for later A/B runs.
    --cache, or the suite's `cache:`, replays stored answers instead.
    Exit 3 if a tier it ran answered nothing or failed more than --max-failure-rate of its calls."""
    from harness.localfleet.servers import start_local_fleet, stop_local_fleet

    if anthropic_api_key() is None:
        errors.print(
            "[yellow]ANTHROPIC_API_KEY is not set:[/] the cloud tier and the grader are skipped; "
            "the report shows retrieval, cheap answer metrics, latency, tokens and local cost."
        )
    _check_models_early(suite, fleet, pricing, cloud_model)
    started = False
    if fleet is None:
        errors.print(f"starting {local} local llama.cpp server(s)…")
        local_fleet = start_local_fleet(local)
        fleet = local_fleet.fleet_path
        started = True
    try:
        summary = _run_suite(
            suite,
            run_id=None,
            reports=reports,
            fleet=fleet,
            budget=budget,
            resume=None,
            store=store,
            chroma_url=chroma_url,
            concurrency=None,
            max_failure_rate=max_failure_rate,
            quiet=False,
            pricing=pricing,
            cache_mode=cache_mode_flag(cache),
            default_cache_mode="write-only",
            command="nightly",
            cloud_model=cloud_model,
        )
    finally:
        if started and not keep_fleet:
            stop_local_fleet()
    _fail_if_failed(summary)


def _check_models_early(suite: Path, fleet: Path | None, pricing: Path | None, cloud_model: str | None) -> None:
    """Refuse a retired model before any local server starts (the run checks again, with the fleet it started)."""
    from harness.config.fleet import load_fleet
    from harness.config.suite import load_suite
    from harness.money.costs import use_pricing
    from harness.run.model_uses import check_run_models, run_model_uses

    use_pricing(pricing)
    loaded = load_fleet(fleet) if fleet is not None else None
    check_run_models(run_model_uses(load_suite(suite), suite, loaded, fleet, cloud_model))
