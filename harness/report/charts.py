"""Charts for the HTML report, as inline PNG (the drift charts live in drift_charts.py, on the same helper)."""

from __future__ import annotations

import base64
import io

import pandas as pd


def _png(figure: object) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    import matplotlib.pyplot as plt

    plt.close(figure)  # type: ignore[arg-type]
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def category_bars(table: pd.DataFrame, metric: str) -> str | None:
    """Grouped bars: the headline metric per category, one bar per variant."""
    data = table.drop(columns=["cases"], errors="ignore").dropna(how="all")
    if data.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.6))
    data.plot.bar(ax=axis, rot=20)
    axis.set_ylabel(metric)
    axis.set_ylim(0, 1)
    axis.set_title(f"{metric} by category")
    axis.legend(title="variant", fontsize=8)
    return _png(figure)


def latency_boxes(gen: pd.DataFrame) -> str | None:
    """Latency distribution per tier × variant for answered calls."""
    ok = gen[(gen["status"] == "ok") & gen["latency_s"].notna()] if not gen.empty else gen
    if ok.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {f"{t}/{v}": part["latency_s"].astype(float).tolist() for (t, v), part in ok.groupby(["tier", "variant"])}
    figure, axis = plt.subplots(figsize=(8, 3.2))
    axis.boxplot(list(groups.values()), tick_labels=list(groups))
    axis.set_ylabel("seconds")
    axis.set_title("generation latency")
    return _png(figure)


def interval_bars(
    frame: pd.DataFrame, label: str, value: str, ylabel: str, *, zero_line: bool = False
) -> str | None:
    """One bar per row of ``frame`` with its ``ci_low``..``ci_high`` as an error bar; rows without an interval (too
    few cases) get a bar and no error bar, as the table beside it says."""
    data = frame[frame[value].notna()] if value in frame else frame.iloc[0:0]
    if data.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = data[value].astype(float).to_numpy()
    low = data["ci_low"].astype(float).to_numpy()
    high = data["ci_high"].astype(float).to_numpy()
    # Distances from the estimate; NaN (no interval) draws no error bar.
    errors = [values - low, high - values]
    figure, axis = plt.subplots(figsize=(max(4.0, 1.1 * len(data) + 2), 3.2))
    positions = range(len(data))
    axis.bar(positions, values, color="#4c78a8", yerr=errors, capsize=5, ecolor="#222")
    axis.set_xticks(list(positions), [str(item) for item in data[label]], rotation=20, ha="right")
    axis.set_ylabel(ylabel)
    if zero_line:
        axis.axhline(0, color="#888", linewidth=0.8)
    else:
        axis.set_ylim(0, max(1.0, float(max(high[~pd.isna(high)], default=0.0))))
    return _png(figure)
