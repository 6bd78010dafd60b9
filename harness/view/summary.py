"""What the runs page shows of each run: status (stale and interrupted included), date, tiers, headline figures and
verdict; and the report outline the run page links to.

Headline figures come from :func:`harness.analysis.history.run_series` (the numbers run history plots), each with a
95% normal interval from its standard error, or alone when it has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.analysis.history import headline_metric, run_series
from harness.errors import HarnessError
from harness.store.loaded import RunView
from harness.view.catalog import Catalog, RunRef

Z95 = 1.959964


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
    records: int = 0
    error: str | None = None

    @property
    def status_kind(self) -> str:
        """The status's first word (``stale (pid 7 is gone)`` -> ``stale``), for the status filter."""
        return self.status.split(" ", 1)[0]


def _value(value: float, se: float | None) -> str:
    if se is None or se != se:  # no standard error (one case), or NaN
        return f"{value:.3f} (no interval: one case)"
    return f"{value:.3f} ± {Z95 * se:.3f}"


def summarise(ref: RunRef, view: RunView) -> RunSummary:
    m = view.manifest
    summary = RunSummary(ref, view.status, m.started_at, records=len(view.records))
    summary.tiers = [tier if info.status == "run" else f"{tier} (skipped)" for tier, info in m.tiers.items()]
    if m.suite is not None:
        values, errors = run_series(view)
        wanted = headline_metric(view.metrics) if view.metrics else None
        for name, value in values.items():
            if (wanted and name.startswith(f"{wanted}[")) or name.startswith("gap["):
                summary.headline.append((name, _value(value, errors.get(name))))
    if m.verdict is not None:
        summary.verdict, summary.reasons = m.verdict.status, list(m.verdict.reasons)
    return summary


def run_summaries(catalog: Catalog) -> list[RunSummary]:
    out = []
    for ref in catalog.refs():
        try:
            out.append(catalog.cached(ref, "summary", lambda view, ref=ref: summarise(ref, view)))  # type: ignore[misc]
        except HarnessError as exc:
            out.append(RunSummary(ref, "unreadable", error=exc.message))
    return out
