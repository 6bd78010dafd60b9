"""Judge against judge: Claude (the primary judge) beside each second judge from another model family.

Both judges graded the same sample, blind, with the same rubric, so their grades of one answer are a pair:

- agreement per criterion (0..3) and overall (the criteria summed, 0..9): quadratic-weighted kappa and ordinal
  Krippendorff's alpha with bootstrap intervals over answers, exact and within-one agreement, the confusion matrix
  (rows: Claude, columns: the second judge), from :func:`harness.analysis.agreement.rater_agreement`. Below
  :data:`~harness.analysis.agreement.MIN_LABELLED` answers graded by both, counts only;
- each judge's gap (local − cloud on the 0..1 score) per category and over all, on the case × variant pairs both
  judges graded on both tiers, with :func:`~harness.metrics.stats.intervals.paired_gap`'s interval (cluster-robust
  when cases share a source document);
- the **difference of gaps**, second judge's gap − Claude's, per pair: d = (S_local − S_cloud) − (C_local − C_cloud),
  with the same paired interval. Positive means Claude puts the cloud tier further ahead of local than the other
  family does. Claude grades its own family's answers, so when nobody has labelled this is the self-preference
  signal; it says the judges differ, not which is right (people's labels decide that: ``harness label``).

Pure: typed records and grades in, dataclasses out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from harness.analysis.agreement import MIN_LABELLED, OVERALL, CriterionAgreement, rater_agreement
from harness.analysis.drift import TIERS
from harness.config.criteria import CRITERIA, SCALE_MAX
from harness.config.grading import PRIMARY_JUDGE
from harness.metrics.case_values import ALL_CATEGORIES
from harness.metrics.stats.intervals import Interval, paired_gap
from harness.store.frames import source_doc
from harness.store.grade_log import GradeKey
from harness.store.records import CaseRecord, GradeRecord


@dataclass(frozen=True)
class GapRow:
    """One category (or ``all``): each judge's local − cloud gap and their difference, on the same pairs."""

    category: str
    pairs: int  # case × variant pairs both judges graded on both tiers
    primary_gap: Interval
    second_gap: Interval
    difference: Interval  # second judge's gap − Claude's: > 0 when Claude favours the cloud tier more


@dataclass(frozen=True)
class JudgeComparison:
    primary: str
    judge: str
    primary_model: str | None
    judge_model: str | None
    graded: dict[str, int]  # judge -> answers it graded with every criterion
    both_graded: int
    enough: bool
    shortfall: str | None
    criteria: list[CriterionAgreement] = field(default_factory=list)  # rows: Claude, columns: the second judge
    gaps: list[GapRow] = field(default_factory=list)


@dataclass(frozen=True)
class _Answer:
    key: GradeKey
    category: str
    cluster: str
    scores: dict[str, int]
    score: float


def _usable(grade: GradeRecord) -> bool:
    return grade.status == "graded" and grade.score is not None and bool(grade.scores) \
        and all(name in (grade.scores or {}) for name in CRITERIA)


def _answers(records: Iterable[CaseRecord], grades_of: Mapping[GradeKey, GradeRecord] | None
             ) -> tuple[dict[GradeKey, _Answer], str | None]:
    """Graded answers of one judge (Claude's from the records when ``grades_of`` is None) and its model."""
    out: dict[GradeKey, _Answer] = {}
    models: dict[str, None] = {}
    for record in records:
        cluster = source_doc(record) or record.case_id
        for tier, generation in record.generations.items():
            key = (record.case_id, record.variant, tier)
            grade = generation.grade if grades_of is None else grades_of.get(key)
            if grade is None or generation.status != "ok" or not _usable(grade):
                continue
            scores = {name: int((grade.scores or {})[name]) for name in CRITERIA}
            out[key] = _Answer(key, record.category, cluster, scores, float(grade.score or 0.0))
            if grade.grader_model:
                models[grade.grader_model] = None
    return out, ", ".join(models) or None


def _gap_rows(primary: dict[GradeKey, _Answer], second: dict[GradeKey, _Answer], confidence: float, seed: int
              ) -> list[GapRow]:
    local, cloud = TIERS
    rows: list[tuple[str, str, float, float, float, float]] = []  # category, cluster, C_l, C_c, S_l, S_c
    for (case_id, variant, tier), answer in primary.items():
        if tier != local:
            continue
        keys = [(case_id, variant, local), (case_id, variant, cloud)]
        if all(k in primary and k in second for k in keys):
            rows.append((answer.category, answer.cluster, primary[keys[0]].score, primary[keys[1]].score,
                         second[keys[0]].score, second[keys[1]].score))
    if not rows:
        return []
    groups = [(c, [r for r in rows if r[0] == c]) for c in sorted({r[0] for r in rows})] + [(ALL_CATEGORIES, rows)]
    out = []
    for category, group in groups:
        values = np.array([r[2:] for r in group], float)
        clusters = [r[1] for r in group]
        c_gap, s_gap = values[:, 0] - values[:, 1], values[:, 2] - values[:, 3]
        out.append(GapRow(
            category=category,
            pairs=len(group),
            primary_gap=paired_gap(values[:, 0], values[:, 1], clusters=clusters, confidence=confidence, seed=seed),
            second_gap=paired_gap(values[:, 2], values[:, 3], clusters=clusters, confidence=confidence, seed=seed),
            difference=paired_gap(s_gap, c_gap, clusters=clusters, confidence=confidence, seed=seed),
        ))
    return out


def compare_judges(records: list[CaseRecord], second: Mapping[str, Mapping[GradeKey, GradeRecord]], *,
                   confidence: float = 0.95, seed: int = 0) -> list[JudgeComparison]:
    """Claude beside each second judge, in name order; [] when no second judge graded."""
    primary, primary_model = _answers(records, None)
    out = []
    for name in sorted(second):
        theirs, model = _answers(records, second[name])
        both = sorted(set(primary) & set(theirs))
        enough = len(both) >= MIN_LABELLED
        shortfall = None if enough else (
            f"{len(both)} answer(s) graded by both judges; kappa and alpha are shown from {MIN_LABELLED} "
            f"(grade {MIN_LABELLED - len(both)} more, e.g. raise grading.rate)")
        criteria = []
        if both:
            for criterion in (*CRITERIA, OVERALL):
                if criterion == OVERALL:
                    rows = np.array([sum(primary[k].scores.values()) for k in both])
                    columns = np.array([sum(theirs[k].scores.values()) for k in both])
                    scale = SCALE_MAX * len(CRITERIA)
                else:
                    rows = np.array([primary[k].scores[criterion] for k in both])
                    columns = np.array([theirs[k].scores[criterion] for k in both])
                    scale = SCALE_MAX
                criteria.append(rater_agreement(criterion, rows, columns, scale, both, enough, confidence, seed))
        out.append(JudgeComparison(
            primary=PRIMARY_JUDGE, judge=name, primary_model=primary_model, judge_model=model,
            graded={PRIMARY_JUDGE: len(primary), name: len(theirs)}, both_graded=len(both), enough=enough,
            shortfall=shortfall, criteria=criteria, gaps=_gap_rows(primary, theirs, confidence, seed),
        ))
    return out
