"""What the runs page shows of each run: status (stale and interrupted included), date, tiers, headline figures and
verdict; and the report outline the run page links to.

The runs page reads each run's manifest only, never its records: a folder of big runs lists at once. Headline
figures (:mod:`harness.view.figures`: the headline metric per variant and the graded local − cloud gap, each with a
95% interval from its standard error) come from the run's cases table when it has been built, in this viewer or
filed on disk beside the run; a run not opened yet says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.store.records import Manifest
from harness.store.store import RunStore
from harness.view.catalog import Catalog, RunRef
from harness.view.figures import Figure
from harness.view.row_index import indexed_figures


@dataclass(frozen=True)
class ReportOutline:
    """The report's verdict lines and sections (Markdown, escaped already), given by the caller that can build a
    report; the viewer shows the verdict and the advice and links to each section of ``report.html``."""

    verdict: list[str]
    banner: str | None
    advice: str | None  # the Tiering advice section's Markdown
    sections: list[tuple[str, str, int]]  # title, anchor, level


@dataclass
class RunSummary:
    ref: RunRef
    status: str
    started_at: str | None = None
    tiers: list[str] = field(default_factory=list)
    headline: list[tuple[str, str]] = field(default_factory=list)  # series name, value text
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    records: int | None = None  # as the manifest counts them (None while a run has not said)
    figures_known: bool = False  # False: the run's cases table has not been built yet
    error: str | None = None

    @property
    def status_kind(self) -> str:
        """The status's first word (``stale (pid 7 is gone)`` -> ``stale``), for the status filter."""
        return self.status.split(" ", 1)[0]


def summarise(ref: RunRef, path: Path, manifest: Manifest, figures: list[Figure] | None) -> RunSummary:
    m = manifest
    summary = RunSummary(ref, RunStore(path).live_status(m), m.started_at, records=m.records_written)
    summary.tiers = [tier if info.status == "run" else f"{tier} (skipped)" for tier, info in m.tiers.items()]
    summary.figures_known = figures is not None
    summary.headline = [(figure.name, figure.text) for figure in figures or []]
    if m.verdict is not None:
        summary.verdict, summary.reasons = m.verdict.status, list(m.verdict.reasons)
    return summary


def run_summaries(catalog: Catalog) -> list[RunSummary]:
    out = []
    for ref in catalog.refs():
        try:
            path = catalog.path(ref)
            manifest = catalog.manifest(ref)
            built = catalog.rows_ready(ref)
            figures = built.figures if built is not None else indexed_figures(path)
            out.append(summarise(ref, path, manifest, figures))
        except HarnessError as exc:
            out.append(RunSummary(ref, "unreadable", error=exc.message))
    return out
