"""Render a run's report as Markdown: title, verdict, contents, then the sections. Reads the run store only."""

from __future__ import annotations

from harness.report import drift_section
from harness.report.document import Report, to_markdown
from harness.report.markdown_table import UNMEASURED, cell, table
from harness.report.sections import build_sections
from harness.report.verdict import failure_banner, verdict
from harness.store.loaded import RunView

__all__ = ["UNMEASURED", "build_report", "cell", "render", "table"]


def build_report(view: RunView) -> Report:
    # The drift analysis (bootstraps, advice) is computed once and shared by the verdict and the sections.
    analysis = drift_section.analyse(view) if not view.generation.empty else None
    return Report(
        f"{view.suite.name} — run {view.run_id}",
        verdict(view, analysis),
        build_sections(view, analysis),
        failure_banner(view),
    )


def render(view: RunView) -> str:
    return to_markdown(build_report(view))
