"""Why an answer fell short: retrieval or generation. Cheap, on every answer, without a model call.

Each answered case × variant × tier is first judged right or short of right:

- a case whose answer is in the corpus (some ``relevant:`` grade > 0): by its grade when it was graded (right when
  ``correctness >= RIGHT_CORRECTNESS``: right on the main point); otherwise by its cheap metrics (right when every
  ``must_include`` string is present, or, for a case without that list, when token F1 against the reference is at
  least ``RIGHT_TOKEN_F1``); an answer that declines is short of right either way;
- a case whose answer is not in the corpus (``relevant: {}``): right when the answer declines (``abstained``).

An answer short of right then gets exactly one label, read from the documents its prompt carried
(:mod:`harness.store.context_frame`) and the case's ``relevant:`` grades:

- **retrieval miss**: no relevant document (grade > 0) was in the context;
- **generation miss**: a document of grade ``ANSWERS_GRADE`` (3, "answers the question") was in the context;
- **partial context**: only lower-grade documents were in the context;
- **should have declined**: a not-in-corpus case that was answered.

Per tier × category (variants pooled), per tier × variant and per tier the report shows the share of answers
short of right and, among those, the share of each label, each with its Wilson interval
(:func:`harness.metrics.stats.intervals.wilson_interval`) and n. An answer that cannot be judged (no grade and no
cheap metric that applies) is counted as unjudged, never as right or wrong.

Pure: the generation frame and the context frame in, dataclasses out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from harness.metrics.case_values import ALL_CATEGORIES
from harness.metrics.stats.intervals import Interval, wilson_interval

FailureKind = Literal["retrieval_miss", "generation_miss", "partial_context", "should_have_declined"]
Basis = Literal["grade", "cheap metrics"]

RIGHT_CORRECTNESS = 2  # the rubric's "right on the main point"
RIGHT_TOKEN_F1 = 0.5  # for an ungraded case without must_include strings
ANSWERS_GRADE = 3  # the relevance grade of a document that answers the question


@dataclass(frozen=True)
class Kind:
    name: FailureKind
    label: str
    fix: str  # where the fix lies, for the advice row


KINDS: dict[FailureKind, Kind] = {
    k.name: k
    for k in (
        Kind("retrieval_miss", "retrieval misses", "no tier fixes this; see retrieval"),
        Kind("generation_miss", "generation misses", "a better local model would help"),
        Kind("partial_context", "partial context", "retrieval finds only partial documents; see retrieval"),
        Kind("should_have_declined", "should have declined",
             "the model answers what the corpus does not hold; a model or prompt that declines would help"),
    )
}
"""Every failure kind, in the order the report shows them."""


@dataclass(frozen=True)
class AnswerBlame:
    """One answer's verdict: ``kind`` is None for an answer judged right."""

    case_id: str
    variant: str
    tier: str
    category: str
    kind: FailureKind | None
    basis: Basis
    context_source: str  # recorded | offered (see harness.store.context_frame)
    severity: float | None  # the grade's 0..1 score, else the cheap metric that judged it; lower is worse
    context_docs: tuple[str, ...] = ()

    @property
    def short(self) -> bool:
        return self.kind is not None


@dataclass(frozen=True)
class BlameRow:
    """One tier × variant × category (``all`` pools): how often its answers fell short, and why."""

    tier: str
    variant: str
    category: str
    judged: int
    unjudged: int
    short: Interval  # answers short of right / answers judged
    kinds: dict[FailureKind, Interval]  # answers of each kind / answers short of right
    bases: dict[str, int]  # answers judged by grade / by cheap metrics

    def dominant(self) -> tuple[Kind, Interval] | None:
        """The most frequent failure kind, or None when nothing fell short."""
        if not self.short.estimate:
            return None
        name = max(self.kinds, key=lambda k: (self.kinds[k].estimate or 0.0, -list(KINDS).index(k)))
        return KINDS[name], self.kinds[name]


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def judge(row: dict[str, Any]) -> tuple[bool, Basis, float | None] | None:
    """(right, basis, severity) for one answer row, or None when nothing can judge it."""
    abstained = _number(row.get("abstained"))
    if not row.get("answerable"):
        if abstained is not None:
            return abstained == 1.0, "cheap metrics", abstained
        correctness = _number(row.get("grade_correctness"))
        if row.get("grade_status") == "graded" and correctness is not None:
            return correctness >= RIGHT_CORRECTNESS, "grade", _number(row.get("grade_score"))
        return None
    if row.get("grade_status") == "graded":
        correctness = _number(row.get("grade_correctness"))
        if correctness is not None:
            right = correctness >= RIGHT_CORRECTNESS and abstained != 1.0
            return right, "grade", _number(row.get("grade_score"))
    must = _number(row.get("must_include_recall"))
    if must is not None:
        return must == 1.0 and abstained != 1.0, "cheap metrics", must
    f1 = _number(row.get("token_f1"))
    if f1 is not None:
        return f1 >= RIGHT_TOKEN_F1 and abstained != 1.0, "cheap metrics", f1
    return None


def label(answerable: bool, best_context_grade: int) -> FailureKind:
    """The failure kind of an answer short of right, from the best relevance grade its context held."""
    if not answerable:
        return "should_have_declined"
    if best_context_grade <= 0:
        return "retrieval_miss"
    if best_context_grade >= ANSWERS_GRADE:
        return "generation_miss"
    return "partial_context"


