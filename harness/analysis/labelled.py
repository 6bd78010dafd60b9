"""People's labels beside the grader's grades: the pairs every judge statistic is computed from.

Pure: typed records and labels in, frames and plain rows out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from harness.config.criteria import CRITERIA, SCALE_MAX
from harness.store.labels import AnswerKey, LabelRecord
from harness.store.records import CaseRecord


def human_scores(labels: Iterable[LabelRecord]) -> pd.DataFrame:
    """One row per labelled answer: ``case_id, variant, tier, human_score`` (mean over its labellers), ``labellers``."""
    rows = [{"case_id": label.case_id, "variant": label.variant, "tier": label.tier, "score": label.score}
            for label in labels]
    if not rows:
        return pd.DataFrame(columns=["case_id", "variant", "tier", "human_score", "labellers"])
    frame = pd.DataFrame(rows).groupby(["case_id", "variant", "tier"], as_index=False)["score"].agg(["mean", "size"])
    return frame.rename(columns={"mean": "human_score", "size": "labellers"})


@dataclass(frozen=True)
class LabelPair:
    """One person's label of an answer beside the grader's grade of it."""

    key: AnswerKey
    category: str
    labeller: str
    human: dict[str, int]
    grader: dict[str, int]
    human_cbw: bool
    grader_cbw: bool | None

    @property
    def tier(self) -> str:
        return self.key[2]

    @property
    def human_score(self) -> float:
        return sum(self.human.values()) / (SCALE_MAX * len(CRITERIA))

    @property
    def grader_score(self) -> float:
        return sum(self.grader.values()) / (SCALE_MAX * len(CRITERIA))


def label_pairs(records: Iterable[CaseRecord], labels: Iterable[LabelRecord]) -> list[LabelPair]:
    """Every label of an answer the grader graded with every criterion, in label order."""
    graded: dict[AnswerKey, tuple[str, dict[str, int], bool | None]] = {}
    for record in records:
        for tier, generation in record.generations.items():
            grade = generation.grade
            if generation.status == "ok" and grade.status == "graded" and grade.scores \
                    and all(name in grade.scores for name in CRITERIA):
                graded[(record.case_id, record.variant, tier)] = (
                    record.category, {name: int(grade.scores[name]) for name in CRITERIA}, grade.confident_but_wrong)
    out = []
    for label in labels:
        if label.key in graded:
            category, scores, cbw = graded[label.key]
            out.append(LabelPair(label.key, category, label.labeller, dict(label.scores), scores,
                                 label.confident_but_wrong, cbw))
    return out
