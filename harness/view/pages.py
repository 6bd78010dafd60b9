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
from harness.errors import InputError
from harness.grading.passages import Passages
from harness.store.labels import AnswerKey, LabelRecord, read_labels
from harness.store.records import CaseRecord, Manifest
from harness.store.scan import count_records, read_record_at
from harness.store.store import CASES, RunStore
from harness.view.case_detail import VERDICT_MARKS, case_detail, find_record
from harness.view.catalog import Catalog, NotFound, RunRef
from harness.view.diff import answer_diff, diff_runs
from harness.view.ladder import in_tier_order, tier_order
from harness.view.row_index import index_metadata
from harness.view.rows import FAILURES, GRADE_STATUSES, CaseQuery, CaseRows, Page, preview_rows, select
from harness.view.summary import ReportOutline, run_summaries
from harness.view.urls import Urls

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
STATUS_KINDS = ("complete", "partial", "failed", "interrupted", "running", "created", "stale", "unreadable")
Outliner = Callable[[Any], ReportOutline | None]
PassageLoader = Callable[[Path, Manifest], Passages]
"""Rebuilds a run's passages from its suite and corpus (given by the command, which may load a corpus)."""
FIRST_PAGE_WAIT_S = 0.5  # how long the first page of a big run waits for its table before showing a preview
SMALL_RUN_BYTES = 2 << 20  # a run this small (cases.jsonl) is tabled on the spot: no preview, figures at once

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
    env.globals.update(CRITERIA=CRITERIA, SCALE_MAX=SCALE_MAX, FAILURES=FAILURES, VERDICT_MARKS=VERDICT_MARKS)
    return env


