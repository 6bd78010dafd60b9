"""How far the grader agrees with people, and how far people agree with each other.

From :class:`~harness.analysis.labelled.LabelPair`\\ s (a person's label beside the grader's grade of one answer):

- per criterion (0..3) and overall (the sum of the criteria, 0..9): quadratic-weighted Cohen's kappa and ordinal
  Krippendorff's alpha, each with a percentile bootstrap interval over answers; exact and within-one agreement with
  Wilson intervals; the confusion matrix (rows: person, columns: grader);
- the pass/fail line: an answer passes when its correctness is at least :data:`PASS_CORRECTNESS` ("right on the main
  point"); the grader's true-positive rate (passes what people pass) and true-negative rate (fails what people fail),
  with Wilson intervals;
- the grader's mean bias (grader − person, on the 0..1 score) per tier, and the **self-preference estimate**: the
  bias on the Claude tiers' answers minus the bias on the other tiers' (the grader is Claude too; the built-in pair's
  ``cloud``, or every ``cloud`` tier of a ladder), each with a cluster-robust
  normal interval (an answer's labels, and a case's tiers, are one cluster);
- inter-labeller agreement (ordinal alpha, exact agreement) on answers two or more people labelled.

Below :data:`MIN_LABELLED` labelled answers only counts are shown, and how many more labels would give the grader's
bias an interval of :data:`TARGET_HALF_WIDTH` either side: a kappa of 1.0 from three items is noise, not agreement.

Formulas. With the K×K confusion matrix O (n pairs), E = row sums × column sums / n and w_ij = (i − j)² / (K − 1)²,
kappa = 1 − Σ w O / Σ w E. Alpha reads the coincidence matrix o (for two raters o = O + Oᵀ; for m raters of a unit
each ordered pair of its values adds 1/(m − 1)), with marginals n_c and total n: alpha = 1 − (n − 1) Σ o δ² / Σ n_c n_k
δ², where the ordinal δ²(c, k) = (Σ_{g=c..k} n_g − (n_c + n_k)/2)². Both are computed from matrices, so a bootstrap
re-weights per-answer matrices instead of recomputing from raw pairs.

Pure: pairs in, dataclasses out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as sps

from harness.analysis.labelled import LabelPair
from harness.config.criteria import CRITERIA, SCALE_MAX
from harness.metrics.stats.intervals import MIN_CASES, Interval, wilson_interval
from harness.metrics.stats.two_stage import Influence, combine, mean_term, normal_interval

MIN_LABELLED = 20
PASS_CORRECTNESS = 2
TARGET_HALF_WIDTH = 0.05
ASSUMED_SD = 0.15  # of the grader's per-answer error, before there are labels enough to measure it
CLOUD = "cloud"
OVERALL = "overall"
N_RESAMPLES = 2000


# ------------------------------------------------------------------------------------------------ the statistics


def confusion(rows: Sequence[int] | np.ndarray, columns: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """K×K counts of (row value, column value)."""
    out = np.zeros((k, k))
    np.add.at(out, (np.asarray(rows, int), np.asarray(columns, int)), 1.0)
    return out


def quadratic_kappa(observed: np.ndarray) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa of confusion matrices (..., K, K); NaN where it is undefined."""
    observed = np.asarray(observed, float)
    k = observed.shape[-1]
    n = observed.sum(axis=(-2, -1))[..., None, None]
    expected = observed.sum(axis=-1)[..., :, None] * observed.sum(axis=-2)[..., None, :] / np.where(n > 0, n, 1)
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / max(k - 1, 1) ** 2
    denominator = (weights * expected).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 1.0 - (weights * observed).sum(axis=(-2, -1)) / denominator, np.nan)


