"""Markdown tables whose every cell is escaped: untrusted text cannot end a cell, a row, or start markup."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.report.escape import md_text

UNMEASURED = "—"


def cell(value: Any) -> str:
    """One table cell: numbers to 3 decimals, missing values as an em dash (unmeasured, never 0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNMEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 0.001 and value != 0 else f"{value:.3f}"
    return md_text(value)


def table(frame: pd.DataFrame, index: bool = True) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    frame = frame.reset_index() if index and frame.index.name is not None else frame
    header = "| " + " | ".join(md_text(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