def attribute(generation: pd.DataFrame, context: pd.DataFrame) -> tuple[list[AnswerBlame], int]:
    """Every answered row's verdict, and how many answered rows could not be judged.

    Args:
        generation: :func:`harness.store.frames.generation_frame` (rows of failed or skipped calls are left out).
        context: :func:`harness.store.context_frame.context_frame` of the same run.
    """
    if generation.empty:
        return [], 0
    answered = generation[generation["status"] == "ok"]
    keys = ["case_id", "variant", "tier"]
    merged = answered.merge(context, on=keys, how="left") if not context.empty else answered
    out: list[AnswerBlame] = []
    unjudged = 0
    for record in merged.to_dict("records"):
        row = {str(key): value for key, value in record.items()}
        verdict = judge(row)
        if verdict is None:
            unjudged += 1
            continue
        right, basis, severity = verdict
        best = _number(row.get("best_context_grade"))
        kind = None if right else label(bool(row.get("answerable")), int(best or 0))
        docs = row.get("context_docs")
        out.append(AnswerBlame(
            str(row["case_id"]), str(row["variant"]), str(row["tier"]), str(row["category"]), kind, basis,
            str(row.get("context_source") or "unknown"), severity, tuple(docs) if isinstance(docs, tuple) else (),
        ))
    return out, unjudged


def blame_rows(
    answers: Iterable[AnswerBlame], unjudged: dict[tuple[str, str, str], int] | None = None, *,
    confidence: float = 0.95,
) -> list[BlameRow]:
    """Per tier: one row per category (variants pooled), one per variant (when there are several), one overall."""
    unjudged = unjudged or {}
    items = list(answers)
    variants_of: dict[str, set[str]] = {}
    for answer in items:
        variants_of.setdefault(answer.tier, set()).add(answer.variant)
    groups: dict[tuple[str, str, str], list[AnswerBlame]] = {}
    for answer in items:
        keys = [(answer.tier, ALL_CATEGORIES, answer.category), (answer.tier, ALL_CATEGORIES, ALL_CATEGORIES)]
        if len(variants_of[answer.tier]) > 1:
            keys.append((answer.tier, answer.variant, ALL_CATEGORIES))
        for key in keys:
            groups.setdefault(key, []).append(answer)

    def order(key: tuple[str, str, str]) -> tuple[object, ...]:
        tier, variant, category = key
        return (tier, category == ALL_CATEGORIES, variant != ALL_CATEGORIES, variant, category)

    rows = []
    for key in sorted(groups, key=order):
        tier, variant, category = key
        group = groups[key]
        short = [a for a in group if a.short]
        kinds = {
            name: wilson_interval(sum(a.kind == name for a in short), len(short), confidence=confidence)
            for name in KINDS
        }
        bases: dict[str, int] = {}
        for a in group:
            bases[a.basis] = bases.get(a.basis, 0) + 1
        skipped = sum(
            n for (t, v, c), n in unjudged.items()
            if t == tier and variant in (ALL_CATEGORIES, v) and category in (ALL_CATEGORIES, c)
        )
        rows.append(BlameRow(tier, variant, category, len(group), skipped,
                             wilson_interval(len(short), len(group), confidence=confidence), kinds, bases))
    return rows


def unjudged_by_group(generation: pd.DataFrame, answers: Iterable[AnswerBlame]) -> dict[tuple[str, str, str], int]:
    """Answered rows per (tier, variant, category) that no verdict covers."""
    if generation.empty:
        return {}
    judged = {(a.case_id, a.variant, a.tier) for a in answers}
    out: dict[tuple[str, str, str], int] = {}
    for row in generation[generation["status"] == "ok"].to_dict("records"):
        if (row["case_id"], row["variant"], row["tier"]) not in judged:
            key = (str(row["tier"]), str(row["variant"]), str(row["category"]))
            out[key] = out.get(key, 0) + 1
    return out


def worst_examples(answers: Iterable[AnswerBlame], limit: int = 10) -> list[AnswerBlame]:
    """The answers short of right, worst first (lowest severity; unscored last), then by case id for a stable order."""
    short = [a for a in answers if a.short]
    return sorted(short, key=lambda a: (a.severity is None, a.severity or 0.0, a.case_id, a.variant, a.tier))[:limit]


def fix_pointer(row: BlameRow) -> str | None:
    """``generation misses 70% [55, 82] n=20: a better local model would help``, or None when nothing fell short."""
    dominant = row.dominant()
    if dominant is None:
        return None
    kind, share = dominant
    assert share.estimate is not None
    span = f" [{share.low:.0%}, {share.high:.0%}]" if share.has_interval else ""
    return f"{kind.label} {share.estimate:.0%}{span} of {share.n} short answers: {kind.fix}"


@dataclass(frozen=True)
class Attribution:
    answers: list[AnswerBlame]
    rows: list[BlameRow]
    unjudged: int

    def row(self, tier: str, category: str, variant: str = ALL_CATEGORIES) -> BlameRow | None:
        return next((r for r in self.rows if (r.tier, r.variant, r.category) == (tier, variant, category)), None)

    @property
    def sources(self) -> set[str]:
        return {a.context_source for a in self.answers}


def attribution(generation: pd.DataFrame, context: pd.DataFrame, *, confidence: float = 0.95) -> Attribution:
    answers, unjudged = attribute(generation, context)
    rows = blame_rows(answers, unjudged_by_group(generation, answers), confidence=confidence)
    return Attribution(answers, rows, unjudged)
