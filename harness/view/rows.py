"""The cases table: one row per case × variant × tier (a retrieval-only case has one row with no tier), and the
query that filters, sorts and pages it on the server, 100 rows at a time.

The table is built from the run's lines as parsed JSON (:func:`harness.store.scan.scan_cases`), not from validated
records: a dozen fields of each record are all it needs, and validating 30,000 records costs several times the parse.
A field of the wrong type is still an error naming its line (:func:`harness.store.scan.damaged`). Each row keeps
where its record's line starts, so a case page reads and validates only that record.

Each answered row carries its failure kind from :mod:`harness.analysis.attribution` (retrieval miss, generation
miss, partial context, should have declined; or right, or unjudged), judged by the same functions as the report.

The frame is built once per run (and rebuilt when the run changes); a query is a few vectorised masks over it, so a
page of a 60,000-row run is served without touching the records again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.attribution import KINDS, judge, label
from harness.analysis.history import headline_metric
from harness.errors import InputError
from harness.store.context_frame import doc_of_chunk
from harness.store.grade_log import GradeKey
from harness.store.loaded import RunView
from harness.store.records import Manifest
from harness.store.scan import Line, damaged, scan_cases, scan_grades
from harness.view.figures import Figure, headline_figures
from harness.view.ladder import context_chunks, in_tier_order, tier_order

PAGE_SIZE = 100
NO_TIER = "—"
GRADE_STATUSES = ("graded", "unmeasured", "grade_error", "no answer")
FAILURES: dict[str, str] = {
    **{name: name.replace("_", " ") for name in KINDS},
    "right": "judged right",
    "unjudged": "not judged",
}
"""The failure-kind filter's choices: attribution's kinds, then answers judged right and answers nothing could judge."""
SNIPPET = 160
PREVIEW_BYTES = 4 << 20  # the start of cases.jsonl a preview parses: room for a first page of big records
ROW_COLUMNS = [
    "record", "offset", "line", "case_id", "variant", "tier", "category", "status", "headline", "measured",
    "grade_status", "score", "cbw", "failure", "latency_s", "cost_usd", "question", "answer",
]  # fmt: skip
NUMERIC = ("headline", "score", "latency_s", "cost_usd")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    numeric: bool = False


def columns(headline: str) -> list[Column]:
    """The table's columns, in order; every one can be sorted on."""
    return [
        Column("case_id", "case"), Column("variant", "variant"), Column("tier", "tier"),
        Column("category", "category"), Column("status", "status"), Column("headline", headline, numeric=True),
        Column("grade_status", "grade"), Column("score", "score", numeric=True), Column("cbw", "conf. wrong"),
        Column("failure", "failure kind"),
        Column("latency_s", "latency s", numeric=True), Column("cost_usd", "cost $", numeric=True),
        Column("question", "question"), Column("answer", "answer"),
    ]  # fmt: skip


SORTABLE = [column.key for column in columns("")]


@dataclass
class CaseRows:
    """The run's rows, and the facets a filter can choose from."""

    frame: pd.DataFrame
    headline: str
    categories: list[str]
    tiers: list[str]
    variants: list[str]
    preview: bool = False  # the first rows only, while the whole table is built (see Pages.cases)
    figures: list[Figure] = field(default_factory=list)  # the runs page's headline figures
    source: str = "parsed"  # parsed from the run's lines, or read from the on-disk index

    @property
    def columns(self) -> list[Column]:
        return columns(self.headline)


@dataclass(frozen=True)
class RowPlan:
    """What building rows takes from the manifest."""

    headline: str
    order: list[str]
    context_chunks: int | None

    @classmethod
    def of(cls, manifest: Manifest) -> RowPlan:
        metrics = list(manifest.suite.metrics) if manifest.suite is not None else []
        return cls(headline_metric(metrics) if metrics else "", tier_order(manifest), context_chunks(manifest))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def failure_kind(record: Mapping[str, Any], generation: Mapping[str, Any], grade: Mapping[str, Any],
                 plan: RowPlan) -> str:
    """An answer's failure kind, judged as :func:`harness.analysis.attribution.attribute` judges it: ``""`` for a
    call that gave no answer, ``unjudged`` when nothing can judge it, ``right``, or the kind of failure."""
    if generation["status"] != "ok":
        return ""
    relevant: dict[str, int] = record.get("relevant") or {}
    answerable = any(value > 0 for value in relevant.values())
    metrics = generation.get("answer_metrics") or {}
    verdict = judge({
        "answerable": answerable, "abstained": metrics.get("abstained"),
        "must_include_recall": metrics.get("must_include_recall"), "token_f1": metrics.get("token_f1"),
        "grade_status": grade["status"], "grade_score": grade.get("score"),
        "grade_correctness": (grade.get("scores") or {}).get("correctness"),
    })  # fmt: skip
    if verdict is None:
        return "unjudged"
    if verdict[0]:
        return "right"
    context = generation.get("context")
    if context is None:  # not recorded (store version < 3): the chunks offered to the prompt stand in
        fetched = record["retrieval"].get("chunks") or []
        context = fetched if plan.context_chunks is None else fetched[: plan.context_chunks]
    docs = {doc_of_chunk(chunk) for chunk in context}
    return label(answerable, max((relevant.get(doc, 0) for doc in docs), default=0))


