"""``harness view --export DIR RUN_DIR...``: the viewer's pages as a static bundle (HTML, JSON and the two asset
files) that opens from disk or any static host, for a CI job's artifacts. Labelling is left out.

Layout (every link relative, so the bundle can move)::

    index.html                                    the runs
    runs.json                                     the runs page's data
    assets/view.js, assets/view.css
    runs/<suite>/<run>/index.html                 the run: verdict, advice, report sections
    runs/<suite>/<run>/report.html                the run's report, copied
    runs/<suite>/<run>/cases.html, cases.json     every row; the page filters, sorts and pages them in the browser
    runs/<suite>/<run>/case/<n>.html              one case (n: the record's position, never its id)
    diff/<n>.html, diff/<n>/<m>.html              each run against the one before it in the same suite
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.store.labels import read_labels
from harness.store.store import atomic_write_text
from harness.view.catalog import Catalog, RunRef
from harness.view.diff import diff_runs
from harness.view.pages import STATIC, Outliner, Pages, PassageLoader
from harness.view.rows import CaseQuery, export_rows
from harness.view.summary import run_summaries
from harness.view.urls import StaticUrls


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def _json(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=str, allow_nan=False) + "\n"


def _pairs(refs: list[RunRef]) -> dict[tuple[RunRef, RunRef], int]:
    """Each run against the run before it in its suite (by run id): the comparison a CI artifact is opened for."""
    out: dict[tuple[RunRef, RunRef], int] = {}
    for before, after in zip(refs, refs[1:], strict=False):
        if before.suite == after.suite:
            out[(before, after)] = len(out)
    return out


def export_bundle(out: Path, run_dirs: list[Path], outline: Outliner | None = None,
                  passages: PassageLoader | None = None) -> list[Path]:
    """Write the bundle; returns the pages written."""
    catalog = Catalog.of_runs(run_dirs)
    pages = Pages(catalog, outline, passages)
    refs = catalog.refs()
    pairs = _pairs(refs)
    urls = StaticUrls(0, pairs)
    written: list[Path] = []

    def page(path: Path, html: str) -> None:
        _write(out / path, html)
        written.append(out / path)

    (out / "assets").mkdir(parents=True, exist_ok=True)
    for name in ("view.js", "view.css"):
        shutil.copyfile(STATIC / name, out / "assets" / name)
    page(Path("index.html"), pages.runs(urls))
    _write(out / "runs.json", _json([asdict(summary) for summary in run_summaries(catalog)]))

    for ref in refs:
        base = Path("runs", ref.suite, ref.run_id)
        report = catalog.path(ref) / "report.html"
        page(base / "index.html", pages.run(urls.at(3), ref, has_report=report.is_file()))
        if report.is_file():
            shutil.copyfile(report, out / base / "report.html")
        page(base / "cases.html", pages.cases(urls.at(3), ref, CaseQuery(), everything=True))
        _write(out / base / "cases.json", _json(export_rows(pages.rows(ref))))
        view = catalog.view(ref)
        labels = read_labels(catalog.path(ref))
        for index, record in enumerate(view.records):
            page(base / "case" / f"{index}.html", pages.case_page(urls.at(4), ref, record, index, labels))

    for (a, b), number in pairs.items():
        page(Path("diff", f"{number}.html"), pages.diff(urls.at(1), a, b))
        view_b = catalog.view(b)
        changed = diff_runs(catalog.view(a), view_b).changed
        position = {record.key: i for i, record in enumerate(view_b.records)}
        for change in changed:
            html = pages.diff_case(urls.at(2), a, b, change.case_id, change.variant)
            page(Path("diff", str(number), f"{position[(change.case_id, change.variant)]}.html"), html)
    return written
