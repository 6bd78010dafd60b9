"""A run comparison (:mod:`harness.analysis.compare`) as Markdown; untrusted names are escaped."""

from __future__ import annotations

from harness.analysis.compare import Comparison
from harness.report.markdown import cell


def render_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown tables; untrusted names are escaped."""
    out = [f"# Compare {cell(comparison.run_b)} (B) against {cell(comparison.run_a)} (A)\n"]
    for line in comparison.differences:
        out.append(f"- **differs** — {cell(line)}")
    for line in comparison.notes:
        out.append(f"- {cell(line)}")
    out.append(
        "\nEffect is B − A on the cases both runs measured, with its 95% paired bootstrap interval; p from McNemar's "
        "exact test (0/1 metrics) or the sign-flip test, Holm-adjusted across the metrics of "
        "each row group; MDE: the smallest effect detectable at 5% with 80% power at this n.\n"
    )
    out.append("Same answer: of the n answer pairs, those where both runs hold one stored answer of the response "
               "cache (no information about the generator).\n")
    header = ("| metric | variant | tier | category | n | same answer | A | B | B − A | 95% CI | test | p | p (Holm) "
              "| MDE |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    out.append(header)
    for r in comparison.rows:
        out.append(
            f"| {cell(r.metric)} | {cell(r.variant)} | {cell(r.tier)} | {cell(r.category)} | {r.n} | "
            f"{cell(r.same_answer)} | {cell(r.mean_a)} | {cell(r.mean_b)} | {cell(r.effect)} | "
            f"[{cell(r.ci_low)}, {cell(r.ci_high)}] | {cell(r.test)} | {cell(r.p_value)} | {cell(r.p_holm)} | "
            f"{cell(r.mde)} |"
        )
    for label, keys in (("A", comparison.only_in_a), ("B", comparison.only_in_b)):
        if keys:
            out.append(f"\n{len(keys)} case × variant record(s) only in {label}: "
                       + ", ".join(cell(k) for k in keys))
    if not comparison.only_in_a and not comparison.only_in_b:
        out.append("\nEvery case × variant is in both runs.")
    return "\n".join(out) + "\n"