def ordinal_alpha(coincidence: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha with the ordinal metric, from coincidence matrices (..., K, K); NaN where undefined."""
    o = np.asarray(coincidence, float)
    marg = o.sum(axis=-1)
    n = marg.sum(axis=-1)
    cum = np.cumsum(marg, axis=-1)
    lo = np.minimum.outer(np.arange(o.shape[-1]), np.arange(o.shape[-1]))
    hi = np.maximum.outer(np.arange(o.shape[-1]), np.arange(o.shape[-1]))
    between = cum[..., hi] - cum[..., lo] + marg[..., lo]  # Σ_{g=c..k} n_g
    delta = (between - (marg[..., :, None] + marg[..., None, :]) / 2.0) ** 2
    observed = (o * delta).sum(axis=(-2, -1))
    expected = (marg[..., :, None] * marg[..., None, :] * delta).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha: np.ndarray = np.where(expected > 0, 1.0 - (n - 1.0) * observed / expected, np.nan)
    return alpha


def two_rater_coincidence(observed: np.ndarray) -> np.ndarray:
    both: np.ndarray = observed + np.swapaxes(observed, -1, -2)
    return both


def unit_coincidence(values: Sequence[int], k: int) -> np.ndarray:
    """One unit's coincidences: each ordered pair of its values from different raters adds 1/(m − 1)."""
    m = len(values)
    out = np.zeros((k, k))
    if m < 2:
        return out
    counts = np.bincount(np.asarray(values, int), minlength=k).astype(float)
    return (np.outer(counts, counts) - np.diag(counts)) / (m - 1)


def _bootstrap(units: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], seed: int, confidence: float
               ) -> tuple[float, float, float]:
    """Estimate and percentile interval of ``statistic`` (matrices -> values) over resampled units (U, K, K)."""
    estimate = float(statistic(units.sum(axis=0)))
    rng = np.random.default_rng(seed)
    count = units.shape[0]
    weights = rng.multinomial(count, np.full(count, 1.0 / count), size=N_RESAMPLES).astype(float)
    draws = statistic(np.einsum("bu,ukl->bkl", weights, units))
    draws = draws[~np.isnan(draws)]
    tail = (1.0 - confidence) / 2.0
    if draws.size == 0:
        return estimate, math.nan, math.nan
    return estimate, float(np.quantile(draws, tail)), float(np.quantile(draws, 1.0 - tail))


def _interval(estimate: float, low: float, high: float, n: int, method: str, confidence: float) -> Interval:
    if math.isnan(estimate):
        return Interval(None, None, None, n, method, confidence, reason="undefined: every answer got one value")
    if math.isnan(low):
        return Interval(estimate, None, None, n, method, confidence, reason="no resample was defined")
    return Interval(estimate, low, high, n, method, confidence)


# ------------------------------------------------------------------------------------------------ the results


@dataclass(frozen=True)
class CriterionAgreement:
    """Grader vs people on one criterion (0..3) or overall (the criteria summed, 0..9)."""

    name: str
    scale_max: int
    n: int  # label pairs
    kappa: Interval
    alpha: Interval
    exact: Interval
    within_one: Interval
    confusion: list[list[int]]  # rows: person's value, columns: grader's value


@dataclass(frozen=True)
class PassFail:
    rule: str
    true_positive_rate: Interval  # grader passes | person passes
    true_negative_rate: Interval  # grader fails | person fails
    counts: dict[str, int]  # tp, fn, tn, fp


@dataclass(frozen=True)
class InterLabeller:
    answers: int  # answers labelled by two or more people
    labellers: list[str]
    alpha: dict[str, Interval]  # criterion or overall -> ordinal alpha
    exact: dict[str, Interval]  # share of such answers where everyone gave the same value


@dataclass(frozen=True)
class Agreement:
    labels: int
    labelled_answers: int
    labellers: list[str]
    answers_by_tier: dict[str, int]
    enough: bool
    shortfall: str | None  # under MIN_LABELLED: how many more labels are needed, and for what
    criteria: list[CriterionAgreement] = field(default_factory=list)
    pass_fail: PassFail | None = None
    bias_by_tier: dict[str, Interval] = field(default_factory=dict)
    self_preference: Interval | None = None
    inter_labeller: InterLabeller | None = None


# ------------------------------------------------------------------------------------------------ the analysis


def _values(pair: LabelPair, name: str, who: str) -> int:
    scores = pair.human if who == "human" else pair.grader
    return sum(scores.values()) if name == OVERALL else scores[name]


