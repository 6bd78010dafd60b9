"""Local-vs-cloud drift per category, from a run's generation frame: the graded gap with its intervals.

Reads the frame's ``grade_status`` / ``grade_score`` / ``confident_but_wrong`` columns and the cheap answer metrics.
One row per category plus ``all``:

- the paired gap (local - cloud) of the graded score on cases graded on both tiers, with a paired-bootstrap interval,
  or a cluster-robust one when cases share a source document (or a case appears under several variants);
- the minimum detectable difference at 80% power beside it;
- PPI++ estimates of each tier's mean and of the gap, using the cheap prediction on every answered case;
- the confident-but-wrong rate per tier with a Wilson interval;
- when people have labelled graded answers, the gap and each tier's mean corrected for the grader's error by
  two-stage PPI (people ⊂ graded ⊂ answered, :mod:`harness.metrics.stats.two_stage`), with the people as the gold
  standard. The grader's error per tier is pooled over categories (a category rarely has enough labels of its own),
  which assumes the grader errs alike across categories; the ``all`` row needs no such assumption. Without labels the
  figures are the grader's, marked uncorrected.

Pure: frames in, dataclasses out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.case_values import ALL_CATEGORIES
from harness.metrics.predictors import quality_prediction
from harness.metrics.stats.intervals import Interval, min_detectable_difference, paired_gap, wilson_interval
from harness.metrics.stats.ppi import PPIEstimate, ppi_mean
from harness.metrics.stats.two_stage import two_stage_mean

TIERS = ("local", "cloud")
UNCORRECTED = "uncorrected: the grader is unvalidated"


@dataclass(frozen=True)
class DriftRow:
    """Drift of one category (or ``all``)."""

    category: str
    cases: int  # case × variant pairs answered on both tiers
    graded_pairs: int  # ... of which graded on both tiers
    gap: Interval  # local - cloud, grades only
    mdd: float | None  # minimum detectable |gap| at 80% power, from the grades-only interval
    ppi_gap: PPIEstimate
    ppi_tier: dict[str, PPIEstimate]
    confident_but_wrong: dict[str, Interval]
    labelled: int = 0  # graded answers people labelled, over every category (the pooled correction's sample)
    corrected_gap: Interval | None = None  # local - cloud of people's scores; None without labels
    corrected_tier: dict[str, Interval] | None = None

    @property
    def decision_gap(self) -> Interval:
        """The interval the advice reads: corrected by people's labels when there are any; else PPI++ for independent
        cases, or the cluster-robust grades-only one."""
        if self.corrected_gap is not None:
            return self.corrected_gap
        if self.gap.method.startswith("cluster") or not self.ppi_gap.ppi.has_interval:
            return self.gap
        return self.ppi_gap.ppi

    @property
    def estimator(self) -> str:
        """Which estimator produced the decision figure, and whether people validated the grader behind it."""
        gap = self.decision_gap
        if self.corrected_gap is not None:
            return f"{gap.method}, corrected by {self.labelled} labelled answers"
        return f"{gap.method} ({UNCORRECTED})"


def pair_frame(gen: pd.DataFrame, human: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per case × variant answered by both tiers: grades, people's scores, predictions and latencies.

    ``human`` (``case_id, variant, tier, human_score``: see :func:`harness.analysis.labelled.human_scores`) adds each
    tier's ``human`` column, kept only where the grader graded too (the two-stage design: people ⊂ graded).
    """
    if gen.empty or not set(TIERS) <= set(gen["tier"]):
        return pd.DataFrame()
    frame = gen.copy()
    if human is not None and not human.empty:
        frame = frame.merge(human[["case_id", "variant", "tier", "human_score"]],
                            on=["case_id", "variant", "tier"], how="left")
    else:
        frame["human_score"] = np.nan
    ok = frame["status"] == "ok"
    graded = ok & (frame["grade_status"] == "graded")
    frame["graded_score"] = frame["grade_score"].where(graded)
    frame["human"] = frame["human_score"].where(graded & frame["grade_score"].notna())
    frame["cbw"] = frame["confident_but_wrong"].where(graded)
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    frame["prediction"] = [
        quality_prediction(row, answerable=bool(row.get("answerable", True))) if is_ok else None
        for row, is_ok in zip(records, ok, strict=True)
    ]
    frame["ok_latency"] = frame["latency_s"].where(ok)
    frame["ok_cost"] = frame["cost_usd"].where(ok)
    keep = ["graded_score", "human", "cbw", "prediction", "ok_latency", "ok_cost"]
    frame = frame[frame["tier"].isin(TIERS)]
    wide = pd.DataFrame(frame.set_index(["case_id", "variant", "category", "tier"])[keep].astype(float).unstack("tier"))
    wide.columns = [f"{tier}.{column}" for column, tier in wide.columns]  # type: ignore[str-unpack]
    wide = wide.reset_index()
    for column in (f"{t}.{c}" for t in TIERS for c in keep):
        if column not in wide:
            wide[column] = np.nan
    source = gen.drop_duplicates(["case_id"]).set_index("case_id").get("source_doc")
    wide["cluster"] = wide["case_id"].map(source).fillna(wide["case_id"]) if source is not None else wide["case_id"]
    return wide


