"""The eval commands ingest, run and report, and the registration of every command on the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.console import console, print_json
from harness.cli.nightly import nightly
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
from harness.cli.ray_flag import leave_ray, ray_options
from harness.cli.running import cache_mode_flag, fail_if_failed, ingest_line, run_and_report


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

    ray_settings = ray_options(ray, chroma_url, batch_size=ray_batch_size)
    loaded_suite, corpus = load_suite_and_corpus(suite)
    try:
        setup = prepare_retrieval(loaded_suite, corpus, store, chroma_url, ray_settings)
    finally:
        leave_ray(ray_settings)
    if json_out:
        reports = [report.as_dict() for report in setup.reports]
        print_json(
            {"corpus": corpus.name, "documents": len(corpus.ids), "collections": reports, "variants": setup.info}
        )
        return
    for report in setup.reports:
        console.print(ingest_line(report))


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
    summary = run_and_report(
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
        ray=ray_options(ray, chroma_url, batch_size=ray_batch_size, case_batch=ray_case_batch),
        cloud_model=cloud_model,
    )
    if json_out:
        print_json(summary)
    fail_if_failed(summary)


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
