"""A suite's history (:mod:`harness.analysis.history`) as Markdown; untrusted names are escaped."""

from __future__ import annotations

from harness.analysis.history import History, drift_frame
from harness.report.markdown import cell, table


def render_markdown(history: History) -> str:
    out = [f"# History of suite {cell(history.suite)}\n", f"{len(history.table)} finished run(s), oldest first.\n"]
    out.append(table(history.table.T.reset_index().rename(columns={"index": "series"}), index=False))
    out.append("\n## Drift of the latest run (EWMA chart)\n")
    out.append(table(drift_frame(history), index=False))
    for line in history.left_out:
        out.append(f"- left out: {cell(line)}")
    return "\n".join(out) + "\n"
