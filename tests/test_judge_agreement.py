"""Judge agreement against independent oracles, the few-labels rule,; a self-preferring grader caught and corrected."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from drift_records import write_run
from judge_records import make_run, true_gap, truth_labels
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from harness.analysis.advice import decide, shortfall_of
from harness.analysis.agreement import (
    agreement,
    confusion,
    ordinal_alpha,
    quadratic_kappa,
    two_rater_coincidence,
    unit_coincidence,
)
from harness.analysis.drift import UNCORRECTED, drift_rows
from harness.analysis.labelled import LabelPair, human_scores, label_pairs
from harness.cli.main import app
from harness.metrics.case_values import ALL_CATEGORIES
from harness.store.frames import generation_frame
from harness.store.labels import append_labels

METRICS = ["token_f1", "embedding_cosine", "must_include_recall", "context_support", "abstained"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kappa_and_alpha_match_sklearn_and_krippendorff(seed: int) -> None:
    rng = np.random.default_rng(seed)
    person = rng.integers(0, 4, 60)
    grader = np.clip(person + rng.integers(-1, 2, 60), 0, 3)
    matrix = confusion(person, grader, 4)
    assert quadratic_kappa(matrix) == pytest.approx(cohen_kappa_score(person, grader, weights="quadratic"))
    assert ordinal_alpha(two_rater_coincidence(matrix)) == pytest.approx(
        krippendorff.alpha(reliability_data=np.stack([person, grader]).astype(float), level_of_measurement="ordinal"))
    # three raters with gaps, as people labelling overlapping answers are
    data = rng.integers(0, 4, (3, 40)).astype(float)
    data[0, ::3] = np.nan
    units = [[int(v) for v in data[:, u] if not np.isnan(v)] for u in range(data.shape[1])]
    coincidence = sum(unit_coincidence(values, 4) for values in units)
    assert ordinal_alpha(coincidence) == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))


def pair(i: int, person: int, grader: int, tier: str = "local", labeller: str = "alice") -> LabelPair:
    return LabelPair((f"c{i}", "dense", tier), "x", labeller,
                     {"correctness": person, "faithfulness": person, "completeness": person},
                     {"correctness": grader, "faithfulness": grader, "completeness": grader}, False, False)


def test_three_perfect_labels_give_counts_and_how_many_more_never_a_kappa_of_one() -> None:
    result = agreement([pair(i, v, v) for i, v in enumerate((0, 2, 3))])
    assert not result.enough and result.labelled_answers == 3
    for row in result.criteria:
        assert row.kappa.estimate is None and row.alpha.estimate is None
        assert "need 20" in (row.kappa.reason or "")
        assert row.exact.estimate == 1.0 and row.exact.low is not None and row.exact.low < 0.5  # Wilson, n=3
    assert result.criteria[0].confusion[2][2] == 1
    assert result.shortfall is not None and "label" in result.shortfall and "more" in result.shortfall
    assert result.self_preference is None and result.bias_by_tier == {}


def test_inter_labeller_agreement_needs_two_people_on_one_answer() -> None:
    rng = np.random.default_rng(5)
    values = rng.integers(0, 4, 25)
    pairs = [pair(i, int(v), int(v)) for i, v in enumerate(values)]
    pairs += [pair(i, int(min(3, v + (i % 4 == 0))), int(v), labeller="bob") for i, v in enumerate(values)]
    inter = agreement(pairs).inter_labeller
    assert inter is not None and inter.answers == 25 and inter.labellers == ["alice", "bob"]
    assert inter.exact["correctness"].estimate == pytest.approx(1 - np.mean([(i % 4 == 0) and v < 3
                                                                            for i, v in enumerate(values)]))
    alpha = inter.alpha["correctness"]
    assert alpha.low is not None and alpha.high is not None and alpha.low <= (alpha.estimate or 0) <= alpha.high
    assert agreement(pairs[:25]).inter_labeller is None


def scenario() -> tuple[list, dict, list]:
    records, people = make_run(seed=0)
    return records, people, truth_labels(records, people, 60)


def test_a_self_preferring_grader_is_detected_and_the_drift_corrected() -> None:
    records, people, labels = scenario()
    result = agreement(label_pairs(records, labels))
    assert result.enough and result.labelled_answers == 60
    preference = result.self_preference
    assert preference is not None and preference.low is not None and preference.low > 0.05  # the scripted +0.15
    assert preference.high is not None and preference.low <= 0.15 <= preference.high
    gen = generation_frame(records, METRICS)
    plain = {row.category: row for row in drift_rows(gen)}
    corrected = {row.category: row for row in drift_rows(gen, human_scores(labels))}
    for category, row in corrected.items():
        truth = true_gap(people, None if category == ALL_CATEGORIES else category)
        gap = row.decision_gap
        assert gap.low is not None and gap.high is not None and gap.low <= truth <= gap.high, category
        biased = plain[category].decision_gap
        assert biased.high is not None and biased.high < truth, category  # the grader's gap misses the truth
        assert UNCORRECTED in plain[category].estimator and "corrected by 60 labelled answers" in row.estimator
    # the advice changes: the grader alone sends every category to the cloud; corrected, it does not
    assert decide(shortfall_of(plain[ALL_CATEGORIES].decision_gap), 0.05).verdict == "cloud"
    assert decide(shortfall_of(corrected[ALL_CATEGORIES].decision_gap), 0.05).verdict != "cloud"


def test_harness_judge_and_the_report_show_agreement_and_say_which_estimator(tmp_path: Path) -> None:
    records, _people, labels = scenario()
    run = write_run(tmp_path / "run", records)
    runner = CliRunner()
    empty = runner.invoke(app, ["judge", str(run)])
    assert empty.exit_code == 0 and "uncorrected: the grader is unvalidated" in empty.output
    append_labels(run, labels)
    data = json.loads(runner.invoke(app, ["judge", str(run), "--json"]).output)["agreement"]
    assert data["labelled_answers"] == 60 and data["self_preference"]["low"] > 0
    text = runner.invoke(app, ["judge", str(run)]).output
    assert "self-preference estimate" in text and "kappa" in text
    report = runner.invoke(app, ["report", str(run)])
    assert report.exit_code == 0, report.output
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert "Judge agreement" in markdown and "Corrected for the grader by people's labels" in markdown
    assert "two-stage PPI" in markdown


def test_self_preference_reads_a_ladders_claude_tiers_by_kind_not_by_name() -> None:
    """A ladder names its tiers: the same answers under the names haiku / fleet-8b give the same estimate as under
    cloud / local, once the Claude tiers are named."""
    from dataclasses import replace

    records, _, labels = scenario()
    pairs = label_pairs(records, labels)
    names = {"cloud": "haiku", "local": "fleet-8b"}
    renamed = [replace(p, key=(p.key[0], p.key[1], names[p.key[2]])) for p in pairs]
    built_in = agreement(pairs).self_preference
    ladder = agreement(renamed, claude_tiers=frozenset({"haiku"})).self_preference
    assert built_in is not None and ladder is not None
    assert (ladder.estimate, ladder.low, ladder.high, ladder.n) == (built_in.estimate, built_in.low, built_in.high,
                                                                    built_in.n)
    assert agreement(renamed).self_preference is None  # without the kinds, no tier is known to be Claude's
