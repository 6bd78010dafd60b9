"""Paired comparison of two runs of one suite: per metric, per variant (and tier), overall and per category.

For each slice, on the cases both runs measured:
- the effect ``B - A`` with its 95% paired bootstrap interval;
- a paired test: McNemar's exact test when every value is 0/1, else the sign-flip permutation
  test; Holm's correction across the metrics of the slice;
- the minimum detectable effect at that size (two-sided 5%, 80% power, from the SD of the paired differences).

Cases measured in only one run are listed, never dropped silently. Reads run stores only.

An answer pair where both runs hold the same stored answer (one run replayed from the response cache what the other
made or also replayed: same cache key, same run and time of making) says nothing about the generator: each row counts
such pairs (``same_answer``) and a note names them per tier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import InputError
from harness.metrics.case_values import ALL_CATEGORIES, GRADE_SCORE, Slice, case_values, paired
from harness.metrics.stats import tests as stats
from harness.metrics.stats.intervals import min_detectable_difference
from harness.store.loaded import RunView


@dataclass(frozen=True)
class CompareRow:
    metric: str
    variant: str
    tier: str | None
    category: str
    n: int
    mean_a: float | None
    mean_b: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    test: str
    p_value: float | None
    p_holm: float | None = None
    mde: float | None = None
    discordant: str | None = None  # McNemar: "A only / B only"
    same_answer: int | None = None  # answer metrics: pairs where both runs hold the same stored (cached) answer


@dataclass
class Comparison:
    run_a: str
    run_b: str
    differences: list[str]
    rows: list[CompareRow]
    only_in_a: list[str]
    only_in_b: list[str]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "differences": self.differences,
            "notes": self.notes,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "rows": [row.__dict__ for row in self.rows],
        }


def differences(a: RunView, b: RunView) -> list[str]:
    """What makes two runs not comparable: a different suite or corpus."""
    out = []
    if a.suite.name != b.suite.name:
        out.append(f"suite: {a.suite.name!r} vs {b.suite.name!r}")
    fa = a.manifest.corpus.fingerprint if a.manifest.corpus else None
    fb = b.manifest.corpus.fingerprint if b.manifest.corpus else None
    if fa != fb:
        out.append(f"corpus fingerprint: {str(fa)[:12]} vs {str(fb)[:12]} (the documents differ)")
    return out


def compare(a: RunView, b: RunView, *, allow_different: bool = False, resamples: int = 5000,
            seed: int = 0) -> Comparison:
    """Compare run ``b`` against run ``a`` (effects are ``B - A``)."""
    why = differences(a, b)
    if why and not allow_different:
        raise InputError(
            f"runs {a.run_id} and {b.run_id} are not of the same suite and corpus: {'; '.join(why)}",
            hint="a paired comparison needs the same cases over the same documents; pass --allow-different to "
            "compare the cases they share anyway",
        )
    notes = []
    if a.suite.sha256 != b.suite.sha256:
        notes.append("the suite files differ (expected for an A/B of settings); cases are paired by id")
    notes += _embedder_notes(a, b)
    keys_a = {f"{r.case_id}|{r.variant}" for r in a.records}
    keys_b = {f"{r.case_id}|{r.variant}" for r in b.records}
    metrics = [m for m in a.metrics if m in b.metrics]
    notes += [f"metric {m} is in only one run" for m in sorted(set(a.metrics) ^ set(b.metrics))]
    variants = [v for v in a.variants if v in b.variants]
    notes += [f"variant {v} is in only one run" for v in sorted(set(a.variants) ^ set(b.variants))]
    rows: list[CompareRow] = []
    for variant in variants:
        for category in _categories(a, b, variant):
            rows += _slice_rows(a, b, metrics, variant, None, category, resamples, seed)
    answer = [m for m in a.answer_metric_names if m in b.answer_metric_names]
    if _graded(a) and _graded(b):
        answer.append(GRADE_SCORE)
    tiers = sorted(set(_tiers(a)) & set(_tiers(b)))
    same = same_answers(a, b)
    notes += _same_answer_notes(a, b, same)
    for tier in tiers:
        for variant in variants:
            for category in _categories(a, b, variant, generation=True):
                rows += _slice_rows(a, b, answer, variant, tier, category, resamples, seed, same)
    return Comparison(a.run_id, b.run_id, why, rows, sorted(keys_a - keys_b), sorted(keys_b - keys_a), notes)


def _variant_embedders(view: RunView) -> dict[str, str]:
    """Variant name -> its embedder as recorded in the run's suite config (``kind:model@backend``)."""
    config = view.suite.config
    default: dict[str, Any] = config["embedder"] if isinstance(config.get("embedder"), dict) else {}
    out: dict[str, str] = {}
    for variant in config.get("variants") or []:
        if isinstance(variant, dict) and variant.get("name"):
            embedder: dict[str, Any] = variant["embedder"] if isinstance(variant.get("embedder"), dict) else default
            # Runs from before backends existed recorded none: they ran torch.
            backend = embedder.get("backend") or ("torch" if embedder.get("kind", "sentence-transformers")
                                                  == "sentence-transformers" else "server")
            out[str(variant["name"])] = f"{embedder.get('kind')}:{embedder.get('model')}@{backend}"
    return out


