"""``harness fleet bench``: open-loop Poisson load on the fleet, per strategy and rate; the knee of each strategy,
one box against the fleet, the cloud delta with a key, and a recommendation for a daily volume."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast, get_args

import typer
from rich.table import Table

from harness.cli.console import RichProgress, console, print_json
from harness.cli.fleet import FleetOpt, _harness_errors, fleet_file, warn_models
from harness.cli.options import JsonOpt, QuietOpt
from harness.config.fleet import Fleet, Strategy, load_fleet
from harness.errors import InputError
from harness.providers.anthropic_key import anthropic_api_key
from harness.providers.base import Provider

if TYPE_CHECKING:
    from harness.capacity.sweep import BenchResult

DEFAULT_PROMPTS = Path("suites/nightly.yaml")
DEFAULT_STRATEGIES = "single,race,hedge,least_loaded,auto"
RATE_STEPS = 8  # points between max-rate/8 and max-rate


def parse_strategies(text: str) -> tuple[Strategy, ...]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = get_args(Strategy)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise InputError(
            f"--strategies: unknown strategy {', '.join(map(repr, unknown)) or '(none given)'}",
            hint=f"a comma-separated list of: {', '.join(known)}",
        )
    return tuple(cast(Strategy, name) for name in dict.fromkeys(names))


def parse_rates(rates: str | None, max_rate: float | None) -> tuple[float, ...]:
    """``--rates`` as given, or ``RATE_STEPS`` even steps up to ``--max-rate``, or () for the default sweep."""
    if rates is not None and max_rate is not None:
        raise InputError("--rates and --max-rate both given", hint="pass one of them")
    if max_rate is not None:
        if max_rate <= 0:
            raise InputError(f"--max-rate {max_rate:g} must be positive", hint="calls per second, e.g. --max-rate 20")
        return tuple(round(max_rate * step / RATE_STEPS, 4) for step in range(1, RATE_STEPS + 1))
    if rates is None:
        return ()
    try:
        values = tuple(sorted({float(part) for part in rates.split(",") if part.strip()}))
    except ValueError:
        raise InputError(f"--rates {rates!r}: not a list of numbers", hint="e.g. --rates 2,5,10,20") from None
    if not values or values[0] <= 0:
        raise InputError(f"--rates {rates!r}: rates must be positive calls/s", hint="e.g. --rates 2,5,10,20")
    return values


def _cloud_factory(fleet: Fleet, cloud_calls: int) -> Callable[[], Provider] | None:
    """The cloud provider's constructor when a key is set and cloud calls are wanted (the key is never printed)."""
    if cloud_calls <= 0 or anthropic_api_key() is None:
        return None

    def make() -> Provider:
        from harness.providers.anthropic_cloud import AnthropicProvider

        return AnthropicProvider(fleet.cloud_model, timeout_s=fleet.timeout_s)

    return make


