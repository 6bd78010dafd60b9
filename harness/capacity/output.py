"""What `harness fleet bench` writes: the results as JSON, the chart as PNG, and the table's cells as plain text."""

from __future__ import annotations

import json
from pathlib import Path

from harness.capacity.summary import PointSummary
from harness.capacity.sweep import BenchResult
from harness.metrics.stats.intervals import Interval
from harness.report.capacity_chart import CurvePoint, capacity_png
from harness.store.store import atomic_write_bytes, atomic_write_text

JSON_NAME = "capacity.json"
CHART_NAME = "capacity.png"
SCHEMA_VERSION = 2  # 2: estimates are the one Interval shape (estimate, low, high, n, method, ..., reason)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def estimate_cell(interval: Interval) -> str:
    """``estimate [low, high]`` in ms; ``estimate [n/a]`` when the sample supports no interval."""
    if interval.estimate is None:
        return "-"
    if interval.low is None or interval.high is None:
        return f"{ms(interval.estimate)} [n/a]"
    return f"{ms(interval.estimate)} [{ms(interval.low)}, {ms(interval.high)}]"


def busy_cell(point: PointSummary) -> str:
    return " ".join(f"{share:.0%}" for share in point.busy_share.values())


def result_json(result: BenchResult) -> dict[str, object]:
    return {"schema_version": SCHEMA_VERSION, **result.to_dict()}


def chart(result: BenchResult, title: str) -> bytes:
    series: dict[str, list[CurvePoint]] = {}
    for point in result.points:
        series.setdefault(point.strategy, []).append(
            CurvePoint(point.offered_rate, point.p("p50"), point.p("p95"), point.p("p99"))
        )
    knees = {knee.strategy: knee.rate for knee in result.knees}
    return capacity_png(series, knees, slo_s=result.slo_s, title=title)


def write_outputs(result: BenchResult, out_dir: Path, *, title: str) -> tuple[Path, Path]:
    """Write ``capacity.json`` and ``capacity.png`` into ``out_dir`` (atomically); return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, chart_path = out_dir / JSON_NAME, out_dir / CHART_NAME
    atomic_write_text(json_path, json.dumps(result_json(result), indent=2, sort_keys=True, default=str) + "\n")
    atomic_write_bytes(chart_path, chart(result, title))
    return json_path, chart_path