def drift_rows(gen: pd.DataFrame, human: pd.DataFrame | None = None, *, confidence: float = 0.95,
               n_resamples: int = 2000, seed: int = 0) -> list[DriftRow]:
    """Per-category drift rows (sorted by category) and the ``all`` row last; [] when a tier never answered."""
    pairs = pair_frame(gen, human)
    if pairs.empty or not (pairs["local.ok_latency"].notna() & pairs["cloud.ok_latency"].notna()).any():
        return []
    errors = _grader_errors(pairs)
    groups = [(str(c), g) for c, g in pairs.groupby("category", sort=True)] + [(ALL_CATEGORIES, pairs)]
    return [_row(name, group, confidence, n_resamples, seed, errors) for name, group in groups]


GraderErrors = dict[str, tuple[np.ndarray, list[str]]]
"""tier -> (person - grader on each labelled answer, its cluster)."""


def _grader_errors(pairs: pd.DataFrame) -> GraderErrors | None:
    """The grader's error (person minus grader) on every labelled answer of each tier, pooled over categories."""
    out: GraderErrors = {}
    for tier in TIERS:
        error = (pairs[f"{tier}.human"] - pairs[f"{tier}.graded_score"]).to_numpy(float)
        has = ~np.isnan(error)
        out[tier] = (error[has], [str(c) for c in pairs["cluster"][has]])
    return out if any(values.size for values, _ in out.values()) else None


def _corrected(pairs: pd.DataFrame, errors: GraderErrors, confidence: float) -> tuple[Interval, dict[str, Interval]]:
    clusters = [str(c) for c in pairs["cluster"]]
    local, cloud = (pairs[f"{t}.graded_score"].to_numpy(float) for t in TIERS)
    pred_gap = (pairs["local.prediction"] - pairs["cloud.prediction"]).to_numpy(float)
    gap = two_stage_mean(local - cloud, pred_gap, clusters,
                         [(1.0, *errors["local"]), (-1.0, *errors["cloud"])], confidence=confidence)
    tiers = {
        tier: two_stage_mean(pairs[f"{tier}.graded_score"].to_numpy(float), pairs[f"{tier}.prediction"].to_numpy(float),
                             clusters, [(1.0, *errors[tier])], confidence=confidence)
        for tier in TIERS
    }
    return gap, tiers


def _row(category: str, pairs: pd.DataFrame, confidence: float, n_resamples: int, seed: int,
         errors: GraderErrors | None = None) -> DriftRow:
    local, cloud = pairs["local.graded_score"].to_numpy(float), pairs["cloud.graded_score"].to_numpy(float)
    both_answered = pairs["local.ok_latency"].notna() & pairs["cloud.ok_latency"].notna()
    clusters = [str(c) for c in pairs["cluster"]]
    gap = paired_gap(local, cloud, clusters=clusters, confidence=confidence, n_resamples=n_resamples, seed=seed)
    labelled = ~np.isnan(local) & ~np.isnan(cloud)
    pred_gap = (pairs["local.prediction"] - pairs["cloud.prediction"]).to_numpy(float)
    ppi_gap = ppi_mean((local - cloud)[labelled], pred_gap[labelled], pred_gap[~labelled], confidence=confidence)
    ppi_tier = {}
    cbw = {}
    for tier in TIERS:
        y = pairs[f"{tier}.graded_score"].to_numpy(float)
        f = pairs[f"{tier}.prediction"].to_numpy(float)
        has_label = ~np.isnan(y)
        ppi_tier[tier] = ppi_mean(y[has_label], f[has_label], f[~has_label], confidence=confidence)
        flags = pairs[f"{tier}.cbw"].dropna().astype(bool)
        cbw[tier] = wilson_interval(int(flags.sum()), int(flags.size), confidence=confidence)
    corrected_gap, corrected_tier = _corrected(pairs, errors, confidence) if errors is not None else (None, None)
    return DriftRow(
        category=category,
        cases=int(both_answered.sum()),
        graded_pairs=int(labelled.sum()),
        gap=gap,
        mdd=min_detectable_difference(gap.se, gap.df) if gap.has_interval else None,
        ppi_gap=ppi_gap,
        ppi_tier=ppi_tier,
        confident_but_wrong=cbw,
        labelled=sum(values.size for values, _ in errors.values()) if errors is not None else 0,
        corrected_gap=corrected_gap,
        corrected_tier=corrected_tier,
    )
