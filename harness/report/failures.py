"""The failed-calls table for the HTML page: long error texts fold into a ``<details>`` element."""

from __future__ import annotations

import pandas as pd

from harness.report.escape import html_text
from harness.report.markdown_table import cell

FOLD_AFTER_CHARS = 120
"""Error texts longer than this show their start and fold the rest."""


def failures_html(frame: pd.DataFrame) -> str:
    """An HTML table of ``frame`` with every cell escaped; a long ``reason`` becomes a summary plus its full text."""
    head = "".join(f"<th>{html_text(column)}</th>" for column in frame.columns)
    rows = []
    for record in frame.to_dict(orient="records"):
        cells = []
        for column, value in record.items():
            text = "" if value is None else str(value)
            if column == "reason" and len(text) > FOLD_AFTER_CHARS:
                summary = html_text(text[:FOLD_AFTER_CHARS].rstrip() + "…")
                cells.append(f"<td><details><summary>{summary}</summary><div>{html_text(text)}</div></details></td>")
            else:
                cells.append(f"<td>{html_text(cell(value) if not isinstance(value, str) else value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