class Pages:
    """Builds each page from a catalog of runs."""

    def __init__(self, catalog: Catalog, outline: Outliner | None = None, passages: PassageLoader | None = None, *,
                 first_page_wait: float = FIRST_PAGE_WAIT_S, small_run_bytes: int = SMALL_RUN_BYTES) -> None:
        self.catalog = catalog
        self.outline = outline
        self.passages = passages
        self.first_page_wait = first_page_wait
        self.small_run_bytes = small_run_bytes
        self.env = environment()

    def render(self, template: str, urls: Urls, **context: Any) -> str:
        return self.env.get_template(template).render(u=urls, **context)

    def small(self, ref: RunRef) -> bool:
        """Whether the run is small enough to table (or load) on the spot rather than in the background."""
        try:
            return (self.catalog.path(ref) / CASES).stat().st_size <= self.small_run_bytes
        except FileNotFoundError:
            return True

    def rows(self, ref: RunRef) -> CaseRows:
        return self.catalog.rows(ref)

    def run_passages(self, ref: RunRef) -> Passages | None:
        """The run's passages rebuilt from its suite and corpus (once per manifest), when the command can."""
        loader = self.passages
        if loader is None:
            return None
        manifest = self.catalog.manifest(ref)
        return self.catalog.kept(ref, "passages", lambda path: loader(path, manifest), ("manifest.json",))

    # -------------------------------------------------------------------------------------------- pages

    def runs(self, urls: Urls, suite: str = "", status: str = "") -> str:
        for ref in self.catalog.refs():  # small runs are tabled now, for their figures; big ones when opened
            try:
                if self.small(ref):
                    self.catalog.rows_future(ref).exception()
            except InputError:
                continue
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
        """The run page, from the manifest; the report's verdict and advice need the whole run loaded, which a big
        run does in the background (the page says so) rather than holding the page."""
        path = self.catalog.path(ref)
        manifest = self.catalog.manifest(ref)
        outline, pending = None, False
        if self.outline is not None:
            future = self.catalog.derived_future(ref, "outline", self.outline, background=True)
            try:
                outline = future.result(timeout=None if self.small(ref) else self.first_page_wait)
            except TimeoutError:
                pending = True
        built = self.catalog.rows_ready(ref)
        records = built.frame["record"].nunique() if built is not None else manifest.records_written
        others = [other for other in self.catalog.refs() if other.suite == ref.suite and other != ref]
        return self.render("run.html", urls, ref=ref, manifest=manifest, status=RunStore(path).live_status(manifest),
                           records=records, outline=outline, outline_pending=pending, has_report=has_report,
                           others=others, labels=len(read_labels(path)))

    def cases(self, urls: Urls, ref: RunRef, query: CaseQuery, *, everything: bool = False) -> str:
        """The cases page. The table of a big run is built in the background: its first page, unfiltered, is shown
        at once from the start of the run's lines (a preview, marked as one) when the table takes longer than
        ``first_page_wait``; any other query waits for the table."""
        future = self.catalog.rows_future(ref)
        records = None
        # A small run, or one whose table is filed on disk (read in a fraction of a second), is waited for.
        if not everything and not query.params() and not self.small(ref) \
                and index_metadata(self.catalog.path(ref)) is None:
            try:
                rows = future.result(timeout=self.first_page_wait)
            except TimeoutError:
                path = self.catalog.path(ref)
                rows, records = preview_rows(path, self.catalog.manifest(ref)), count_records(path)
        else:
            rows = future.result()
        page = select(rows, query, page_size=max(len(rows.frame), 1)) if everything else select(rows, query)
        return self.render("cases.html", urls, ref=ref, rows=rows, page=page, query=query,
                           grade_statuses=GRADE_STATUSES, records=records)

    def rows_ready(self, ref: RunRef, wait: float) -> bool:
        """Whether the run's table is built, waiting up to ``wait`` seconds for it (a preview page asks)."""
        try:
            self.catalog.rows_future(ref).result(timeout=wait)
        except TimeoutError:
            return False
        return True

    def case(self, urls: Urls, ref: RunRef, case_id: str, variant: str) -> str:
        record, index = self.record(ref, case_id, variant)
        return self.case_page(urls, ref, record, index, read_labels(self.catalog.path(ref)))

    def record(self, ref: RunRef, case_id: str, variant: str) -> tuple[CaseRecord, int]:
        """One case's record and its place in the run, read at its offset in ``cases.jsonl`` (not the whole run)."""
        frame = self.rows(ref).frame
        hit = frame[(frame["case_id"] == case_id) & (frame["variant"] == variant)]
        if hit.empty:
            raise NotFound(f"run {ref} has no case {case_id!r} in variant {variant!r}",
                           hint="open a case from the cases page")
        first = hit.iloc[0]
        record = read_record_at(self.catalog.path(ref), int(first["offset"]), int(first["line"]))
        if record.key != (case_id, variant):  # the run was rewritten since its table was built
            raise NotFound(f"run {ref} changed while this case was opened", hint="reload the page")
        return record, int(first["record"])

    def graded_answers(self, ref: RunRef) -> dict[AnswerKey, str]:
        """The run's graded answers with their categories, from its cases table: what people are asked to label."""
        frame = self.rows(ref).frame
        graded = frame[(frame["status"] == "ok") & (frame["grade_status"] == "graded")]
        return {(case, variant, tier): category for case, variant, tier, category in
                zip(graded["case_id"], graded["variant"], graded["tier"], graded["category"], strict=True)}

    def case_page(self, urls: Urls, ref: RunRef, record: CaseRecord, index: int, labels: list[LabelRecord]) -> str:
        detail = case_detail(self.catalog.manifest(ref), record, labels, self.run_passages(ref),
                             self.catalog.claims(ref), self.catalog.second_judges(ref))
        return self.render("case.html", urls, ref=ref, detail=detail, index=index)

    def diff(self, urls: Urls, a: RunRef, b: RunRef) -> str:
        view_a, view_b = self.catalog.view(a), self.catalog.view(b)
        result = diff_runs(view_a, view_b)
        index = {record.key: i for i, record in enumerate(view_b.records)}
        return self.render("diff.html", urls, a=a, b=b, diff=result, index=index)

    def diff_case(self, urls: Urls, a: RunRef, b: RunRef, case_id: str, variant: str) -> str:
        view_a, view_b = self.catalog.view(a), self.catalog.view(b)
        left, right = find_record(view_a, case_id, variant), find_record(view_b, case_id, variant)
        tiers = []
        order = tier_order(view_b.manifest)
        for tier in in_tier_order(list(dict.fromkeys([*left.generations, *right.generations])), order):
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
