"""``harness nightly``: the main job. It starts the local fleet, runs the nightly suite and writes the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.console import errors
from harness.cli.options import ChromaOpt, CloudModelOpt, MaxFailureRateOpt, PricingOpt, ReportsOpt, StoreOpt
from harness.cli.running import cache_mode_flag, fail_if_failed, run_and_report
from harness.providers.anthropic_key import anthropic_api_key


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
        summary = run_and_report(
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
    fail_if_failed(summary)


def _check_models_early(suite: Path, fleet: Path | None, pricing: Path | None, cloud_model: str | None) -> None:
    """Refuse a retired model before any local server starts (the run checks again, with the fleet it started)."""
    from harness.config.fleet import load_fleet
    from harness.config.suite import load_suite
    from harness.money.costs import use_pricing
    from harness.run.model_uses import check_run_models, run_model_uses

    use_pricing(pricing)
    loaded = load_fleet(fleet) if fleet is not None else None
    check_run_models(run_model_uses(load_suite(suite), suite, loaded, fleet, cloud_model))