def _embedder_notes(a: RunView, b: RunView) -> list[str]:
    """A shared variant whose embedder differs: its retrieval differences are partly the embedder's."""
    ea, eb = _variant_embedders(a), _variant_embedders(b)
    return [f"variant {name}: the embedder differs ({ea[name]} in {a.run_id}, {eb[name]} in {b.run_id}); its "
            "retrieval differences include the embedder's" for name in sorted(ea.keys() & eb.keys())
            if ea[name] != eb[name]]


def _answer_origins(view: RunView) -> dict[str, tuple[str, str, str]]:
    """``case_id|variant|tier`` -> the cache entry its answer is (key, run that made it, when), where it is one."""
    gen = view.generation
    if gen.empty or "cache_key" not in gen:
        return {}
    rows = gen[(gen["status"] == "ok") & gen["cache_key"].notna()]
    keys = rows["case_id"].astype(str) + "|" + rows["variant"].astype(str) + "|" + rows["tier"].astype(str)
    origins = zip(rows["cache_key"].astype(str), rows["cache_run"].fillna("").astype(str),
                  rows["cache_made_at"].fillna("").astype(str), strict=True)
    return dict(zip(keys, origins, strict=True))


def same_answers(a: RunView, b: RunView) -> set[str]:
    """The ``case_id|variant|tier`` pairs whose answer in both runs is one stored answer of the response cache."""
    origins_a, origins_b = _answer_origins(a), _answer_origins(b)
    return {key for key in origins_a.keys() & origins_b.keys() if origins_a[key] == origins_b[key]}


def _answered(view: RunView) -> set[str]:
    gen = view.generation
    if gen.empty:
        return set()
    ok = gen[gen["status"] == "ok"]
    return set(ok["case_id"].astype(str) + "|" + ok["variant"].astype(str) + "|" + ok["tier"].astype(str))


def _same_answer_notes(a: RunView, b: RunView, same: set[str]) -> list[str]:
    both = _answered(a) & _answered(b)
    notes = []
    for tier in sorted({key.rsplit("|", 1)[1] for key in same}):
        pairs = [key for key in both if key.endswith(f"|{tier}")]
        shared = sum(key in same for key in pairs)
        notes.append(
            f"{tier} tier: {shared} of {len(pairs)} answer pairs are the same stored answer in both runs (replayed "
            "from the response cache, not asked again): those pairs carry no information about the generator, only "
            "about what fed it; re-run with --fresh to compare generators"
        )
    return notes


def _tiers(view: RunView) -> list[str]:
    gen = view.generation
    return [] if gen.empty else sorted(gen.loc[gen["status"] == "ok", "tier"].unique())


def _graded(view: RunView) -> bool:
    gen = view.generation
    return not gen.empty and bool(gen["grade_score"].notna().any())


def _categories(a: RunView, b: RunView, variant: str, generation: bool = False) -> list[str]:
    frames = (a.generation, b.generation) if generation else (a.retrieval, b.retrieval)
    found: set[str] = set()
    for frame in frames:
        if not frame.empty:
            found |= set(frame.loc[frame["variant"] == variant, "category"].astype(str))
    return [ALL_CATEGORIES, *sorted(found)]


def _slice_rows(
    a: RunView, b: RunView, metrics: list[str], variant: str, tier: str | None, category: str, resamples: int,
    seed: int, same: set[str] | None = None,
) -> list[CompareRow]:
    rows = []
    for metric in metrics:
        chosen = Slice(metric, variant, None if category == ALL_CATEGORIES else category, tier)
        values_a = case_values(chosen, a.retrieval, a.generation, a.metrics)
        values_b = case_values(chosen, b.retrieval, b.generation, b.metrics)
        keys, xs, ys = paired(values_a, values_b)
        if not xs:
            continue
        row = _row(metric, variant, tier, category, xs, ys, resamples, seed)
        if tier is not None:
            row = CompareRow(**{**row.__dict__, "same_answer": len(set(keys) & (same or set()))})
        rows.append(row)
    adjusted = stats.holm([row.p_value for row in rows]).adjusted
    return [CompareRow(**{**row.__dict__, "p_holm": p}) for row, p in zip(rows, adjusted, strict=True)]


def _row(metric: str, variant: str, tier: str | None, category: str, xs: list[float], ys: list[float],
         resamples: int, seed: int) -> CompareRow:
    diff = stats.paired_bootstrap_ci(xs, ys, n_resamples=resamples, seed=seed)
    d = np.asarray(ys) - np.asarray(xs)
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    mde = min_detectable_difference(sd / math.sqrt(d.size), int(d.size) - 1) if d.size > 1 else None
    binary = all(v in (0.0, 1.0) for v in (*xs, *ys))
    discordant = None
    if binary:
        result = stats.mcnemar_exact(xs, ys)
        test, p = "mcnemar exact", result.p_value
        discordant = f"{result.baseline_only}/{result.candidate_only}"
    else:
        flip = stats.sign_flip_test(xs, ys, n_resamples=resamples, seed=seed)
        test, p = flip.method, flip.p_value
    return CompareRow(
        metric, variant, tier, category, int(d.size), float(np.mean(xs)), float(np.mean(ys)), diff.estimate,
        diff.low, diff.high, test, p, None, None if mde is None or math.isnan(mde) else mde, discordant,
    )
