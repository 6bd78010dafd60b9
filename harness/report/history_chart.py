"""The history chart: one panel per family of headline series, one line per series, runs along the x axis.

A run with no value in a series (a tier that replayed every answer from the cache has no latency) is skipped by that
series' line, not drawn as a point; a run whose answers were mostly replayed is labelled so on the x axis.
"""

from __future__ import annotations

import io
import math

from harness.analysis.history import History

FAMILIES = ("retrieval", "gap", "latency_p50_s", "cost_per_1k_usd")


def _family(series: str) -> str:
    head = series.split("[", 1)[0]
    return head if head in FAMILIES else "retrieval"


def series_points(history: History, column: str) -> list[tuple[int, float, float]]:
    """The points a series draws: (run position, value, ±1.96 sampling SE), runs without a value left out."""
    points = []
    for x, (value, error) in enumerate(zip(history.table[column], history.errors[column], strict=True)):
        if value is None or math.isnan(float(value)):
            continue
        half = 0.0 if error is None or math.isnan(float(error)) else float(error) * 1.96
        points.append((x, float(value), half))
    return points


def history_chart(history: History) -> tuple[bytes, bytes] | None:
    """PNG and SVG bytes of the chart, or None when there is nothing to draw. Error bars: ±1.96 sampling SE."""
    if history.table.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in FAMILIES if any(_family(c) == f for c in history.table.columns)]
    figure, axes = plt.subplots(len(families), 1, figsize=(9, 2.8 * len(families)), squeeze=False)
    x = list(range(len(history.table)))
    for axis, family in zip(axes[:, 0], families, strict=True):
        for column in [c for c in history.table.columns if _family(c) == family]:
            points = series_points(history, column)
            if not points:
                continue
            xs, values, errors = zip(*points, strict=True)
            axis.errorbar(xs, values, yerr=errors, marker="o", capsize=3, label=column)
            drift = history.drift.get(column)
            if drift is not None and drift.alarm and xs[-1] == x[-1]:
                axis.plot([xs[-1]], [values[-1]], "rx", markersize=12)
        axis.set_title({"retrieval": "retrieval (mean over answerable cases)", "gap": "graded local − cloud",
                        "latency_p50_s": "latency p50 (s)", "cost_per_1k_usd": "cost per 1,000 calls (USD)"}[family],
                       fontsize=10)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="best")
        axis.set_xticks(x)
        axis.set_xticklabels([history.run_label(run) for run in history.table.index], rotation=30, fontsize=7,
                             ha="right")
    figure.tight_layout()
    png, svg = io.BytesIO(), io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    figure.savefig(svg, format="svg")
    plt.close(figure)
    return png.getvalue(), svg.getvalue()
