"""The report's judge section: how far the grader agrees with people, with each other person, and with a second
judge from another model family (each judge's gap, and the difference of gaps: the self-preference signal).

Every figure has its interval and n, or says why it has none; below the minimum of labelled answers only counts are
shown, with how many more labels are needed. Untrusted strings (labeller ids, categories) are escaped for Markdown.
"""

from __future__ import annotations

from harness.analysis.agreement import CLOUD, MIN_LABELLED, Agreement, CriterionAgreement, agreement
from harness.analysis.judges import JudgeComparison, compare_judges
from harness.analysis.labelled import label_pairs
from harness.report.drift_section import fmt_interval
from harness.report.escape import md_text
from harness.store.loaded import RunView

TITLE = "## Judge agreement: the grader against people\n"


def analyse_judge(view: RunView) -> Agreement | None:
    """The agreement of the run's grader with its labels; None when nobody has labelled."""
    if not view.labels:
        return None
    claude = frozenset(name for name, info in view.manifest.tiers.items() if info.kind_of(name) == "cloud")
    return agreement(label_pairs(view.records, view.labels), claude_tiers=claude or frozenset({CLOUD}))


def analyse_judges(view: RunView) -> list[JudgeComparison]:
    """Claude beside each second judge of the run; [] when only Claude graded."""
    second = view.second_judges
    return compare_judges(view.records, second) if second else []


def judge_markdown(result: Agreement | None) -> str:
    if result is None or result.labels == 0:
        return (TITLE + "\n_No person has labelled a graded answer of this run, so every graded figure in this report "
                "is **uncorrected: the grader is unvalidated**. `harness label RUN_DIR` asks for labels blind._\n")
    tiers = ", ".join(f"{md_text(tier)} {count}" for tier, count in result.answers_by_tier.items())
    parts = [TITLE,
             f"{result.labels} label(s) of {result.labelled_answers} graded answer(s) by "
             f"{md_text(', '.join(result.labellers))} (answers by tier: {tiers}). Rows of a confusion matrix are the "
             "person's value, columns the grader's. Overall = the criteria summed (0–9).\n"]
    if not result.enough:
        parts.append(f"_Fewer than {MIN_LABELLED} labelled answers: counts only. {md_text(result.shortfall or '')}._\n")
    parts.append(_agreement_table(result.criteria, "label pairs"))
    parts += _confusions(result.criteria, "person \\ grader")
    if result.pass_fail is not None:
        pf = result.pass_fail
        parts.append(f"- pass/fail ({md_text(pf.rule)}): the grader passes {fmt_interval(pf.true_positive_rate)} of "
                     f"what people pass (true-positive rate) and fails {fmt_interval(pf.true_negative_rate)} of what "
                     f"they fail (true-negative rate); counts {pf.counts}")
    for tier, bias in result.bias_by_tier.items():
        parts.append(f"- grader's mean bias (grader − person, 0–1 score) on the {md_text(tier)} tier: "
                     f"{fmt_interval(bias)}")
    if result.self_preference is not None:
        parts.append("- **self-preference estimate** (the grader's bias on the Claude tiers' answers − on the other "
                     f"tiers'): {fmt_interval(result.self_preference)}")
    if result.inter_labeller is not None:
        inter = result.inter_labeller
        figures = "; ".join(f"{md_text(name)} alpha {fmt_interval(inter.alpha[name])}, exact "
                            f"{fmt_interval(inter.exact[name])}" for name in inter.alpha)
        parts.append(f"- between people ({inter.answers} answers labelled by two or more of "
                     f"{md_text(', '.join(inter.labellers))}): {figures}")
    else:
        parts.append("- between people: no answer was labelled by two people (give two people the same --seed)")
    return "\n".join(parts) + "\n"


def _agreement_table(criteria: list[CriterionAgreement], pairs: str) -> str:
    lines = [f"| criterion | {pairs} | kappa (quadratic) | alpha (ordinal) | exact agreement | within one |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in criteria:
        lines.append(f"| {md_text(row.name)} | {row.n} | {fmt_interval(row.kappa)} | {fmt_interval(row.alpha)} "
                     f"| {fmt_interval(row.exact)} | {fmt_interval(row.within_one)} |")
    return "\n".join(lines) + "\n"


def _confusions(criteria: list[CriterionAgreement], corner: str) -> list[str]:
    out = []
    for row in criteria:
        if row.scale_max > 3:
            continue
        matrix = [f"| {corner} | " + " | ".join(str(v) for v in range(row.scale_max + 1)) + " |",
                  "| --- |" + " --- |" * (row.scale_max + 1)]
        matrix += [f"| {value} | " + " | ".join(str(c) for c in counts) + " |"
                   for value, counts in enumerate(row.confusion)]
        out.append(f"Confusion, {md_text(row.name)}:\n\n" + "\n".join(matrix) + "\n")
    return out


JUDGES_TITLE = "### Judge against judge: Claude beside a second model family\n"


def judges_markdown(comparisons: list[JudgeComparison]) -> str:
    """Agreement, each judge's gap per category and the difference of gaps, per second judge; "" without one."""
    if not comparisons:
        return ""
    parts = [JUDGES_TITLE,
             "Every judge graded the same sample with the same rubric, blind to tier, host and model. The difference "
             "of gaps is the second judge's local − cloud gap minus Claude's, pair by pair: above 0, Claude puts the "
             "cloud tier (its own family) further ahead than the other family does. That is the self-preference "
             "signal when nobody has labelled; it shows the judges differ, and people's labels decide which is "
             "right.\n"]
    for c in comparisons:
        name, primary = md_text(c.judge), md_text(c.primary)
        models = f"{primary} ({md_text(c.primary_model or 'model unknown')}) and {name} " \
                 f"({md_text(c.judge_model or 'model unknown')})"
        counts = ", ".join(f"{md_text(judge)} {n}" for judge, n in c.graded.items())
        parts.append(f"#### {primary} and {name}\n\n{models}: {c.both_graded} answer(s) graded by both "
                     f"(graded answers: {counts}). Rows of a confusion matrix are {primary}'s value, columns "
                     f"{name}'s.\n")
        if not c.enough:
            parts.append(f"_Too few answers graded by both for kappa and alpha: counts only. "
                         f"{md_text(c.shortfall or '')}._\n")
        if c.criteria:
            parts.append(_agreement_table(c.criteria, "answers"))
            parts += _confusions(c.criteria, f"{primary} \\ {name}")
        if not c.gaps:
            parts.append("_No case was graded on both tiers by both judges, so there is no gap to compare._\n")
            continue
        lines = [f"| category | pairs | gap by {primary} (local − cloud) | gap by {name} | "
                 f"difference ({name} − {primary}) |", "| --- | --- | --- | --- | --- |"]
        for row in c.gaps:
            lines.append(f"| {md_text(row.category)} | {row.pairs} | {fmt_interval(row.primary_gap)} | "
                         f"{fmt_interval(row.second_gap)} | {fmt_interval(row.difference)} |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts) + "\n"
