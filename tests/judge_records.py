"""A run whose every answer has a known true quality, graded by a grader that favours the cloud's answers, with
people's labels made from the truth for a sample (not a test module itself)."""

from __future__ import annotations

import numpy as np

from harness.config.criteria import CRITERIA
from harness.grading.label_sample import graded_answers, label_queue
from harness.store.labels import LabelRecord
from harness.store.records import CaseRecord, GenerationRecord, GradeRecord, RetrievalRecord

#: category -> true mean quality of (local, cloud): the local tier is within 0.05 of the cloud on both.
TRUTH = {"code-section": (0.70, 0.72), "jurisdiction": (0.68, 0.71)}


def _criteria(quality: np.ndarray, rng: np.random.Generator, noise: float) -> list[dict[str, int]]:
    """Rubric scores whose mean/3 tracks ``quality``: each criterion is 3q plus noise, rounded into 0..3."""
    raw = 3.0 * quality[:, None] + rng.normal(0.0, noise, (quality.size, len(CRITERIA)))
    values = np.clip(np.rint(raw), 0, 3).astype(int)
    return [dict(zip(CRITERIA, row.tolist(), strict=True)) for row in values]


Key = tuple[str, str, str]


def make_run(cases_per_category: int = 80, graded_share: float = 0.4, cloud_bonus: float = 0.15, seed: int = 0,
             truth: dict[str, tuple[float, float]] | None = None
             ) -> tuple[list[CaseRecord], dict[Key, dict[str, int]]]:
    """The run's records, and the scores a person would give every answer (the truth; labels sample it)."""
    rng = np.random.default_rng(seed)
    out = []
    people: dict[Key, dict[str, int]] = {}
    for category, means in (truth or TRUTH).items():
        n = cases_per_category
        case = rng.normal(0.0, 0.08, n)
        graded = rng.random(n) < graded_share
        tiers = {}
        for tier, mean in zip(("local", "cloud"), means, strict=True):
            quality = np.clip(mean + case + rng.normal(0.0, 0.12, n), 0.0, 1.0)
            bonus = cloud_bonus if tier == "cloud" else 0.0
            tiers[tier] = (_criteria(quality, rng, 0.35), _criteria(np.clip(quality + bonus, 0, 1), rng, 0.35),
                           np.clip(quality + rng.normal(0.0, 0.08, n), 0, 1))
        for i in range(n):
            generations = {}
            for tier, (person, grades, metric) in tiers.items():
                people[(f"{category}-{i}", "dense", tier)] = person[i]
                scores = grades[i]
                grade = (GradeRecord(status="graded", scores=scores, score=sum(scores.values()) / 9,
                                     confident_but_wrong=False, grader_model="claude-test")
                         if graded[i] else GradeRecord.unmeasured("not in the grading sample"))
                generations[tier] = GenerationRecord(
                    status="ok", tier=tier, text=f"answer {i}", host="h0" if tier == "local" else "cloud", model="m",
                    latency_s=0.5, cost_usd=0.001 if tier == "cloud" else 0.0001, grade=grade,
                    answer_metrics={"token_f1": float(metric[i]), "embedding_cosine": float(metric[i]),
                                    "must_include_recall": None, "context_support": float(metric[i]),
                                    "abstained": 0.0},
                )
            out.append(CaseRecord(case_id=f"{category}-{i}", variant="dense", category=category, question="q?",
                                  reference="r", relevant={f"doc-{category}-{i}": 2}, generate=True,
                                  retrieval=RetrievalRecord(ranked=[], metrics={"mrr": 1.0}), generations=generations))
    return out, people


def true_gap(people: dict[Key, dict[str, int]], category: str | None = None) -> float:
    """local − cloud of the people's score over every answer (of one category, or all)."""
    def score(key: Key) -> float:
        return sum(people[key].values()) / 9

    cases = {(c, v) for c, v, _ in people if category is None or c.startswith(category + "-")}
    return float(np.mean([score((c, v, "local")) - score((c, v, "cloud")) for c, v in cases]))


def truth_labels(records: list[CaseRecord], people: dict[Key, dict[str, int]], n: int, labeller: str = "alice",
                 seed: int = 0) -> list[LabelRecord]:
    """People's labels of the first ``n`` answers of the label queue, from the truth."""
    return [LabelRecord(case_id=c, variant=v, tier=t, labeller=labeller, scores=people[(c, v, t)],
                        confident_but_wrong=False)
            for c, v, t in label_queue(graded_answers(records), labeller, set(), n, seed)]
