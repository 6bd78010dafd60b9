"""Every page of the viewer as HTML, for the server and the static bundle alike: the data each page shows, rendered
through Jinja2 with autoescaping on, so every string from a run (answers, errors, ids, suite text) stays text.

The report's Markdown (verdict, advice) is rendered with raw HTML off, as the report page does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from harness.config.criteria import CRITERIA, SCALE_MAX
from harness.store.labels import read_labels
from harness.view.case_detail import case_detail, find_record, in_tier_order, tier_order
from harness.view.catalog import Catalog, RunRef
from harness.view.diff import answer_diff, diff_runs
from harness.view.rows import GRADE_STATUSES, CaseQuery, CaseRows, Page, case_rows, select
from harness.view.summary import ReportOutline, run_summaries
from harness.view.urls import Urls

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
STATUS_KINDS = ("complete", "partial", "failed", "interrupted", "running", "created", "stale", "unreadable")
Outliner = Callable[[Any], ReportOutline | None]

_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


def _md(text: str | None) -> Markup:
    return Markup(_markdown.render(text or ""))  # noqa: S704 (raw HTML is off: markdown-it escapes it)


def _md_inline(text: str | None) -> Markup:
    return Markup(_markdown.renderInline(text or ""))  # noqa: S704


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template is HTML: escape everything that is not marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(md=_md, md_inline=_md_inline, num=_number)
    env.globals.update(CRITERIA=CRITERIA, SCALE_MAX=SCALE_MAX)
    return env


class Pages:
    """Builds each page from a catalog of runs."""

    def __init__(self, catalog: Catalog, outline: Outliner | None = None) -> None:
        self.catalog = catalog
        self.outline = outline
        self.env = environment()

    def render(self, template: str, urls: Urls, **context: Any) -> str:
        return self.env.get_template(template).render(u=urls, **context)

    def rows(self, ref: RunRef) -> CaseRows:
        return self.catalog.cached(ref, "rows", case_rows)

    # -------------------------------------------------------------------------------------------- pages

    def runs(self, urls: Urls, suite: str = "", status: str = "") -> str:
        summaries = run_summaries(self.catalog)
        suites = sorted({s.ref.suite for s in summaries})
        shown = [s for s in summaries
                 if (not suite or s.ref.suite == suite) and (not status or s.status_kind == status)]
        by_suite: dict[str, list[Any]] = {}
        for summary in shown:
            by_suite.setdefault(summary.ref.suite, []).append(summary)
        refs = [s.ref for s in summaries]
        return self.render("runs.html", urls, by_suite=by_suite, suites=suites, statuses=STATUS_KINDS,
                           suite=suite, status=status, refs=refs, total=len(summaries))

    def run(self, urls: Urls, ref: RunRef, has_report: bool) -> str:
        view = self.catalog.view(ref)
        outline = self.catalog.cached(ref, "outline", self.outline) if self.outline is not None else None
        others = [other for other in self.catalog.refs() if other.suite == ref.suite and other != ref]
        return self.render("run.html", urls, ref=ref, view=view, outline=outline, has_report=has_report,
                           others=others, labels=len(read_labels(self.catalog.path(ref))))

    def cases(self, urls: Urls, ref: RunRef, query: CaseQuery, *, everything: bool = False) -> str:
        rows = self.rows(ref)
        page = select(rows, query, page_size=max(len(rows.frame), 1)) if everything else select(rows, query)
        return self.render("cases.html", urls, ref=ref, rows=rows, page=page, query=query,
                           grade_statuses=GRADE_STATUSES)

    def case(self, urls: Urls, ref: RunRef, case_id: str, variant: str) -> str:
        view = self.catalog.view(ref)
        record = find_record(view, case_id, variant)
        detail = case_detail(view, record, read_labels(self.catalog.path(ref)))
        return self.render("case.html", urls, ref=ref, detail=detail, index=view.records.index(record))

    def diff(self, urls: Urls, a: RunRef, b: RunRef) -> str:
        view_a, view_b = self.catalog.view(a), self.catalog.view(b)
        result = diff_runs(view_a, view_b)
        index = {record.key: i for i, record in enumerate(view_b.records)}
        return self.render("diff.html", urls, a=a, b=b, diff=result, index=index)

    def diff_case(self, urls: Urls, a: RunRef, b: RunRef, case_id: str, variant: str) -> str:
        view_a, view_b = self.catalog.view(a), self.catalog.view(b)
        left, right = find_record(view_a, case_id, variant), find_record(view_b, case_id, variant)
        tiers = []
        for tier in in_tier_order(list(dict.fromkeys([*left.generations, *right.generations])), tier_order(view_b)):
            ga, gb = left.generations.get(tier), right.generations.get(tier)
            text_a = (ga.text or ga.error or ga.reason or "") if ga is not None else ""
            text_b = (gb.text or gb.error or gb.reason or "") if gb is not None else ""
            segments_a, segments_b = answer_diff(text_a, text_b)
            tiers.append({"tier": tier, "a": ga, "b": gb, "segments_a": segments_a, "segments_b": segments_b})
        return self.render("diff_case.html", urls, a=a, b=b, left=left, right=right, tiers=tiers,
                           index_a=view_a.records.index(left), index_b=view_b.records.index(right))

    def error(self, urls: Urls, message: str, hint: str, status: int) -> str:
        return self.render("error.html", urls, message=message, hint=hint, status=status)


__all__ = ["STATIC", "Page", "Pages"]
