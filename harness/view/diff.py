"""Two runs, case by case: which cases changed their retrieval ranking, an answer's text or a grade, and by how much
each metric moved; and, for one case, the two answers with their difference marked word by word (difflib).

Cases are paired by (case id, variant); a case in one run only is listed apart, never as a change.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from harness.store.loaded import RunView
from harness.store.records import CaseRecord, GenerationRecord, GradeRecord

Key = tuple[str, str]


@dataclass(frozen=True)
class MetricChange:
    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass
class CaseChange:
    case_id: str
    variant: str
    category: str
    ranking: bool = False
    answers: list[str] = field(default_factory=list)  # tiers whose answer text changed
    grades: list[str] = field(default_factory=list)  # tiers whose grade changed
    metrics: list[MetricChange] = field(default_factory=list)

    @property
    def what(self) -> list[str]:
        out = ["retrieval ranking"] if self.ranking else []
        out += [f"{tier} answer" for tier in self.answers]
        out += [f"{tier} grade" for tier in self.grades]
        return out


@dataclass
class RunDiff:
    changed: list[CaseChange]
    only_in_a: list[Key]
    only_in_b: list[Key]
    unchanged: int


def _grade_mark(grade: GradeRecord) -> tuple[object, ...]:
    return (grade.status, grade.score, tuple(sorted((grade.scores or {}).items())), grade.confident_but_wrong)


def _answer(generation: GenerationRecord | None) -> str | None:
    if generation is None:
        return None
    if generation.status == "ok":
        return generation.text
    return f"({generation.status}) {generation.error or generation.reason or ''}"


def case_change(a: CaseRecord, b: CaseRecord) -> CaseChange:
    change = CaseChange(a.case_id, a.variant, a.category)
    change.ranking = [doc for doc, _ in a.retrieval.ranked] != [doc for doc, _ in b.retrieval.ranked]
    for name in dict.fromkeys([*a.retrieval.metrics, *b.retrieval.metrics]):
        x, y = a.retrieval.metrics.get(name), b.retrieval.metrics.get(name)
        if x != y:
            change.metrics.append(MetricChange(name, x, y))
    for tier in dict.fromkeys([*a.generations, *b.generations]):
        ga, gb = a.generations.get(tier), b.generations.get(tier)
        if _answer(ga) != _answer(gb):
            change.answers.append(tier)
        grade_a = _grade_mark(ga.grade) if ga is not None else None
        grade_b = _grade_mark(gb.grade) if gb is not None else None
        if grade_a != grade_b:
            change.grades.append(tier)
        metrics_a = ga.answer_metrics if ga is not None else {}
        metrics_b = gb.answer_metrics if gb is not None else {}
        for name in dict.fromkeys([*metrics_a, *metrics_b]):
            x, y = metrics_a.get(name), metrics_b.get(name)
            if x != y:
                change.metrics.append(MetricChange(f"{tier} {name}", x, y))
        score_a = ga.grade.score if ga is not None else None
        score_b = gb.grade.score if gb is not None else None
        if score_a != score_b:
            change.metrics.append(MetricChange(f"{tier} graded score", score_a, score_b))
    return change


def diff_runs(a: RunView, b: RunView) -> RunDiff:
    left = {record.key: record for record in a.records}
    right = {record.key: record for record in b.records}
    changed, unchanged = [], 0
    for key, record in left.items():
        other = right.get(key)
        if other is None:
            continue
        change = case_change(record, other)
        if change.ranking or change.answers or change.grades:
            changed.append(change)
        else:
            unchanged += 1
    return RunDiff(
        changed=changed,
        only_in_a=[key for key in left if key not in right],
        only_in_b=[key for key in right if key not in left],
        unchanged=unchanged,
    )


_TOKEN = re.compile(r"\s+|\S+\s*")  # a word with the spaces after it, so a changed phrase is one run


@dataclass(frozen=True)
class Segment:
    """A run of text in an answer diff: ``same``, ``removed`` (only in run a) or ``added`` (only in run b)."""

    kind: str
    text: str


def answer_diff(a: str, b: str) -> tuple[list[Segment], list[Segment]]:
    """Both answers cut into segments, words that differ marked: run a's removals, run b's additions."""
    left, right = _TOKEN.findall(a), _TOKEN.findall(b)
    out_a: list[Segment] = []
    out_b: list[Segment] = []
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out_a.append(Segment("same", "".join(left[i1:i2])))
            out_b.append(Segment("same", "".join(right[j1:j2])))
            continue
        if i2 > i1:
            out_a.append(Segment("removed", "".join(left[i1:i2])))
        if j2 > j1:
            out_b.append(Segment("added", "".join(right[j1:j2])))
    return _merged(out_a), _merged(out_b)


def _merged(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for segment in segments:
        if out and out[-1].kind == segment.kind:
            out[-1] = Segment(segment.kind, out[-1].text + segment.text)
        elif segment.text:
            out.append(segment)
    return out
