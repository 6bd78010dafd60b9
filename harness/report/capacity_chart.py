"""The capacity chart: latency percentiles against offered load, one colour per strategy, each knee marked.

Takes plain numbers (report/ does not import capacity/), returns PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CurvePoint:
    rate: float
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


def capacity_png(
    series: Mapping[str, Sequence[CurvePoint]],
    knees: Mapping[str, float | None],
    *,
    slo_s: float,
    title: str,
) -> bytes:
    """p99 as a solid line and p50 dotted, per series; the SLO as a horizontal line; each knee as a ringed marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, points) in enumerate(series.items()):
        colour = colours[index % len(colours)]
        ordered = sorted(points, key=lambda p: p.rate)
        p99 = [(p.rate, p.p99_s * 1000) for p in ordered if p.p99_s is not None]
        p50 = [(p.rate, p.p50_s * 1000) for p in ordered if p.p50_s is not None]
        if p99:
            axis.plot(*zip(*p99, strict=True), marker="o", color=colour, label=f"{name} p99")
        if p50:
            axis.plot(*zip(*p50, strict=True), linestyle=":", color=colour, alpha=0.7)
        knee = knees.get(name)
        at_knee = next((p for p in ordered if p.rate == knee and p.p99_s is not None), None)
        if at_knee is not None and at_knee.p99_s is not None:
            axis.scatter([at_knee.rate], [at_knee.p99_s * 1000], s=220, facecolors="none", edgecolors=colour,
                         linewidths=2, zorder=5)
            axis.annotate(f"knee {at_knee.rate:g}/s", (at_knee.rate, at_knee.p99_s * 1000), textcoords="offset points",
                          xytext=(6, 8), fontsize=8, color=colour)
    axis.axhline(slo_s * 1000, color="grey", linestyle="--", linewidth=1, label=f"SLO {slo_s * 1000:.0f} ms")
    axis.set_yscale("log")
    axis.set_xlabel("offered load (calls/s, Poisson)")
    axis.set_ylabel("latency ms (solid p99, dotted p50)")
    axis.set_title(title)
    axis.legend(fontsize=8, loc="upper left")
    axis.grid(True, which="both", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
