"""Below the minimum n the report says "too few cases (n=...)" instead of an interval; from it up, the interval is the
percentile bootstrap's, checked against scipy's own bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from harness.metrics.stats.intervals import MIN_CASES
from harness.report import tables
from harness.report.intervals import (
    INTERVAL_COLUMN,
    interval_text,
    too_few,
    with_interval_column,
)
from harness.report.markdown_table import table


def generation_rows(n_code: int, n_estimate: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n_code + n_estimate):
        category = "code" if i < n_code else "estimate"
        for tier, shift in (("local", -0.2), ("cloud", 0.0)):
            rows.append({"case_id": f"c{i}", "variant": "dense", "category": category, "tier": tier, "status": "ok",
                         "token_f1": float(np.clip(0.6 + shift + rng.normal(0, 0.15), 0, 1))})
    return pd.DataFrame(rows)


def test_too_few_cases_get_a_reason_instead_of_an_interval() -> None:
    drift = tables.tier_drift(generation_rows(n_code=8, n_estimate=2), "token_f1")
    by_category = drift.set_index("category")
    assert by_category.loc["estimate", "n"] == 2
    assert pd.isna(by_category.loc["estimate", "ci_low"]) and pd.isna(by_category.loc["estimate", "ci_high"])
    assert by_category.loc["code", "ci_low"] < by_category.loc["code", "gap"]
    shown = with_interval_column(drift).set_index("category")
    assert shown.loc["estimate", INTERVAL_COLUMN] == "too few cases (n=2)"
    assert shown.loc["code", INTERVAL_COLUMN].startswith("[")
    assert "too few cases (n=2)" in table(with_interval_column(drift), index=False)
    assert "[0.000, 0.000]" not in table(with_interval_column(drift), index=False)


def test_the_threshold_is_the_named_constant() -> None:
    assert too_few(MIN_CASES - 1) == f"too few cases (n={MIN_CASES - 1})"
    assert too_few(MIN_CASES) is None and too_few(0) == "no cases"
    assert interval_text(0.1, 0.3, MIN_CASES) == "[0.100, 0.300]"


@pytest.mark.parametrize("n", [MIN_CASES - 1, MIN_CASES, 40])
def test_the_headline_interval_appears_from_the_minimum_and_matches_scipy(n: int) -> None:
    values = np.random.default_rng(n).uniform(0, 1, size=n)
    frame = pd.DataFrame({"variant": "dense", "unmeasured_reason": None, "ndcg@10": values})
    row = tables.headline_with_ci(frame, "ndcg@10", ["dense"]).loc["dense"]
    assert row["mean"] == pytest.approx(values.mean())
    if n < MIN_CASES:
        assert row["ci_low"] is None and row["ci_high"] is None
        return
    oracle = scipy_stats.bootstrap((values,), np.mean, n_resamples=20_000, method="percentile", random_state=1)
    # Two Monte Carlo bootstraps agree to within resampling noise.
    assert row["ci_low"] == pytest.approx(oracle.confidence_interval.low, abs=0.03)
    assert row["ci_high"] == pytest.approx(oracle.confidence_interval.high, abs=0.03)


def test_drift_between_named_tiers_is_the_paired_mean_difference() -> None:
    frame = generation_rows(n_code=8, n_estimate=6)
    named = frame.assign(tier=frame["tier"].map({"local": "fleet-8b", "cloud": "sonnet"}))
    drift = tables.tier_drift(named, "token_f1", "fleet-8b", "sonnet").set_index("category")
    wide = named.pivot_table(index=["case_id", "category"], columns="tier", values="token_f1").reset_index()
    for category, part in wide.groupby("category"):
        assert drift.loc[category, "gap"] == pytest.approx((part["fleet-8b"] - part["sonnet"]).mean())
        assert drift.loc[category, "n"] == len(part)
    assert tables.tier_drift(named, "token_f1").empty  # no tiers named local and cloud here