def _criterion(name: str, pairs: list[LabelPair], answers: list[tuple[str, str, str]], enough: bool,
               confidence: float, seed: int) -> CriterionAgreement:
    k = SCALE_MAX * len(CRITERIA) + 1 if name == OVERALL else SCALE_MAX + 1
    human = np.array([_values(p, name, "human") for p in pairs])
    grader = np.array([_values(p, name, "grader") for p in pairs])
    return rater_agreement(name, human, grader, k - 1, answers, enough, confidence, seed)


def rater_agreement(name: str, rows: np.ndarray, columns: np.ndarray, scale_max: int,
                    answers: Sequence[tuple[str, str, str]], enough: bool, confidence: float, seed: int
                    ) -> CriterionAgreement:
    """Two raters' values (0..scale_max) of the same answers, one pair per entry of ``answers`` (an answer may repeat
    when several people labelled it): kappa and alpha bootstrapped over answers when ``enough``, else counts only."""
    k = scale_max + 1
    rows, columns = np.asarray(rows, int), np.asarray(columns, int)
    matrix = confusion(rows, columns, k)
    n = len(rows)
    exact = wilson_interval(int((rows == columns).sum()), n, confidence=confidence)
    within = wilson_interval(int((abs(rows - columns) <= 1).sum()), n, confidence=confidence)
    if not enough:
        reason = f"too few answers (n={len(set(answers))}, need {MIN_LABELLED})"
        none = Interval(None, None, None, n, "bootstrap", confidence, reason=reason)
        return CriterionAgreement(name, scale_max, n, none, none, exact, within, matrix.astype(int).tolist())
    index = {key: i for i, key in enumerate(dict.fromkeys(answers))}
    units = np.zeros((len(index), k, k))
    np.add.at(units, (np.array([index[a] for a in answers]), rows, columns), 1.0)
    kappa = _interval(*_bootstrap(units, quadratic_kappa, seed, confidence), n,
                      "quadratic-weighted kappa, bootstrap over answers", confidence)
    alpha = _interval(*_bootstrap(two_rater_coincidence(units), ordinal_alpha, seed, confidence), n,
                      "ordinal Krippendorff's alpha, bootstrap over answers", confidence)
    return CriterionAgreement(name, scale_max, n, kappa, alpha, exact, within, matrix.astype(int).tolist())


def _pass_fail(pairs: list[LabelPair], confidence: float) -> PassFail:
    human = np.array([p.human["correctness"] >= PASS_CORRECTNESS for p in pairs])
    grader = np.array([p.grader["correctness"] >= PASS_CORRECTNESS for p in pairs])
    tp, fn = int((human & grader).sum()), int((human & ~grader).sum())
    tn, fp = int((~human & ~grader).sum()), int((~human & grader).sum())
    return PassFail(f"pass = correctness ≥ {PASS_CORRECTNESS}", wilson_interval(tp, tp + fn, confidence=confidence),
                    wilson_interval(tn, tn + fp, confidence=confidence), {"tp": tp, "fn": fn, "tn": tn, "fp": fp})


def _per_answer_bias(pairs: list[LabelPair]) -> dict[tuple[str, str, str], float]:
    """grader − person per answer, the person's score averaged over its labellers."""
    human: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    grader: dict[tuple[str, str, str], float] = {}
    for pair in pairs:
        human[pair.key].append(pair.human_score)
        grader[pair.key] = pair.grader_score
    return {key: grader[key] - float(np.mean(values)) for key, values in human.items()}


def _bias(bias: dict[tuple[str, str, str], float], tiers: set[str] | None, exclude: set[str]
          ) -> tuple[Influence, int]:
    keys = [k for k in bias if (tiers is None or k[2] in tiers) and k[2] not in exclude]
    values = np.array([bias[k] for k in keys])
    return mean_term(values, [f"{k[0]}|{k[1]}" for k in keys]), len(keys)


def _bias_interval(term: Influence, n: int, method: str, confidence: float) -> Interval:
    reason = None if n >= MIN_CASES else f"too few labelled answers for an interval (n={n}, need {MIN_CASES})"
    return normal_interval(term, n, method, confidence, reason) if n else Interval(
        None, None, None, 0, method, confidence, reason="no labelled answer")


