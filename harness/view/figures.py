"""The headline figures the runs page shows for a run, from its cases table: the headline retrieval metric per
variant and the graded local − cloud gap per variant, each a mean with its standard error and n.

They are the same numbers as :func:`harness.analysis.history.run_series` gives for those series (the tests hold
them to it), computed from the rows the viewer builds anyway, so the runs page never loads a whole run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

Z95 = 1.959964


@dataclass(frozen=True)
class Figure:
    name: str  # e.g. ndcg@5[dense], gap[dense]
    mean: float
    se: float | None  # None with one value
    n: int

    @property
    def text(self) -> str:
        if self.se is None or self.se != self.se:
            return f"{self.mean:.3f} (no interval: one case)"
        return f"{self.mean:.3f} ± {Z95 * self.se:.3f} (n={self.n})"


def _figure(name: str, sample: pd.Series) -> Figure | None:
    if sample.empty:
        return None
    se = float(sample.std(ddof=1) / math.sqrt(len(sample))) if len(sample) > 1 else None
    return Figure(name, float(sample.mean()), se, len(sample))


def headline_figures(frame: pd.DataFrame, headline: str, variants: list[str]) -> list[Figure]:
    """Per variant, the headline metric over records whose retrieval was measured; then the paired local − cloud
    gap in graded score per variant, over cases both tiers answered and were graded on."""
    out: list[Figure] = []
    if frame.empty:
        return out
    records = frame.drop_duplicates("record")
    if headline:
        measured = records[records["measured"]]
        for variant in variants:
            figure = _figure(f"{headline}[{variant}]",
                             measured.loc[measured["variant"] == variant, "headline"].dropna().astype(float))
            if figure is not None:
                out.append(figure)
    graded = frame[(frame["status"] == "ok") & frame["score"].notna()]
    if graded.empty:
        return out
    wide = graded.pivot_table(index=["case_id", "variant"], columns="tier", values="score")
    if {"local", "cloud"} <= set(wide.columns):
        both = wide.dropna(subset=["local", "cloud"]).reset_index()
        for gap_variant, part in both.groupby("variant", sort=True):
            figure = _figure(f"gap[{gap_variant}]", (part["local"] - part["cloud"]).astype(float))
            if figure is not None:
                out.append(figure)
    return out
