"""The history chart: one panel per family of headline series, one line per series, runs along the x axis."""

from __future__ import annotations

import io

from harness.analysis.history import History

FAMILIES = ("retrieval", "gap", "latency_p50_s", "cost_per_1k_usd")


def _family(series: str) -> str:
    head = series.split("[", 1)[0]
    return head if head in FAMILIES else "retrieval"


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
            values = history.table[column].astype(float)
            errors = history.errors[column].astype(float) * 1.96
            axis.errorbar(x, values, yerr=errors.fillna(0.0), marker="o", capsize=3, label=column)
            drift = history.drift.get(column)
            if drift is not None and drift.alarm:
                axis.plot([x[-1]], [values.iloc[-1]], "rx", markersize=12)
        axis.set_title({"retrieval": "retrieval (mean over answerable cases)", "gap": "graded local − cloud",
                        "latency_p50_s": "latency p50 (s)", "cost_per_1k_usd": "cost per 1,000 calls (USD)"}[family],
                       fontsize=10)
        axis.legend(fontsize=7, loc="best")
        axis.set_xticks(x)
        axis.set_xticklabels(list(history.table.index), rotation=30, fontsize=7, ha="right")
    figure.tight_layout()
    png, svg = io.BytesIO(), io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    figure.savefig(svg, format="svg")
    plt.close(figure)
    return png.getvalue(), svg.getvalue()
