"""Read what the gate needs from run stores, and render its verdict as Markdown and JUnit XML.

The rules come from the suite the run recorded in its manifest, or from a suite file given on the command line.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pydantic import ValidationError

from harness.analysis.gate import GateResult, GateRun, RuleResult
from harness.config.gate import GateConfig
from harness.config.suite import load_suite
from harness.errors import ConfigError, RunStoreError
from harness.report.markdown import cell
from harness.store.loaded import RunView, load_run


def gate_run(view: RunView) -> GateRun:
    return GateRun(
        run_id=view.run_id,
        retrieval=view.retrieval,
        generation=view.generation,
        metrics=view.metrics,
        tiers={name: info.model_dump() for name, info in view.manifest.tiers.items()},
    )


def load_gate_run(path: Path) -> tuple[GateRun, RunView]:
    view = load_run(path)
    return gate_run(view), view


def gate_config(view: RunView, suite_path: Path | None) -> GateConfig:
    """The rules: from ``suite_path`` when given, else the ``gate:`` section the run recorded."""
    if suite_path is not None:
        suite = load_suite(suite_path)
        if suite.gate is None:
            raise ConfigError("the suite has no `gate:` section", path=str(suite_path), field="gate",
                              hint="add gate rules (see the README's Deploy gate section)")
        return suite.gate
    recorded = view.suite.config.get("gate")
    if not recorded:
        raise RunStoreError(
            f"{view.path / 'manifest.json'}: suite.config.gate: the run's suite had no `gate:` section",
            hint="add one to the suite and re-run, or pass --suite FILE with the rules",
        )
    try:
        return GateConfig.model_validate(recorded)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RunStoreError(
            f"{view.path / 'manifest.json'}: suite.config.gate.{where}: {first['msg']}",
            hint="pass --suite FILE with rules this version understands",
        ) from exc


def _status(rule: RuleResult) -> str:
    return "✅ pass" if rule.verdict == "pass" else "❌ fail"


def markdown_summary(result: GateResult) -> str:
    """A Markdown summary a CI system can post: verdict, a table of the rules, and each NI rule's power."""
    verdict = "PASSED" if result.passed else f"FAILED ({len(result.failed)} of {len(result.rules)} rules)"
    against = f" against baseline `{cell(result.baseline_id)}`" if result.baseline_id else ""
    out = [
        f"## Deploy gate: {verdict}\n",
        f"Run `{cell(result.run_id)}`{against}; intervals at {result.confidence:.0%} (bootstrap; failure rates "
        "Clopper–Pearson).\n",
        "| rule | kind | observed | interval | n | bound | margin | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rule in result.rules:
        interval = f"[{cell(rule.low)}, {cell(rule.high)}]" if rule.low is not None else "—"
        observed = cell(rule.observed) if rule.observed is not None else f"unmeasured: {cell(rule.reason)}"
        out.append(
            f"| {cell(rule.name)} | {rule.kind} | {observed} | {interval} | {rule.n} | {cell(rule.bound)} | "
            f"{cell(rule.margin)} | {_status(rule)} |"
        )
    claims = [rule for rule in result.rules if rule.power is not None]
    if claims:
        out.append("\n### What the non-inferiority rules can detect\n")
        out.append("Normal approximation from the observed SD of the paired differences.\n")
        out.append("| rule | n | SD of differences | A/A false-fail rate | power vs a true drop | size for 80% |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for rule in claims:
            claim = rule.power
            assert claim is not None
            size = str(claim.n_for_target) if claim.n_for_target is not None else f"none ({cell(claim.note)})"
            out.append(
                f"| {cell(rule.name)} | {claim.n} | {claim.sd:.4f} | {claim.aa_fail:.1%} | "
                f"{claim.power:.1%} (drop {claim.drop:g}) | {size} |"
            )
        notes = [f"- {cell(rule.name)}: {cell(rule.power.note)}" for rule in claims if rule.power and rule.power.note]
        out.extend(notes)
    only = [rule for rule in result.rules if rule.only_in_one]
    for rule in only:
        out.append(f"\n_{cell(rule.name)}: {rule.only_in_one} case(s) measured in only one run were not paired._")
    return "\n".join(out) + "\n"


def junit_xml(result: GateResult) -> str:
    """JUnit XML: one testsuite, one testcase per rule; a failed rule carries a <failure> with its line."""
    suite = ET.Element(
        "testsuite",
        name="harness.analysis.gate",
        tests=str(len(result.rules)),
        failures=str(len(result.failed)),
        errors="0",
        skipped="0",
    )
    for rule in result.rules:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{rule.kind}", name=rule.name)
        if rule.verdict == "fail":
            failure = ET.SubElement(case, "failure", message=rule.line(), type=rule.kind)
            failure.text = rule.line()
        out = ET.SubElement(case, "system-out")
        out.text = rule.line()
    root = ET.Element("testsuites", name="harness gate", tests=str(len(result.rules)),
                      failures=str(len(result.failed)))
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
