"""Render a run's report as Markdown: title, verdict, contents, then the sections. Reads the run store only."""

from __future__ import annotations

from harness.report import drift_section, ladder_section
from harness.report.document import Report, to_markdown
from harness.report.markdown_table import UNMEASURED, cell, table
from harness.report.sections import build_sections
from harness.report.verdict import failure_banner, verdict
from harness.store.loaded import RunView

__all__ = ["UNMEASURED", "build_report", "cell", "render", "table"]


def build_report(view: RunView) -> Report:
    # The drift analysis (bootstraps, advice) is computed once and shared by the verdict and the sections.
    # A ladder of named tiers has its own advice, drift and cost sections, in place of the local-vs-cloud ones.
    ladder = ladder_section.is_ladder_run(view) and not view.generation.empty
    analysis = drift_section.analyse(view) if not view.generation.empty and not ladder else None
    sections = build_sections(view, analysis)
    if ladder:
        sections = ladder_section.sections(view) + sections
    return Report(
        f"{view.suite.name} — run {view.run_id}",
        verdict(view, analysis),
        sections,
        failure_banner(view),
    )


def render(view: RunView) -> str:
    return to_markdown(build_report(view))
