"""Write a run's derived files atomically: results.parquet, report.md, report.html."""

from __future__ import annotations

import io
from pathlib import Path

from markdown_it import MarkdownIt

from harness.report import charts, drift_charts, drift_section, frames, markdown, tables
from harness.report.escape import html_text
from harness.report.model import RunView, load_run
from harness.run.store import RESULTS, atomic_write_bytes, atomic_write_text

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}code{background:#f5f5f5;padding:0 3px}
img{max-width:100%}
"""


def write_reports(run_dir: Path) -> RunView:
    """Rebuild every derived file of a run from its log; safe to call again on old runs."""
    view = load_run(run_dir)
    results = frames.results_frame(view.records, view.metrics, view.answer_metric_names)
    buffer = io.BytesIO()
    results.to_parquet(buffer, index=False)
    atomic_write_bytes(run_dir / RESULTS, buffer.getvalue())
    text = markdown.render(view)
    atomic_write_text(run_dir / "report.md", text)
    atomic_write_text(run_dir / "report.html", _html(view, text))
    return view


def _html(view: RunView, text: str) -> str:
    # Raw HTML off: every untrusted string in the Markdown is escaped already, and no HTML passes through at all.
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    images = []
    if not view.retrieval.empty:
        headline = tables.headline_metric(view.metrics)
        bars = charts.category_bars(tables.by_category(view.retrieval, headline, view.variants), headline)
        if bars:
            images.append(bars)
    if not view.generation.empty:
        boxes = charts.latency_boxes(view.generation)
        if boxes:
            images.append(boxes)
        images += drift_charts.figures(drift_section.analyse(view))
    figures = "".join(f'<p><img alt="chart" src="data:image/png;base64,{png}"></p>' for png in images)
    title = html_text(f"{view.suite.name} — {view.run_id}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style></head>"
        f"<body>{figures}{body}</body></html>\n"
    )
