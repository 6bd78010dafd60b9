"""The report's "Why it fell short" section: per tier × category, the share of answers short of right and the share
of each failure kind among them (retrieval miss, generation miss, partial context, should have declined), with Wilson
intervals and n; then the worst examples by case id. Reads the run store only; every string shown is escaped.
"""

from __future__ import annotations

import numpy as np

from harness.analysis.attribution import (
    ALL_CATEGORIES,
    ANSWERS_GRADE,
    KINDS,
    RIGHT_CORRECTNESS,
    RIGHT_TOKEN_F1,
    Attribution,
    attribution,
    fix_pointer,
    worst_examples,
)
from harness.metrics.claims import CLAIM_METRICS, score_claims
from harness.metrics.stats.intervals import MIN_CASES, Interval, bootstrap_mean_intervals
from harness.report.escape import md_code, md_text
from harness.store.claims_log import ClaimsRecord, read_claims
from harness.store.context_frame import context_frame
from harness.store.loaded import RunView

NONE = "—"
WORST = 10


def run_attribution(view: RunView, confidence: float = 0.95) -> Attribution:
    """Every answer of a run attributed (its context from the records: :mod:`harness.store.context_frame`)."""
    generation = (view.suite.config or {}).get("generation") or {}
    offered = generation.get("context_chunks") if isinstance(generation, dict) else None
    context = context_frame(view.records, offered if isinstance(offered, int) else None)
    return attribution(view.generation, context, confidence=confidence)


def share(interval: Interval) -> str:
    """``40% [22, 61] (4/10)``: a share with its Wilson interval in percent, or why there is none."""
    if interval.estimate is None:
        return f"{NONE} ({md_text(interval.reason or 'nothing measured')})"
    count = round(interval.estimate * interval.n)
    span = f" [{interval.low * 100:.0f}, {interval.high * 100:.0f}]" if interval.has_interval else ""  # type: ignore[operator]
    return f"{interval.estimate:.0%}{span} ({count}/{interval.n})"


