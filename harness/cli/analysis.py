"""Commands that read run stores only, never a model: gate, compare, history, merge."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.console import console, print_json

RunArg = Annotated[Path, typer.Argument(help="a run directory, e.g. reports/nightly/<run-id>", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]

GATE_FAILED = 1


def register(app: typer.Typer) -> None:
    app.command()(gate)
    app.command()(compare)


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
    from harness.gate import evaluate
    from harness.report.gate_report import gate_config, junit_xml, load_gate_run, markdown_summary
    from harness.run.store import atomic_write_text

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
    from harness.report.compare import compare as compare_runs
    from harness.report.compare import render_markdown
    from harness.report.model import load_run

    comparison = compare_runs(load_run(run_a), load_run(run_b), allow_different=allow_different,
                              resamples=resamples)
    if json_out:
        print_json(comparison.as_dict())
        return
    console.print(render_markdown(comparison), markup=False, highlight=False, soft_wrap=True)