def _needed(bias: dict[tuple[str, str, str], float], confidence: float) -> str:
    have = len(bias)
    values = np.array(list(bias.values()))
    measured = have >= MIN_CASES and float(values.std(ddof=1)) > 0
    sd = float(values.std(ddof=1)) if measured else ASSUMED_SD
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    target = max(MIN_LABELLED, math.ceil((z * sd / TARGET_HALF_WIDTH) ** 2))
    source = "as measured so far" if measured else "assumed until 5 answers are labelled"
    return (f"{have} labelled answer(s); label {max(target - have, MIN_LABELLED - have)} more for a "
            f"{confidence:.0%} interval of the grader's bias ±{TARGET_HALF_WIDTH} wide (per-answer SD {sd:.2f}, "
            f"{source}); kappa and alpha are shown from {MIN_LABELLED} labelled answers")


def _inter_labeller(pairs: list[LabelPair], confidence: float, seed: int) -> InterLabeller | None:
    by_answer: dict[tuple[str, str, str], list[LabelPair]] = defaultdict(list)
    for pair in pairs:
        by_answer[pair.key].append(pair)
    shared = {key: group for key, group in by_answer.items() if len({p.labeller for p in group}) >= 2}
    if not shared:
        return None
    alpha: dict[str, Interval] = {}
    exact: dict[str, Interval] = {}
    for name in (*CRITERIA, OVERALL):
        k = SCALE_MAX * len(CRITERIA) + 1 if name == OVERALL else SCALE_MAX + 1
        values = [[_values(p, name, "human") for p in group] for group in shared.values()]
        same = sum(1 for v in values if len(set(v)) == 1)
        exact[name] = wilson_interval(same, len(values), confidence=confidence)
        if len(values) < MIN_CASES:
            alpha[name] = Interval(None, None, None, len(values), "ordinal Krippendorff's alpha", confidence,
                                   reason=f"too few answers labelled by two people (n={len(values)}, need {MIN_CASES})")
            continue
        units = np.stack([unit_coincidence(v, k) for v in values])
        alpha[name] = _interval(*_bootstrap(units, ordinal_alpha, seed, confidence), len(values),
                                "ordinal Krippendorff's alpha, bootstrap over answers", confidence)
    people = sorted({p.labeller for group in shared.values() for p in group})
    return InterLabeller(len(shared), people, alpha, exact)


def agreement(pairs: list[LabelPair], *, claude_tiers: frozenset[str] = frozenset({CLOUD}), confidence: float = 0.95,
              seed: int = 0) -> Agreement:
    """Everything in the module docstring, from the label pairs of one run; ``claude_tiers``: the tiers Claude
    answered, whose bias the self-preference estimate sets against the others'."""
    answers = [p.key for p in pairs]
    distinct = set(answers)
    tiers = sorted({key[2] for key in distinct})
    by_tier = {tier: sum(1 for key in distinct if key[2] == tier) for tier in tiers}
    enough = len(distinct) >= MIN_LABELLED
    bias = _per_answer_bias(pairs)
    out = Agreement(
        labels=len(pairs),
        labelled_answers=len(distinct),
        labellers=sorted({p.labeller for p in pairs}),
        answers_by_tier=by_tier,
        enough=enough,
        shortfall=None if enough else _needed(bias, confidence),
        criteria=[_criterion(name, pairs, answers, enough, confidence, seed) for name in (*CRITERIA, OVERALL)]
        if pairs else [],
        inter_labeller=_inter_labeller(pairs, confidence, seed),
    )
    out = replace(out, pass_fail=_pass_fail(pairs, confidence)) if pairs else out
    if not enough:
        return out
    method = "mean grader − person, cluster-robust normal"
    bias_by_tier = {}
    for tier in tiers:
        term, n = _bias(bias, {tier}, set())
        bias_by_tier[tier] = _bias_interval(term, n, method, confidence)
    preference = None
    claude = set(claude_tiers) & set(tiers)
    if claude and claude != set(tiers):
        cloud, n_cloud = _bias(bias, claude, set())
        others, n_others = _bias(bias, None, claude)
        preference = _bias_interval(combine([(1.0, cloud), (-1.0, others)]), min(n_cloud, n_others),
                                    "Claude tiers' bias − other tiers' bias, cluster-robust normal", confidence)
    return replace(out, bias_by_tier=bias_by_tier, self_preference=preference)
