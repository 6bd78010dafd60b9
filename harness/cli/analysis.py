"""Commands that read run stores only, never a model: gate, compare, history, merge."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.console import console, errors, print_json
from harness.cli.options import JsonOpt, ReportsOpt

RunArg = Annotated[Path, typer.Argument(help="a run directory, e.g. reports/nightly/<run-id>", show_default=False)]

GATE_FAILED = 1
DRIFT_ALARM = 4
RUN_INCOMPLETE = 3


def register(app: typer.Typer) -> None:
    app.command()(gate)
    app.command()(compare)
    app.command()(history)
    app.command()(merge)
    app.command()(judge)


def judge(run: RunArg, json_out: JsonOpt = False) -> None:
    """How far the grader agrees with people's labels (kappa, alpha, pass/fail rates, bias per tier, self-preference)
    and with a second judge (kappa, alpha, each judge's gap per category, the difference of gaps)."""
    from harness.report.judge_section import analyse_judge, analyse_judges, judge_markdown, judges_markdown
    from harness.store.loaded import load_run

    view = load_run(run)
    result = analyse_judge(view)
    comparisons = analyse_judges(view)
    if json_out:
        print_json({"run_dir": str(run), "labelled": result is not None,
                    "agreement": asdict(result) if result is not None else None,
                    "judges": [asdict(c) for c in comparisons]})
        return
    console.print(judge_markdown(result) + judges_markdown(comparisons), markup=False, highlight=False,
                  soft_wrap=True)


def gate(
    run: RunArg,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="run directory to hold non-inferiority rules against")
    ] = None,
    suite: Annotated[
        Path | None, typer.Option("--suite", help="take the gate: rules from this suite file, not from the run")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="JUnit XML path (default RUN/gate.junit.xml)")] = None,
    summary: Annotated[Path | None, typer.Option("--summary", help="Markdown path (default RUN/gate.md)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a run against the suite's gate: rules. Exit 0 pass, 1 a rule failed, 2 bad input."""
    from harness.analysis.gate import evaluate
    from harness.report.gate_report import gate_config, junit_xml, load_gate_run, markdown_summary
    from harness.store.store import atomic_write_text

    candidate, view = load_gate_run(run)
    config = gate_config(view, suite)
    reference = load_gate_run(baseline)[0] if baseline is not None else None
    result = evaluate(config, candidate, reference)
    atomic_write_text(junit or run / "gate.junit.xml", junit_xml(result))
    atomic_write_text(summary or run / "gate.md", markdown_summary(result))
    if json_out:
        print_json({"passed": result.passed, **asdict(result)})
    else:
        for rule in result.rules:
            console.print(rule.line(), markup=False, highlight=False, soft_wrap=True)
            if rule.power is not None:
                claim = rule.power
                size = claim.n_for_target if claim.n_for_target is not None else f"none ({claim.note})"
                console.print(
                    f"      power: A/A false-fail {claim.aa_fail:.1%}, a true drop of {claim.drop:g} fails "
                    f"{claim.power:.1%} of the time at n={claim.n}; n for {claim.target_power:.0%}: {size}",
                    markup=False, highlight=False, soft_wrap=True,
                )
        verdict = "PASSED" if result.passed else f"FAILED: {len(result.failed)} of {len(result.rules)} rules"
        console.print(f"gate {verdict}", markup=False, highlight=False)
    if not result.passed:
        raise typer.Exit(GATE_FAILED)


def compare(
    run_a: Annotated[Path, typer.Argument(help="run directory A (the reference)", show_default=False)],
    run_b: Annotated[Path, typer.Argument(help="run directory B (effects are B - A)", show_default=False)],
    allow_different: Annotated[
        bool, typer.Option("--allow-different", help="compare the shared cases even of different suites/corpora")
    ] = False,
    resamples: Annotated[int, typer.Option("--resamples", min=200, help="bootstrap and permutation draws")] = 5000,
    json_out: JsonOpt = False,
) -> None:
    """Paired comparison of two runs: effect with 95% CI, McNemar or sign-flip test, Holm, MDE, per category."""
    from harness.analysis.compare import compare as compare_runs
    from harness.report.compare_markdown import render_markdown
    from harness.store.loaded import load_run

    comparison = compare_runs(load_run(run_a), load_run(run_b), allow_different=allow_different,
                              resamples=resamples)
    if json_out:
        print_json(comparison.as_dict())
        return
    console.print(render_markdown(comparison), markup=False, highlight=False, soft_wrap=True)


def history(
    suite: Annotated[str, typer.Argument(help="suite name or file, e.g. nightly or suites/nightly.yaml")],
    reports: Annotated[Path, typer.Option("--reports", help="where run directories are")] = Path("reports"),
    window: Annotated[int, typer.Option("--window", min=2, help="earlier runs the control limits come from")] = 10,
    limit: Annotated[float, typer.Option("--limit", min=0.5, help="control limit, in EWMA standard deviations")] = 3.0,
    lam: Annotated[float, typer.Option("--lambda", min=0.01, max=1.0, help="EWMA weight of the newest run")] = 0.3,
    out: Annotated[Path | None, typer.Option("--out", help="chart directory (default reports/<suite>)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Headline metrics across runs, a PNG/SVG chart, and a drift alarm on the latest run (exit 4)."""
    from harness.analysis.history import collect, drift_frame, judge
    from harness.report.history_chart import history_chart
    from harness.report.history_markdown import render_markdown
    from harness.store.store import atomic_write_bytes

    name = _suite_name(suite)
    found = judge(collect(reports, name), window=window, limit=limit, lam=lam)
    chart = history_chart(found)
    target = out or reports / name
    if chart is not None:
        atomic_write_bytes(target / "history.png", chart[0])
        atomic_write_bytes(target / "history.svg", chart[1])
    alarms = found.alarms
    if json_out:
        print_json({
            "suite": name,
            "runs": found.table.reset_index().to_dict(orient="records"),
            "replays": found.replay_rows(),
            "drift": drift_frame(found).to_dict(orient="records"),
            "left_out": found.left_out,
            "alarm": bool(alarms),
        })
    else:
        console.print(render_markdown(found), markup=False, highlight=False, soft_wrap=True)
        if chart is not None:
            console.print(f"chart: {target / 'history.png'} and history.svg", markup=False, highlight=False)
    if alarms:
        for series, drift in alarms.items():
            errors.print(
                f"drift alarm: {series} is {drift.latest:.4f} in the latest run; its EWMA {drift.ewma:.4f} left "
                f"the control band [{drift.low:.4f}, {drift.high:.4f}] of the previous {drift.runs_used} runs",
                markup=False, highlight=False, soft_wrap=True,
            )
        raise typer.Exit(DRIFT_ALARM)


def _suite_name(suite: str) -> str:
    """A suite file gives its name (or its stem); anything else is taken as the name."""
    path = Path(suite)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from harness.config.suite import load_suite

        return load_suite(path).name
    return suite


def merge(
    runs: Annotated[list[Path], typer.Argument(help="the shard run directories", show_default=False)],
    run_id: Annotated[str | None, typer.Option("--run-id", help="name of the merged run (default: UTC time)")] = None,
    reports: ReportsOpt = Path("reports"),
    json_out: JsonOpt = False,
) -> None:
    """Join the shard runs of one suite into one run; refuse different suites/corpora/configs and duplicates."""
    from harness.report.writer import write_reports
    from harness.run.session import new_run_id
    from harness.store.merge import merge_runs
    from harness.store.store import RunStore

    first = RunStore.open(runs[0]).manifest() if runs else None
    suite = first.suite.name if first is not None and first.suite is not None else "unknown"
    result = merge_runs(runs, reports / suite / (run_id or new_run_id()))
    write_reports(result.run_dir)
    if json_out:
        print_json({**asdict(result), "run_dir": str(result.run_dir)})
    else:
        console.print(
            f"merged {len(result.shards)} shard(s) into {result.run_dir}: {result.records} of {result.expected} "
            f"records, {result.status}",
            markup=False, highlight=False, soft_wrap=True,
        )
    if result.missing:
        shown = ", ".join(result.missing[:20]) + (f", … {len(result.missing) - 20} more" if len(result.missing) > 20
                                                  else "")
        errors.print(f"missing: {shown}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(RUN_INCOMPLETE)
