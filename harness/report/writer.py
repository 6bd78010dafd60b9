"""Write a run's derived files atomically: results.parquet, report.md, report.html."""

from __future__ import annotations

import io
from pathlib import Path

from harness.report.document import to_markdown
from harness.report.html_page import to_html
from harness.report.markdown import build_report
from harness.store import frames
from harness.store.loaded import RunView, load_run
from harness.store.store import RESULTS, atomic_write_bytes, atomic_write_text


def write_reports(run_dir: Path) -> RunView:
    """Rebuild every derived file of a run from its log; safe to call again on old runs."""
    view = load_run(run_dir)
    results = frames.results_frame(view.records, view.metrics, view.answer_metric_names)
    buffer = io.BytesIO()
    results.to_parquet(buffer, index=False)
    atomic_write_bytes(run_dir / RESULTS, buffer.getvalue())
    report = build_report(view)
    atomic_write_text(run_dir / "report.md", to_markdown(report))
    atomic_write_text(run_dir / "report.html", to_html(report))
    return view