def bench(
    fleet: FleetOpt = None,
    strategies: Annotated[str, typer.Option("--strategies", help="comma-separated strategies to sweep")] = (
        DEFAULT_STRATEGIES
    ),
    rates: Annotated[str | None, typer.Option("--rates", help="offered calls/s, comma-separated")] = None,
    max_rate: Annotated[
        float | None, typer.Option("--max-rate", help=f"sweep {RATE_STEPS} even steps up to this many calls/s")
    ] = None,
    duration: Annotated[float, typer.Option("--duration", min=1, help="seconds of load per point")] = 20.0,
    max_calls: Annotated[int, typer.Option("--max-calls", min=1, help="most calls per point")] = 2000,
    slo: Annotated[float | None, typer.Option("--slo", min=0.001, help="p99 bound in seconds (default: 2x the "
                                              "unloaded p50, or the fleet file's capacity.slo_s)")] = None,
    prompts: Annotated[Path, typer.Option("--prompts", help="suite whose generation cases are the prompts")] = (
        DEFAULT_PROMPTS
    ),
    volume: Annotated[float | None, typer.Option("--volume", min=1, help="calls per day, for a recommendation "
                                                 "(default: the fleet file's capacity.volume)")] = None,
    peak_factor: Annotated[float | None, typer.Option("--peak-factor", min=1, help="peak rate over the daily "
                                                      "average (default: capacity.peak_factor, else 3)")] = None,
    one_box: Annotated[bool, typer.Option("--one-box/--no-one-box", help="also load the first host alone")] = True,
    cloud_calls: Annotated[int, typer.Option("--cloud-calls", min=0, help="paired prompts for the cloud latency "
                                             "delta (needs ANTHROPIC_API_KEY; billed)")] = 10,
    grace: Annotated[float | None, typer.Option("--grace", min=0, help="seconds after a point's last due call "
                                                "before open calls are cut off as failures (default: the fleet's "
                                                "timeout_s)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="directory for capacity.json and capacity.png "
                                             "(default: reports/capacity/<time>)")] = None,
    store_dir: Annotated[Path, typer.Option("--store-dir", help="index store for building the prompts")] = Path(
        ".harness/index"
    ),
    seed: Annotated[int, typer.Option("--seed", help="seeds the Poisson schedules")] = 0,
    baseline_calls: Annotated[int, typer.Option("--baseline-calls", min=1, help="calls, one at a time, that "
                                                "measure the unloaded latency")] = 30,
    warmup_calls: Annotated[int, typer.Option("--warmup-calls", min=0, help="unmeasured calls before each "
                                              "series")] = 20,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Offer open-loop Poisson load to the fleet at each rate, per strategy; report latency percentiles, throughput,
    failures, requests per call and busy share, the knee of each strategy, and where one box stops being enough.

    Latency runs from each call's scheduled time, so queueing counts. Every point is bounded by --duration,
    --max-calls and --grace; the whole sweep's upper bound is printed before it starts.
    """
    from harness.capacity.output import write_outputs
    from harness.capacity.prompts import suite_prompts
    from harness.capacity.sweep import DEFAULT_FRACTIONS, Sweep, SweepConfig, max_duration_s
    from harness.run.model_uses import check_run_models, cloud_model_use

    with _harness_errors():
        source = fleet_file(fleet)
        fleet_config = load_fleet(source)
        warn_models(check_run_models([cloud_model_use(fleet_config, source, None, "cloud delta and fallback")]))
        plan = fleet_config.capacity
        chosen = parse_strategies(strategies)
        config = SweepConfig(
            strategies=chosen,
            rates=parse_rates(rates, max_rate),
            duration_s=duration,
            max_calls=max_calls,
            grace_s=fleet_config.timeout_s if grace is None else grace,
            slo_s=slo if slo is not None else (plan.slo_s if plan else None),
            one_box=one_box and len(fleet_config.hosts) > 1,
            cloud_calls=cloud_calls,
            seed=seed,
            baseline_calls=baseline_calls,
            warmup_calls=warmup_calls,
        )
        prompt_set = suite_prompts(prompts, fleet_config, store_dir=store_dir)
        daily = volume if volume is not None else (plan.volume if plan else None)
        peak = peak_factor if peak_factor is not None else (plan.peak_factor if plan else 3.0)
        series = len(chosen) + (1 if config.one_box else 0)
        points = len(config.rates) or len(DEFAULT_FRACTIONS)
        if not json_out:
            console.print(
                f"fleet {source}: {len(fleet_config.hosts)} host(s); {series} series x {points} rate(s); "
                f"prompts: {len(prompt_set.local)} generation cases of {prompt_set.suite} ({prompt_set.variant}); "
                f"at most {max_duration_s(config, series, points) / 60:.0f} min",
                markup=False, highlight=False,
            )
        cloud = _cloud_factory(fleet_config, cloud_calls)
        sweep = Sweep(
            fleet_config, prompt_set.local, config,
            progress=None, prompts_info={"suite": prompt_set.suite, "variant": prompt_set.variant,
                                         "cases": len(prompt_set.case_ids)},
            cloud=cloud,
            cloud_requests=prompt_set.cloud,
        )
        with RichProgress(enabled=not quiet and not json_out) as progress:
            sweep.progress = progress
            result = asyncio.run(sweep.run(volume_per_day=daily, peak_factor=peak))
        answered = sum(p.answered for p in result.points)
        directory = out or Path("reports") / "capacity" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        json_path, chart_path = write_outputs(result, directory, title=f"fleet bench: {source.name}")
        if answered == 0:
            from harness.errors import HarnessError

            raise HarnessError(
                "no call was answered at any load point",
                hint="check the hosts with `harness fleet status`; results are in " + str(json_path),
            )
    if json_out:
        from harness.capacity.output import result_json

        print_json(result_json(result))
        return
    _print_result(result, json_path, chart_path)


def _print_result(result: BenchResult, json_path: Path, chart_path: Path) -> None:
    """The sweep as a table of load points, then the knees, one box against the fleet, the cloud, the recommendation."""
    from harness.capacity.output import estimate_cell, ms
    from harness.capacity.sweep import ONE_BOX

    console.print(_points_table(result), markup=False)
    console.print(f"unloaded p50 (one host, one call at a time): {estimate_cell(result.unloaded_p50)} ms, "
                  f"n={result.unloaded_p50.n}", markup=False, highlight=False)
    for knee in result.knees:
        where = "below the lowest rate" if knee.rate is None else f"{knee.rate:g} calls/s (p99 {ms(knee.p99_s)} ms)"
        console.print(f"knee  {knee.strategy:<16} {where}" + (f"; {knee.note}" if knee.note else ""),
                      markup=False, highlight=False)
    auto, race = result.knee("auto"), result.knee("race")
    if auto and race and auto.rate and race.rate:
        console.print(f"auto's knee / race's knee: {auto.rate / race.rate:.2f}", markup=False, highlight=False)
    if result.bottleneck is not None:
        b = result.bottleneck
        one = "below the lowest rate" if b.one_box_knee is None else f"{b.one_box_knee:g} calls/s"
        fleet_part = (
            "" if b.fleet_knee is None else f"; the fleet holds it to {b.fleet_knee:g} calls/s ({b.fleet_strategy})"
        )
        console.print(f"one box ({ONE_BOX}) holds the SLO up to {one}"
                      + ("" if b.one_box_breaks_at is None else f", breaks at {b.one_box_breaks_at:g} calls/s")
                      + fleet_part, markup=False, highlight=False)
    if result.cloud is not None:
        c = result.cloud
        console.print(f"cloud - fleet latency, paired over {c.n} prompts: {ms(c.mean_delta_s)} ms "
                      f"[{ms(c.low_s)}, {ms(c.high_s)}] ({c.confidence:.0%} CI); p50 fleet {ms(c.fleet_p50_s)} ms, "
                      f"cloud {ms(c.cloud_p50_s)} ms", markup=False, highlight=False)
    elif result.cloud_note:
        console.print(result.cloud_note, markup=False, highlight=False)
    if result.recommendation is not None:
        console.print(f"recommendation: {result.recommendation.reason}", markup=False, highlight=False)
    console.print(f"wrote {json_path} and {chart_path}", markup=False, highlight=False)


def _points_table(result: BenchResult) -> Table:
    """One row per load point: offered and achieved rate, latency percentiles with intervals, failures, load."""
    from harness.capacity.output import busy_cell, estimate_cell

    table = Table(title=f"offered load, SLO p99 <= {result.slo_s * 1000:.0f} ms ({result.slo_source}); "
                  "ms with 95% CI", title_justify="left")
    for column in ("strategy", "offered/s", "achieved/s", "p50", "p95", "p99", "fail % [CI]", "req/call",
                   "busy share", "n"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for point in result.points:
        fail = point.failure_rate
        fail_cell = "-" if fail.estimate is None else (
            f"{fail.estimate * 100:.1f} [{(fail.low or 0) * 100:.1f}, {(fail.high or 0) * 100:.1f}]")
        rpc = "-" if point.requests_per_call is None else f"{point.requests_per_call:.2f}"
        table.add_row(point.strategy, f"{point.offered_rate:g}", f"{point.throughput:.2f}",
                      estimate_cell(point.latency["p50"]), estimate_cell(point.latency["p95"]),
                      estimate_cell(point.latency["p99"]), fail_cell, rpc, busy_cell(point), str(point.calls))
    return table