def blame_markdown(result: Attribution, extra: str = "") -> str:
    parts = [
        "## Why it fell short\n",
        "Each answer is judged right or short of right (graded: correctness ≥ "
        f"{RIGHT_CORRECTNESS}; ungraded: every must-include string present, else token F1 ≥ {RIGHT_TOKEN_F1}; a "
        "not-in-corpus case must decline). An answer short of right is a **retrieval miss** when no relevant "
        f"document was in its prompt, a **generation miss** when a grade-{ANSWERS_GRADE} document was, **partial "
        "context** when only lower-grade ones were, and **should have declined** for a not-in-corpus case it "
        "answered. Shares of the failure kinds are among the answers short of right; Wilson 95% intervals in "
        "percent, with the counts.\n",
    ]
    if "offered" in result.sources:
        parts.append("_This run did not record the chunks each prompt carried (store version < 3): the passages "
                     "offered to the prompt stand in, some of which the context budget may have cut._\n")
    if not result.rows:
        parts.append("_Not measured: no answer could be judged._\n")
        return "\n".join(parts)
    heads = " | ".join(KINDS[k].label for k in KINDS)
    lines = [f"| tier | variant | category | answers judged | short of right | {heads} | judged by |",
             "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in KINDS) + " | --- |"]
    for row in result.rows:
        kinds = " | ".join(share(row.kinds[k]) if row.short.estimate else NONE for k in KINDS)
        bases = ", ".join(f"{n} {md_text(b)}" for b, n in sorted(row.bases.items()))
        if row.unjudged:
            bases += f"; {row.unjudged} unjudged"
        lines.append(f"| {md_text(row.tier)} | {md_text(row.variant)} | {md_text(row.category)} | {row.judged} "
                     f"| {share(row.short)} "
                     f"| {kinds} | {bases} |")
    parts.append("\n".join(lines) + "\n")
    pointers = [
        f"- {md_text(row.tier)}, {md_text(row.category)}: {md_text(pointer)}"
        for row in result.rows
        if row.variant == ALL_CATEGORIES and row.category != ALL_CATEGORIES and (pointer := fix_pointer(row))
    ]
    if pointers:
        parts.append("Where the fix lies (the most frequent failure kind):\n\n" + "\n".join(pointers) + "\n")
    if result.unjudged:
        parts.append(f"- {result.unjudged} answers could not be judged (no grade and no cheap metric that applies).\n")
    if extra:
        parts.append(extra)
    return "\n".join(parts)


def worst_markdown(result: Attribution) -> str:
    worst = worst_examples(result.answers, WORST)
    if not worst:
        return "### Worst examples\n\n_No answer fell short._\n"
    lines = ["### Worst examples\n", "Answers short of right, lowest score first.\n",
             "| case | variant | tier | category | why | judged by | score | context |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for a in worst:
        kind = KINDS[a.kind].label if a.kind else NONE
        score = NONE if a.severity is None else f"{a.severity:.2f}"
        docs = ", ".join(md_code(d) for d in a.context_docs) or "(none)"
        lines.append(f"| {md_code(a.case_id)} | {md_text(a.variant)} | {md_text(a.tier)} | {md_text(a.category)} "
                     f"| {kind} | {md_text(a.basis)} | {score} | {docs} |")
    return "\n".join(lines) + "\n"


def advice_pointers(result: Attribution, tier: str = "local") -> dict[str, str]:
    """Category -> where the fix lies for ``tier``'s shortfalls (the advice table's last column)."""
    out: dict[str, str] = {}
    for row in result.rows:
        if row.tier == tier and row.variant == ALL_CATEGORIES and (pointer := fix_pointer(row)):
            out[row.category] = pointer
    return out


def section_markdowns(view: RunView, extra: str = "") -> list[str]:
    """The section and its worst examples, each opening with its own heading."""
    result = run_attribution(view)
    claims = claims_markdown(view)
    return [blame_markdown(result, extra), worst_markdown(result), *([claims] if claims else [])]


# ------------------------------------------------------------------------------------------------ claims


TELLING = 3


def claim_metric_intervals(values: list[float], confidence: float = 0.95) -> Interval:
    """Mean over answers with a percentile bootstrap interval (answers resampled; a claim is never the unit)."""
    if not values:
        return Interval(None, None, None, 0, "bootstrap", confidence, reason="no answer had claims to score")
    mean = sum(values) / len(values)
    if len(values) < MIN_CASES:
        return Interval(mean, None, None, len(values), "bootstrap", confidence, reason="too few answers")
    ((low, high, sd),) = bootstrap_mean_intervals([np.asarray(values, dtype=np.float64)], confidence=confidence)
    return Interval(mean, low, high, len(values), "bootstrap", confidence, se=sd)


def claims_markdown(view: RunView) -> str:
    """Claim metrics per tier × category with intervals, and the most telling claims per category."""
    from harness.report.drift_section import fmt_interval  # drift_section imports this module

    claims = read_claims(view.path)
    diagnosed = {key: c for key, c in claims.items() if c.status == "diagnosed"}
    if not claims:
        return ""
    category_of = {(r.case_id, r.variant): r.category for r in view.records}
    groups: dict[tuple[str, str], list[ClaimsRecord]] = {}
    keys: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for key, record in sorted(diagnosed.items()):
        category = category_of.get((key[0], key[1]))
        if category is None:
            continue
        groups.setdefault((key[2], category), []).append(record)
        keys.setdefault((key[2], category), []).append(key)
    parts = [
        "### Claims: what the passages held and what the answer did with it\n",
        "On the graded sample (`grading.diagnose: true`): the grader split each reference and answer into claims and "
        "checked each against every passage its prompt carried and against the other text. Metrics after RAGChecker "
        "(definitions in `harness/metrics/claims.py`): mean over answers, 95% bootstrap interval over answers, n "
        f"answers; below {MIN_CASES} answers no interval. An answer without claims on a side is unmeasured for the "
        "metrics that divide by that side.\n",
    ]
    failed = len(claims) - len(diagnosed)
    if failed:
        parts.append(f"- {failed} answers have no claims (unmeasured or diagnose_error; see `claims.jsonl`).\n")
    if not groups:
        parts.append("_No answer was diagnosed._\n")
        return "\n".join(parts)
    names = list(CLAIM_METRICS)
    lines = ["| tier | category | " + " | ".join(md_text(n) for n in names) + " |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for (tier, category), records in sorted(groups.items()):
        scores = [score_claims(r.reference_claims, r.answer_claims) for r in records]
        cells = []
        for name in names:
            values = [s[name] for s in scores if s[name] is not None]
            cells.append(fmt_interval(claim_metric_intervals([float(v) for v in values if v is not None]), 2))
        lines.append(f"| {md_text(tier)} | {md_text(category)} | " + " | ".join(cells) + " |")
    parts.append("\n".join(lines) + "\n")
    parts.append(_telling(groups, keys))
    return "\n".join(parts)


def telling_claims(records: list[ClaimsRecord], keys: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(case id, why, claim): reference claims a passage held and the answer missed first, then answer claims a
    passage contradicts, up to :data:`TELLING`."""
    missed, contradicted = [], []
    for record, key in zip(records, keys, strict=True):
        for claim in record.reference_claims:
            if "entailed" in claim.passages and claim.other != "entailed":
                missed.append((key[0], "a passage held it; the answer missed it", claim.text))
        for claim in record.answer_claims:
            if "contradicted" in claim.passages:
                contradicted.append((key[0], "the answer says it; a passage contradicts it", claim.text))
    return (missed + contradicted)[:TELLING]


def _telling(groups: dict[tuple[str, str], list[ClaimsRecord]], keys: dict[tuple[str, str], list[tuple[str, str,
                                                                                                         str]]]) -> str:
    lines = ["Most telling claims per tier and category:\n"]
    for group, records in sorted(groups.items()):
        found = telling_claims(records, keys[group])
        if not found:
            continue
        lines.append(f"- {md_text(group[0])}, {md_text(group[1])}:")
        lines += [f"  - {md_code(case)}: {md_text(why)}: “{md_text(text)}”" for case, why, text in found]
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""
