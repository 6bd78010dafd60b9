"""When a report shows an interval, and how it says why it shows none.

A percentile bootstrap over two or three cases gives intervals such as ``[0.000, 0.000]`` that look precise and mean
nothing. Below :data:`~harness.metrics.stats.intervals.MIN_CASES` (the statistics' own threshold) the report shows the
estimate with "too few cases (n=2)" instead.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.metrics.stats.intervals import MIN_CASES, Interval

INTERVAL_COLUMN = "95% CI"


def too_few(n: int) -> str | None:
    """The reason an interval is not shown for ``n`` cases, or ``None`` when it is."""
    if n == 0:
        return "no cases"
    return f"too few cases (n={n})" if n < MIN_CASES else None


def bounds(ci: Interval) -> tuple[float | None, float | None]:
    """The interval's bounds, or ``(None, None)`` when too few cases back it."""
    return (None, None) if too_few(ci.n) else (ci.low, ci.high)


def interval_text(low: float | None, high: float | None, n: int) -> str:
    reason = too_few(n)
    if reason:
        return reason
    if low is None or high is None or _nan(low) or _nan(high):
        return "not measured"
    return f"[{low:.3f}, {high:.3f}]"


def with_interval_column(frame: pd.DataFrame) -> pd.DataFrame:
    """For display: ``ci_low``/``ci_high`` folded into one "95% CI" column placed where ``ci_low`` was."""
    if frame.empty or not {"ci_low", "ci_high", "n"} <= set(frame.columns):
        return frame
    out = frame.copy()
    texts = [interval_text(lo, hi, int(n)) for lo, hi, n in zip(out["ci_low"], out["ci_high"], out["n"], strict=True)]
    position = list(out.columns).index("ci_low")
    out = out.drop(columns=["ci_low", "ci_high"])
    out.insert(position, INTERVAL_COLUMN, texts)
    return out


def _nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)
