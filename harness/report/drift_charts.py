"""Drift charts for the HTML report: a forest plot of the per-category gaps and the latency distributions per tier."""

from __future__ import annotations

import numpy as np

from harness.report.charts import _png
from harness.report.drift_section import DriftAnalysis


def forest_plot(analysis: DriftAnalysis) -> str | None:
    """Local − cloud gap per category with its interval (grades only, and PPI++), the tolerance marked."""
    rows = [row for row in analysis.rows if row.gap.estimate is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.2))
    for y, row in enumerate(reversed(rows)):
        for offset, interval, colour, label in ((0.12, row.gap, "tab:blue", "grades only"),
                                                (-0.12, row.ppi_gap.ppi, "tab:orange", "PPI++")):
            if interval.estimate is None:
                continue
            axis.plot([interval.estimate], [y + offset], "o", color=colour, label=label if y == 0 else None)
            if interval.low is not None and interval.high is not None:
                axis.plot([interval.low, interval.high], [y + offset] * 2, "-", color=colour)
    axis.axvline(0.0, color="grey", linewidth=0.8)
    axis.axvline(-analysis.config.tolerance, color="red", linestyle="--", linewidth=0.8, label="− tolerance")
    axis.set_yticks(range(len(rows)), [row.category for row in reversed(rows)])
    axis.set_xlabel("local − cloud, graded score (0–1)")
    axis.set_title(f"drift by category, {analysis.config.confidence:.0%} intervals")
    axis.legend(fontsize=8, loc="best")
    return _png(figure)


def latency_histograms(analysis: DriftAnalysis) -> str | None:
    """Overlaid latency histograms of the two tiers' successful calls (log-spaced bins)."""
    series = {name: np.asarray(tier.latencies) for name, tier in analysis.costs.tiers.items() if tier.latencies}
    series = {name: values[values > 0] for name, values in series.items()}
    if not any(values.size for values in series.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = np.concatenate([v for v in series.values() if v.size])
    bins: list[float] | int = (
        np.geomspace(every.min(), every.max() * 1.0001, 30).tolist() if every.min() < every.max() else 10
    )
    figure, axis = plt.subplots(figsize=(8, 3.2))
    for name, values in series.items():
        axis.hist(values, bins=bins, alpha=0.55, label=f"{name} (n={values.size})")
    axis.set_xscale("log")
    axis.set_xlabel("seconds")
    axis.set_ylabel("calls")
    axis.set_title("latency distribution by tier")
    axis.legend(fontsize=8)
    return _png(figure)


def figures(analysis: DriftAnalysis) -> list[str]:
    return [png for png in (forest_plot(analysis), latency_histograms(analysis)) if png]
