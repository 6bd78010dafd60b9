"""The cases table: one row per case × variant × tier (a retrieval-only case has one row with no tier), and the
query that filters, sorts and pages it on the server, 100 rows at a time.

The frame is built once per run (and rebuilt when the run changes); a query is a few vectorised masks over it, so a
page of a 60,000-row run is served without touching the records again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.history import headline_metric
from harness.errors import InputError
from harness.store.loaded import RunView
from harness.view.case_detail import in_tier_order, tier_order

PAGE_SIZE = 100
NO_TIER = "—"
GRADE_STATUSES = ("graded", "unmeasured", "grade_error", "no answer")
SNIPPET = 160


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
        Column("latency_s", "latency s", numeric=True), Column("cost_usd", "cost $", numeric=True),
        Column("question", "question"), Column("answer", "answer"),
    ]  # fmt: skip


@dataclass
class CaseRows:
    """The run's rows, and the facets a filter can choose from."""

    frame: pd.DataFrame
    headline: str
    categories: list[str]
    tiers: list[str]
    variants: list[str]

    @property
    def columns(self) -> list[Column]:
        return columns(self.headline)


def case_rows(view: RunView) -> CaseRows:
    headline = headline_metric(view.metrics) if view.metrics else ""
    rows: list[dict[str, Any]] = []
    order = tier_order(view)
    for index, record in enumerate(view.records):
        value = record.retrieval.metrics.get(headline) if headline else None
        base = {
            "record": index, "case_id": record.case_id, "variant": record.variant, "category": record.category,
            "question": record.question, "headline": value,
        }  # fmt: skip
        if not record.generations:
            rows.append({**base, "tier": NO_TIER, "status": "retrieval only", "grade_status": "no answer",
                         "score": None, "cbw": None, "latency_s": None, "cost_usd": None, "answer": ""})
            continue
        for tier in in_tier_order(list(record.generations), order):
            gen = record.generations[tier]
            rows.append({
                **base, "tier": tier, "status": gen.status,
                "grade_status": gen.grade.status, "score": gen.grade.score, "cbw": gen.grade.confident_but_wrong,
                "latency_s": gen.latency_s, "cost_usd": gen.cost_usd,
                "answer": gen.text if gen.text is not None else (gen.error or gen.reason or ""),
            })  # fmt: skip
    frame = pd.DataFrame(rows, columns=[
        "record", "case_id", "variant", "tier", "category", "status", "headline", "grade_status", "score", "cbw",
        "latency_s", "cost_usd", "question", "answer",
    ])  # fmt: skip
    for name in ("headline", "score", "latency_s", "cost_usd"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    # Free text searches the question and the answer, case-folded once here rather than on every request.
    frame["_text"] = (frame["question"] + "\n" + frame["answer"]).str.casefold()
    return CaseRows(
        frame=frame,
        headline=headline,
        categories=sorted(frame["category"].unique().tolist()),
        tiers=in_tier_order([t for t in frame["tier"].unique().tolist() if t != NO_TIER], order),
        variants=list(dict.fromkeys(frame["variant"].tolist())),
    )


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
        return cls(
            category=params.get("category", ""), tier=params.get("tier", ""), variant=params.get("variant", ""),
            grade=grade, score_min=number("score_min"), score_max=number("score_max"),
            cbw=params.get("cbw", "") == "1", text=params.get("q", "")[:500], sort=sort,
            desc=params.get("desc", "") == "1", page=int(page_text),
        )  # fmt: skip

    def params(self, **changes: Any) -> dict[str, str]:
        """This query as URL parameters (empty ones left out), with ``changes`` applied."""
        query = replace(self, **changes)
        out = {
            "category": query.category, "tier": query.tier, "variant": query.variant, "grade": query.grade,
            "score_min": "" if query.score_min is None else f"{query.score_min:g}",
            "score_max": "" if query.score_max is None else f"{query.score_max:g}",
            "cbw": "1" if query.cbw else "", "q": query.text, "sort": query.sort, "desc": "1" if query.desc else "",
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
                           ("grade_status", query.grade)):
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
           for key, value in row.items() if key != "_text"}
    out["question_snippet"] = _snippet(str(out["question"]))
    out["answer_snippet"] = _snippet(str(out["answer"]))
    return out


def _snippet(text: str) -> str:
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"


def export_rows(rows: CaseRows) -> list[dict[str, Any]]:
    """Every row, for a static bundle (its page filters and sorts them in the browser)."""
    return [_display(row) for row in rows.frame.to_dict("records")]
