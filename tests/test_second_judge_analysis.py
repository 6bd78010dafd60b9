"""Judge against judge on hand-made records: kappa and alpha against scikit-learn and ``krippendorff``, the gaps and
their difference against hand arithmetic, counts only below the minimum; and the grade log's judge field."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from harness.analysis.agreement import MIN_LABELLED
from harness.analysis.judges import compare_judges
from harness.grading.score import overall_score
from harness.store.grade_log import GRADES, GradeEntry, append_grades, read_grades, read_second_judges
from harness.store.records import CaseRecord, GenerationRecord, GradeRecord, RetrievalRecord


def grade(c: int, f: int, m: int, model: str) -> GradeRecord:
    scores = {"correctness": c, "faithfulness": f, "completeness": m}
    return GradeRecord(status="graded", scores=scores, score=overall_score(scores), grader_model=model)


def build(n: int, seed: int = 1) -> tuple[list[CaseRecord], dict[tuple[str, str, str], GradeRecord], np.ndarray]:
    """``n`` cases on two tiers; Claude's scores and a second judge's, which differ by scripted noise."""
    rng = np.random.default_rng(seed)
    records, second = [], {}
    truth = rng.integers(0, 4, size=(n, 2, 3))
    for i in range(n):
        generations = {}
        for t, tier in enumerate(("local", "cloud")):
            c, f, m = (int(v) for v in truth[i, t])
            other = [int(np.clip(v + rng.choice([-1, 0, 0, 1]), 0, 3)) for v in (c, f, m)]
            generations[tier] = GenerationRecord(status="ok", tier=tier, text="x", grade=grade(c, f, m, "claude-x"))
            second[(f"c{i}", "dense", tier)] = grade(*other, "qwen-x")
        records.append(CaseRecord(case_id=f"c{i}", variant="dense", category="a" if i % 2 else "b", question="q",
                                  relevant={f"d{i}": 1}, generate=True,
                                  retrieval=RetrievalRecord(ranked=[], metrics={}), generations=generations))
    return records, second, truth


def test_kappa_and_alpha_match_the_oracles_and_the_gaps_match_hand_arithmetic() -> None:
    records, second, _ = build(30)
    [result] = compare_judges(records, {"qwen": second})
    assert result.judge == "qwen" and result.primary_model == "claude-x" and result.judge_model == "qwen-x"
    assert result.both_graded == 60 and result.enough
    keys = [(r.case_id, r.variant, t) for r in records for t in ("local", "cloud")]
    mine = {(r.case_id, r.variant, t): g.grade for r in records for t, g in r.generations.items()}
    for row in result.criteria:
        def value(g: GradeRecord, name: str = row.name) -> int:
            scores = g.scores or {}
            return sum(scores.values()) if name == "overall" else scores[name]

        a = [value(mine[k]) for k in keys]
        b = [value(second[k]) for k in keys]
        assert row.kappa.estimate == pytest.approx(cohen_kappa_score(a, b, weights="quadratic",
                                                                     labels=list(range(row.scale_max + 1))))
        oracle = krippendorff.alpha(reliability_data=[a, b], level_of_measurement="ordinal",
                                    value_domain=list(range(row.scale_max + 1)))
        assert row.alpha.estimate == pytest.approx(oracle)
        assert row.kappa.low is not None and row.kappa.low <= row.kappa.estimate <= row.kappa.high  # type: ignore[operator]
    everything = next(g for g in result.gaps if g.category == "(all)")
    c_gap = [mine[(r.case_id, "dense", "local")].score - mine[(r.case_id, "dense", "cloud")].score  # type: ignore[operator]
             for r in records]
    s_gap = [second[(r.case_id, "dense", "local")].score - second[(r.case_id, "dense", "cloud")].score  # type: ignore[operator]
             for r in records]
    assert everything.pairs == 30
    assert everything.primary_gap.estimate == pytest.approx(np.mean(c_gap))
    assert everything.second_gap.estimate == pytest.approx(np.mean(s_gap))
    assert everything.difference.estimate == pytest.approx(np.mean(s_gap) - np.mean(c_gap))
    assert everything.difference.has_interval
    assert [g.category for g in result.gaps] == ["a", "b", "(all)"] and sum(g.pairs for g in result.gaps[:2]) == 30


def test_few_answers_graded_by_both_show_counts_and_say_how_many_more() -> None:
    records, second, _ = build(4)
    [result] = compare_judges(records, {"qwen": second})
    assert result.both_graded == 8 < MIN_LABELLED and not result.enough
    shortfall = result.shortfall or ""
    assert "graded by both judges" in shortfall and f"{MIN_LABELLED - 8} more" in shortfall
    assert all(row.kappa.estimate is None and row.alpha.estimate is None for row in result.criteria)
    assert all(row.exact.n == 8 for row in result.criteria)


def test_an_answer_only_one_judge_graded_is_left_out_of_the_pairs() -> None:
    records, second, _ = build(30)
    second[("c0", "dense", "cloud")] = GradeRecord(status="grade_error", reason="bad grader output twice")
    del second[("c1", "dense", "local")]
    [result] = compare_judges(records, {"qwen": second})
    assert result.graded == {"claude": 60, "qwen": 58} and result.both_graded == 58
    assert next(g for g in result.gaps if g.category == "(all)").pairs == 28
    assert compare_judges(records, {}) == []


def test_a_version_1_grade_log_reads_as_the_primary_judges_and_second_judges_read_apart(tmp_path: Path) -> None:
    old = {"schema_version": 1, "case_id": "a", "variant": "dense", "tier": "local",
           "grade": {"status": "graded", "scores": {"correctness": 3, "faithfulness": 3, "completeness": 3},
                     "score": 1.0, "grader_model": "claude-sonnet-4-5", "cache_read_tokens": 7,
                     "cache_write_tokens": 0}}
    (tmp_path / GRADES).write_text(json.dumps(old) + "\n", encoding="utf-8")
    append_grades(tmp_path, [GradeEntry(case_id="a", variant="dense", tier="local", judge="qwen",
                                        grade=grade(1, 1, 1, "qwen2.5:7b"))])
    append_grades(tmp_path, [GradeEntry(case_id="b", variant="dense", tier="local", grade=grade(2, 2, 2, "c"))])
    lines = [json.loads(line) for line in (tmp_path / GRADES).read_text().splitlines()]
    assert [line.get("judge") for line in lines] == [None, "qwen", "claude"]
    assert [line["schema_version"] for line in lines] == [1, 2, 2]
    primary = read_grades(tmp_path)
    assert set(primary) == {("a", "dense", "local"), ("b", "dense", "local")}
    assert primary[("a", "dense", "local")].score == 1.0  # Claude's, never the second judge's
    # and with the cache-token names of run-store version 5
    assert (primary[("a", "dense", "local")].cache_read_input_tokens,
            primary[("a", "dense", "local")].cache_creation_input_tokens) == (7, 0)
    assert {name: list(grades) for name, grades in read_second_judges(tmp_path).items()} == {
        "qwen": [("a", "dense", "local")]}
