"""The tables a report shows, computed from run-store frames. Pure pandas; no I/O, no model calls."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.case_values import ALL_CATEGORIES
from harness.metrics.stats import tests as stats
from harness.report.intervals import bounds
from harness.store.frames import fresh_answers


def retrieval_by_variant(frame: pd.DataFrame, metrics: list[str], variants: list[str]) -> pd.DataFrame:
    """Mean of each metric per variant over measured cases, with the count of measured and unmeasured cases."""
    rows = []
    for variant in variants:
        part = frame[frame["variant"] == variant]
        measured = part[part["unmeasured_reason"].isna()]
        row: dict[str, Any] = {"variant": variant, "measured": len(measured), "unmeasured": len(part) - len(measured)}
        for name in metrics:
            row[name] = measured[name].mean() if len(measured) else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def headline_with_ci(frame: pd.DataFrame, metric: str, variants: list[str], seed: int = 0) -> pd.DataFrame:
    rows = []
    for variant in variants:
        values = frame.loc[(frame["variant"] == variant) & frame["unmeasured_reason"].isna(), metric].tolist()
        ci = stats.bootstrap_mean_ci(values, seed=seed)
        low, high = bounds(ci)
        rows.append({"variant": variant, "mean": ci.estimate, "ci_low": low, "ci_high": high, "n": ci.n})
    return pd.DataFrame(rows).set_index("variant")


def by_category(frame: pd.DataFrame, metric: str, variants: list[str]) -> pd.DataFrame:
    """Rows: category; columns: variants; cells: mean of ``metric`` over measured cases ('n/a' when none)."""
    measured = frame[frame["unmeasured_reason"].isna()]
    table = measured.pivot_table(index="category", columns="variant", values=metric, aggfunc="mean")
    table = table.reindex(columns=[v for v in variants if v in table.columns])
    counts = frame.groupby("category")["case_id"].nunique().rename("cases")
    return table.join(counts, how="outer")


def paired_comparisons(frame: pd.DataFrame, metric: str, variants: list[str], seed: int = 0) -> pd.DataFrame:
    """Each pair of variants on the cases both measured: mean difference, its CI, and a sign-flip test p-value."""
    measured = frame[frame["unmeasured_reason"].isna()]
    wide = measured.pivot_table(index="case_id", columns="variant", values=metric)
    rows = []
    for a, b in combinations([v for v in variants if v in wide.columns], 2):
        both = wide[[a, b]].dropna()
        diff = stats.paired_bootstrap_ci(both[a].tolist(), both[b].tolist(), seed=seed)
        test = stats.sign_flip_test(both[a].tolist(), both[b].tolist(), seed=seed)
        rows.append(
            {
                "comparison": f"{b} − {a}",
                "n": len(both),
                "mean_diff": diff.estimate,
                "ci_low": bounds(diff)[0],
                "ci_high": bounds(diff)[1],
                "p_value": test.p_value,
            }
        )
    result = pd.DataFrame(rows)
    if not result.empty:
        result["p_holm"] = stats.holm(result["p_value"].tolist()).adjusted
    return result


def worst_cases(frame: pd.DataFrame, metric: str, limit: int = 10) -> pd.DataFrame:
    measured = frame[frame["unmeasured_reason"].isna()].copy()
    columns = ["case_id", "variant", "category", metric, "top_doc"]
    return measured.sort_values([metric, "case_id"]).head(limit)[columns]


def generation_summary(gen: pd.DataFrame, answer_metrics: list[str]) -> pd.DataFrame:
    """Per tier × variant: counts by status, answer-metric means over answered cases, latency, tokens and cost.

    ``cached`` counts the answers replayed from the response cache. Answer metrics count every answer; latency and
    cost count only the answers a call of this run made, and are missing where there is none.
    """
    rows = []
    for (tier, variant), part in gen.groupby(["tier", "variant"], sort=True):
        ok = part[part["status"] == "ok"]
        fresh = fresh_answers(ok)
        row: dict[str, Any] = {
            "tier": tier,
            "variant": variant,
            "answered": len(ok),
            "cached": len(ok) - len(fresh),
            "failed": int((part["status"] == "failed").sum()),
            "skipped": int((part["status"] == "skipped").sum()),
        }
        for name in answer_metrics:
            if name != "abstained":
                row[name] = _mean_or_none(ok, name)
        # Declining is right when the corpus has no answer and wrong when it has one: report the two apart.
        if "abstained" in answer_metrics:
            row["declined_unanswerable"] = _mean_or_none(ok[~ok["answerable"]], "abstained")
            row["declined_answerable"] = _mean_or_none(ok[ok["answerable"]], "abstained")
        row["latency_p50_s"] = _quantile_or_none(fresh, "latency_s", 0.5)
        row["latency_p95_s"] = _quantile_or_none(fresh, "latency_s", 0.95)
        row["tokens_in"] = _mean_or_none(ok, "input_tokens")
        row["tokens_out"] = _mean_or_none(ok, "output_tokens")
        row["cost_per_call_usd"] = _mean_or_none(fresh, "cost_usd")
        row["cost_total_usd"] = fresh["cost_usd"].sum(min_count=1) if "cost_usd" in fresh and len(fresh) else None
        rows.append(row)
    return pd.DataFrame(rows)


def tier_drift(gen: pd.DataFrame, metric: str, tier: str = "local", reference: str = "cloud",
               seed: int = 0) -> pd.DataFrame:
    """``tier`` minus ``reference`` on the cases both answered, per category: where the cheaper tier falls short.

    Columns: category, n, ``tier_mean``, ``reference_mean``, ``gap`` (tier − reference) and its interval (fixed
    names: a tier may be called anything, even ``n``)."""
    ok = gen[(gen["status"] == "ok") & gen[metric].notna()] if metric in gen else gen.iloc[0:0]
    wide = ok.pivot_table(index=["case_id", "variant", "category"], columns="tier", values=metric)
    if tier == reference or not {tier, reference} <= set(wide.columns):
        return pd.DataFrame()
    wide = wide.dropna(subset=[tier, reference]).reset_index()
    rows = []
    for category, part in [(ALL_CATEGORIES, wide), *wide.groupby("category")]:
        diff = stats.paired_bootstrap_ci(part[reference].tolist(), part[tier].tolist(), seed=seed)
        rows.append(
            {
                "category": category,
                "n": len(part),
                "tier_mean": part[tier].mean(),
                "reference_mean": part[reference].mean(),
                "gap": diff.estimate,
                "ci_low": bounds(diff)[0],
                "ci_high": bounds(diff)[1],
            }
        )
    return pd.DataFrame(rows)


def _mean_or_none(frame: pd.DataFrame, column: str) -> float | None:
    if column not in frame or frame[column].notna().sum() == 0:
        return None
    return float(frame[column].dropna().astype(float).mean())


def _quantile_or_none(frame: pd.DataFrame, column: str, q: float) -> float | None:
    if column not in frame or frame[column].notna().sum() == 0:
        return None
    return float(np.quantile(frame[column].dropna().astype(float), q))


def generation_ab(gen: pd.DataFrame, metrics: list[str], seed: int = 0) -> pd.DataFrame:
    """The A/B of the variants feeding the generator, per tier, on the cases both variants answered.

    For each answer metric: the paired mean difference with its bootstrap interval and a sign-flip p-value; for
    ``must_include_recall`` also McNemar's exact test on "every required string present".
    """
    rows = []
    ok = gen[gen["status"] == "ok"]
    for tier, part in ok.groupby("tier", sort=True):
        variants = sorted(part["variant"].unique())
        for a, b in combinations(variants, 2):
            for metric in metrics:
                if metric not in part:
                    continue
                wide = part.pivot_table(index="case_id", columns="variant", values=metric)
                if not {a, b} <= set(wide.columns):
                    continue
                both = wide[[a, b]].dropna()
                if both.empty:
                    continue
                diff = stats.paired_bootstrap_ci(both[a].tolist(), both[b].tolist(), seed=seed)
                test = stats.sign_flip_test(both[a].tolist(), both[b].tolist(), seed=seed)
                row: dict[str, Any] = {"tier": tier, "comparison": f"{b} − {a}", "metric": metric, "n": len(both),
                                       a: both[a].mean(), b: both[b].mean(), "mean_diff": diff.estimate,
                                       "ci_low": bounds(diff)[0], "ci_high": bounds(diff)[1],
                                       "p_value": test.p_value}
                if metric == "must_include_recall":
                    exact = stats.mcnemar_exact((both[a] == 1.0).tolist(), (both[b] == 1.0).tolist())
                    row["mcnemar_p"] = exact.p_value
                rows.append(row)
    return pd.DataFrame(rows)
