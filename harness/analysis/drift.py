"""Local-vs-cloud drift per category, from a run's generation frame: the graded gap with its intervals.

Reads the frame's ``grade_status`` / ``grade_score`` / ``confident_but_wrong`` columns and the cheap answer metrics.
One row per category plus ``all``:

- the paired gap (local - cloud) of the graded score on cases graded on both tiers, with a paired-bootstrap interval,
  or a cluster-robust one when cases share a source document (or a case appears under several variants);
- the minimum detectable difference at 80% power beside it;
- PPI++ estimates of each tier's mean and of the gap, using the cheap prediction on every answered case;
- the confident-but-wrong rate per tier with a Wilson interval.

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

TIERS = ("local", "cloud")


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

    @property
    def decision_gap(self) -> Interval:
        """The interval the advice reads: PPI++ for independent cases, else the cluster-robust grades-only one."""
        if self.gap.method.startswith("cluster") or not self.ppi_gap.ppi.has_interval:
            return self.gap
        return self.ppi_gap.ppi


def pair_frame(gen: pd.DataFrame) -> pd.DataFrame:
    """One row per case × variant answered by both tiers: grades, predictions and latencies side by side."""
    if gen.empty or not set(TIERS) <= set(gen["tier"]):
        return pd.DataFrame()
    frame = gen.copy()
    ok = frame["status"] == "ok"
    graded = ok & (frame["grade_status"] == "graded")
    frame["graded_score"] = frame["grade_score"].where(graded)
    frame["cbw"] = frame["confident_but_wrong"].where(graded)
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    frame["prediction"] = [
        quality_prediction(row, answerable=bool(row.get("answerable", True))) if is_ok else None
        for row, is_ok in zip(records, ok, strict=True)
    ]
    frame["ok_latency"] = frame["latency_s"].where(ok)
    frame["ok_cost"] = frame["cost_usd"].where(ok)
    keep = ["graded_score", "cbw", "prediction", "ok_latency", "ok_cost"]
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


def drift_rows(gen: pd.DataFrame, *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
               ) -> list[DriftRow]:
    """Per-category drift rows (sorted by category) and the ``all`` row last; [] when a tier never answered."""
    pairs = pair_frame(gen)
    if pairs.empty or not (pairs["local.ok_latency"].notna() & pairs["cloud.ok_latency"].notna()).any():
        return []
    groups = [(str(c), g) for c, g in pairs.groupby("category", sort=True)] + [(ALL_CATEGORIES, pairs)]
    return [_row(name, group, confidence, n_resamples, seed) for name, group in groups]


def _row(category: str, pairs: pd.DataFrame, confidence: float, n_resamples: int, seed: int) -> DriftRow:
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
    return DriftRow(
        category=category,
        cases=int(both_answered.sum()),
        graded_pairs=int(labelled.sum()),
        gap=gap,
        mdd=min_detectable_difference(gap.se, gap.df) if gap.has_interval else None,
        ppi_gap=ppi_gap,
        ppi_tier=ppi_tier,
        confident_but_wrong=cbw,
    )
