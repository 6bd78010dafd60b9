"""A suite's history (:mod:`harness.analysis.history`) as Markdown; untrusted names are escaped."""

from __future__ import annotations

from harness.analysis.history import History, drift_frame
from harness.report.markdown import cell, table


def render_markdown(history: History) -> str:
    out = [f"# History of suite {cell(history.suite)}\n", f"{len(history.table)} finished run(s), oldest first.\n"]
    shown = history.table.rename(index=history.run_label)
    out.append(table(shown.T.reset_index().rename(columns={"index": "series"}), index=False))
    for run in history.table.index:
        if replayed := history.mostly_replayed(run):
            tiers = ", ".join(f"{cell(r.tier)} {r.replayed} of {r.answered} ({cell(r.made_on())})" for r in replayed)
            out.append(f"- {cell(run)} (replayed): answers mostly replayed from the response cache — {tiers}; its "
                       "latency and cost series count only the calls it made")
    out.append("\n## Drift of the latest run (EWMA chart)\n")
    out.append(table(drift_frame(history), index=False))
    for line in history.left_out:
        out.append(f"- left out: {cell(line)}")
    return "\n".join(out) + "\n"