def record_rows(index: int, line: Line, grades: Mapping[GradeKey, Mapping[str, Any]], plan: RowPlan) -> list[tuple[
        Any, ...]]:
    """The rows of one record, as tuples in :data:`ROW_COLUMNS` order (the newest logged grade applied)."""
    record = line.data
    case_id, variant, category, question = (record["case_id"], record["variant"], record["category"],
                                            record["question"])
    if not all(isinstance(text, str) for text in (case_id, variant, category, question)):
        raise TypeError("case_id, variant, category and question must be text")
    retrieval = record["retrieval"]
    value = _number(retrieval["metrics"].get(plan.headline)) if plan.headline else None
    measured = retrieval.get("unmeasured_reason") is None
    base = (index, line.offset, line.number, case_id, variant)
    generations: dict[str, Any] = record.get("generations") or {}
    if not generations:
        return [(*base, NO_TIER, category, "retrieval only", value, measured, "no answer", None, None, "", None, None,
                 question, "")]
    rows = []
    for tier in in_tier_order(list(generations), plan.order):
        gen = generations[tier]
        grade = grades.get((case_id, variant, tier)) or gen["grade"]
        text = gen.get("text")
        answer = text if text is not None else (gen.get("error") or gen.get("reason") or "")
        if not isinstance(answer, str):
            raise TypeError(f"generations.{tier}: the answer must be text")
        rows.append((*base, tier, category, gen["status"], value, measured, grade["status"],
                     _number(grade.get("score")), grade.get("confident_but_wrong"),
                     failure_kind(record, gen, grade, plan), _number(gen.get("latency_s")),
                     _number(gen.get("cost_usd")), question, answer))
    return rows


def rows_frame(lines: Iterable[Line], grades: Mapping[GradeKey, Mapping[str, Any]], plan: RowPlan, run_dir: Path,
               *, limit: int | None = None) -> pd.DataFrame:
    """The rows of ``lines`` as a frame; ``limit`` stops after that many rows (a preview of the first page)."""
    out: list[tuple[Any, ...]] = []
    for index, line in enumerate(lines):
        try:
            out += record_rows(index, line, grades, plan)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise damaged(run_dir, line, exc) from None
        if limit is not None and len(out) >= limit:
            break
    return finish_frame(pd.DataFrame.from_records(out, columns=ROW_COLUMNS))


def finish_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The dtypes every query relies on, and the case-folded text the free-text filter searches; the same for a
    frame just built and one read back from the on-disk index."""
    for name in NUMERIC:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    for name in ("record", "offset", "line"):
        frame[name] = frame[name].astype("int64")
    frame["measured"] = frame["measured"].astype(bool)
    frame["cbw"] = frame["cbw"].astype(object).where(frame["cbw"].notna(), None)
    for name in ("case_id", "variant", "tier", "category", "status", "grade_status", "failure", "question", "answer"):
        frame[name] = frame[name].astype(object)
    # Free text searches the question and the answer, case-folded once here rather than on every request.
    frame["_text"] = (frame["question"] + "\n" + frame["answer"]).str.casefold()
    return frame


def case_rows_at(run_dir: Path, manifest: Manifest) -> CaseRows:
    """Every row of the run at ``run_dir``."""
    plan = RowPlan.of(manifest)
    frame = rows_frame(scan_cases(run_dir), scan_grades(run_dir), plan, run_dir)
    return with_facets(frame, plan, manifest)


def preview_rows(run_dir: Path, manifest: Manifest, rows: int = PAGE_SIZE) -> CaseRows:
    """The first ``rows`` rows in table order, read from the start of the run's lines alone (every logged grade
    applied): the first page of a big run while its whole table is built. Facets are the manifest's."""
    plan = RowPlan.of(manifest)
    frame = rows_frame(scan_cases(run_dir, limit_bytes=PREVIEW_BYTES), scan_grades(run_dir), plan, run_dir,
                       limit=rows)
    suite_variants = list(manifest.suite.variants) if manifest.suite is not None else []
    return CaseRows(frame=frame.iloc[:rows], headline=plan.headline, categories=[],
                    tiers=in_tier_order(list(manifest.tiers), plan.order), variants=suite_variants, preview=True)


def with_facets(frame: pd.DataFrame, plan: RowPlan, manifest: Manifest, *, source: str = "parsed") -> CaseRows:
    variants = list(dict.fromkeys(frame["variant"].tolist()))
    return CaseRows(
        frame=frame,
        headline=plan.headline,
        categories=sorted(frame["category"].unique().tolist()),
        tiers=in_tier_order([t for t in frame["tier"].unique().tolist() if t != NO_TIER], plan.order),
        variants=variants,
        figures=headline_figures(frame, plan.headline,
                                 list(manifest.suite.variants) if manifest.suite is not None else variants),
        source=source,
    )


def case_rows(view: RunView) -> CaseRows:
    """Every row of a loaded run (read again from its files, as the viewer does)."""
    return case_rows_at(view.path, view.manifest)


@dataclass(frozen=True)
class CaseQuery:
    """A filter, a sort and a page, read from the URL's query string (every field optional)."""

    category: str = ""
    tier: str = ""
    variant: str = ""
    grade: str = ""
    score_min: float | None = None
    score_max: float | None = None
    cbw: bool = False
    failure: str = ""
    text: str = ""
    sort: str = ""
    desc: bool = False
    page: int = 1
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, params: Mapping[str, str], sortable: list[str]) -> CaseQuery:
        def number(name: str) -> float | None:
            text = params.get(name, "").strip()
            if not text:
                return None
            try:
                value = float(text)
            except ValueError:
                raise InputError(f"{name} {text!r} is not a number", hint="give a score between 0 and 1") from None
            if not math.isfinite(value):
                raise InputError(f"{name} must be a finite number", hint="give a score between 0 and 1")
            return value

        sort = params.get("sort", "")
        if sort and sort not in sortable:
            raise InputError(f"cannot sort on {sort!r}", hint="sort on one of: " + ", ".join(sortable))
        page_text = params.get("page", "1") or "1"
        if not page_text.isdigit() or int(page_text) < 1:
            raise InputError(f"page {page_text!r} is not a page number", hint="pages count from 1")
        grade = params.get("grade", "")
        if grade and grade not in GRADE_STATUSES:
            raise InputError(f"grade status {grade!r} is unknown", hint="one of: " + ", ".join(GRADE_STATUSES))
        failure = params.get("failure", "")
        if failure and failure not in FAILURES:
            raise InputError(f"failure kind {failure!r} is unknown", hint="one of: " + ", ".join(FAILURES))
        return cls(
            category=params.get("category", ""), tier=params.get("tier", ""), variant=params.get("variant", ""),
            grade=grade, score_min=number("score_min"), score_max=number("score_max"),
            cbw=params.get("cbw", "") == "1", failure=failure, text=params.get("q", "")[:500], sort=sort,
            desc=params.get("desc", "") == "1", page=int(page_text),
        )  # fmt: skip

    def params(self, **changes: Any) -> dict[str, str]:
        """This query as URL parameters (empty ones left out), with ``changes`` applied."""
        query = replace(self, **changes)
        out = {
            "category": query.category, "tier": query.tier, "variant": query.variant, "grade": query.grade,
            "score_min": "" if query.score_min is None else f"{query.score_min:g}",
            "score_max": "" if query.score_max is None else f"{query.score_max:g}",
            "cbw": "1" if query.cbw else "", "failure": query.failure, "q": query.text, "sort": query.sort,
            "desc": "1" if query.desc else "",
            "page": str(query.page) if query.page > 1 else "",
        }  # fmt: skip
        return {key: value for key, value in out.items() if value}


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int  # rows that match the filter
    page: int
    pages: int


def select(rows: CaseRows, query: CaseQuery, page_size: int = PAGE_SIZE) -> Page:
    frame = rows.frame
    mask = np.ones(len(frame), dtype=bool)
    for column, wanted in (("category", query.category), ("tier", query.tier), ("variant", query.variant),
                           ("grade_status", query.grade), ("failure", query.failure)):
        if wanted:
            mask &= (frame[column] == wanted).to_numpy()
    if query.score_min is not None:
        mask &= (frame["score"] >= query.score_min).to_numpy()
    if query.score_max is not None:
        mask &= (frame["score"] <= query.score_max).to_numpy()
    if query.cbw:
        mask &= (frame["cbw"] == True).to_numpy()  # noqa: E712 (None and False both mean "not flagged")
    if query.text:
        mask &= frame["_text"].str.contains(query.text.casefold(), regex=False).to_numpy()
    chosen = frame[mask]
    if query.sort:
        # A stable sort, missing values last in either direction, ties in table order.
        chosen = chosen.sort_values(query.sort, ascending=not query.desc, kind="stable", na_position="last")
    total = len(chosen)
    pages = max(1, math.ceil(total / page_size))
    page = min(query.page, pages)
    part = chosen.iloc[(page - 1) * page_size: page * page_size]
    return Page([_display(row) for row in part.to_dict("records")], total, page, pages)


def _display(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = {str(key): (None if isinstance(value, float) and math.isnan(value) else value)
           for key, value in row.items() if key not in HIDDEN}
    out["failure_label"] = FAILURES.get(str(out["failure"]), "")
    out["question_snippet"] = _snippet(str(out["question"]))
    out["answer_snippet"] = _snippet(str(out["answer"]))
    return out


def _snippet(text: str) -> str:
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"


HIDDEN = ("_text", "offset", "line", "measured")


def export_rows(rows: CaseRows) -> list[dict[str, Any]]:
    """Every row, for a static bundle (its page filters and sorts them in the browser)."""
    return [_display(row) for row in rows.frame.to_dict("records")]
