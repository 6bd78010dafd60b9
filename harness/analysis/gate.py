"""The deploy gate: a run's frames and the suite's ``gate:`` rules in, one verdict per rule out. Pure: no I/O.

Three kinds of rule:

* **threshold**: the mean over the slice's measured cases is compared with ``min`` (or ``max``); its bootstrap
  interval is shown beside it, the verdict is on the mean.
* **non-inferiority**: paired on the cases both runs measured, the two-sided ``confidence`` bootstrap interval of
  ``run - baseline``; the rule fails only when its lower bound is below ``-margin``. The summary also states, from the
  observed SD of the differences and ``n`` (normal approximation, :mod:`harness.metrics.stats.power`), how often
  this rule
  would fail two runs of the same system (A/A) and a true drop of ``detect_drop``, and the size that reaches 80%.
* **failure rate**: failed calls / (answered + failed calls) of a tier, with its Clopper–Pearson interval. Answers
  replayed from the response cache are no calls and are left out.

A rule with nothing to measure fails, and says why: a gate never passes on missing data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from scipy import stats as sps

from harness.config.gate import FailureRateRule, GateConfig, NonInferiorityRule, ThresholdRule
from harness.errors import InputError
from harness.metrics.case_values import Slice, case_values, paired
from harness.metrics.stats import tests as stats
from harness.metrics.stats.power import ni_fail_probability, ni_size_for_power
from harness.store.frames import fresh_calls, replay_summaries

Verdict = Literal["pass", "fail"]
TARGET_POWER = 0.8
MAX_AA_FAIL = 0.05


@dataclass(frozen=True)
class GateRun:
    """What the gate reads of one run (built from the run store by ``report/``)."""

    run_id: str
    retrieval: pd.DataFrame
    generation: pd.DataFrame
    metrics: list[str]
    tiers: dict[str, Any] = field(default_factory=dict)  # the manifest's tiers: run, or skipped with a reason


@dataclass(frozen=True)
class PowerClaim:
    """Operating characteristics of a non-inferiority rule at the observed SD and size."""

    sd: float
    n: int
    aa_fail: float
    drop: float
    power: float
    n_for_target: int | None
    target_power: float
    note: str = ""


@dataclass(frozen=True)
class RuleResult:
    kind: Literal["threshold", "non_inferiority", "failure_rate"]
    name: str
    verdict: Verdict
    observed: float | None
    bound: float | None
    margin: float | None
    n: int
    low: float | None = None
    high: float | None = None
    reason: str = ""
    power: PowerClaim | None = None
    only_in_one: int = 0

    def line(self) -> str:
        """One line: observed, bound, margin, verdict."""
        head = f"{self.verdict.upper():4}  {self.kind:<15} {self.name}: "
        if self.observed is None:
            return head + f"unmeasured ({self.reason})"
        interval = f" [{_f(self.low)}, {_f(self.high)}]" if self.low is not None else ""
        if self.kind == "non_inferiority":
            body = (f"run − baseline {_f(self.observed)}{interval}, n={self.n}; lower bound {_f(self.bound)} "
                    f"vs −margin {_f(-(self.margin or 0))}")
        elif self.kind == "failure_rate":
            body = f"failure rate {_f(self.observed)}{interval}, n={self.n}; max {_f(self.bound)}"
        else:
            body = f"mean {_f(self.observed)}{interval}, n={self.n}; {self.reason}"
        return head + body


@dataclass(frozen=True)
class GateResult:
    run_id: str
    baseline_id: str | None
    confidence: float
    rules: list[RuleResult]

    @property
    def passed(self) -> bool:
        return all(rule.verdict == "pass" for rule in self.rules)

    @property
    def failed(self) -> list[RuleResult]:
        return [rule for rule in self.rules if rule.verdict == "fail"]


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def evaluate(config: GateConfig, run: GateRun, baseline: GateRun | None = None) -> GateResult:
    """Check every rule of ``config`` against ``run`` (and ``baseline`` for non-inferiority rules)."""
    against_baseline = [rule for rule in config.non_inferiority if rule.non_inferiority_to is None]
    if against_baseline and baseline is None:
        raise InputError(
            f"the gate has {len(against_baseline)} non_inferiority rule(s) but no baseline run",
            hint="pass --baseline RUN_DIR (e.g. the last deployed run)",
        )
    results: list[RuleResult] = []
    for index, rule in enumerate(config.thresholds):
        results.append(_threshold(config, rule, run, f"gate.thresholds[{index}]"))
    for index, ni_rule in enumerate(config.non_inferiority):
        where = f"gate.non_inferiority[{index}]"
        if ni_rule.non_inferiority_to is not None:
            results.append(_tier_non_inferiority(config, ni_rule, run, where))
            continue
        assert baseline is not None
        results.append(_non_inferiority(config, ni_rule, run, baseline, where))
    for rate_rule in config.failure_rate:
        results.append(_failure_rate(config, rate_rule, run))
    return GateResult(run.run_id, baseline.run_id if baseline else None, config.confidence, results)


def _slice(rule: ThresholdRule | NonInferiorityRule) -> Slice:
    return Slice(rule.metric, rule.variant, rule.category, rule.tier)


def _values(rule: ThresholdRule | NonInferiorityRule, run: GateRun, where: str) -> Any:
    try:
        return case_values(_slice(rule), run.retrieval, run.generation, run.metrics)
    except InputError as exc:
        raise InputError(f"{where}.metric: {exc.message} (run {run.run_id})", hint=exc.hint) from exc


def _threshold(config: GateConfig, rule: ThresholdRule, run: GateRun, where: str) -> RuleResult:
    name = rule.name or rule.scope_label()
    found = _values(rule, run, where)
    if not found.values:
        return RuleResult("threshold", name, "fail", None, rule.min if rule.max is None else rule.max, None, 0,
                          reason=f"no measured case in this slice ({found.n_unmeasured} unmeasured)")
    ci = stats.bootstrap_mean_ci(list(found.values.values()), confidence=config.confidence,
                                 n_resamples=config.resamples, seed=config.seed)
    mean = ci.estimate
    assert mean is not None
    if rule.min is not None:
        ok, bound, words = mean >= rule.min, rule.min, f"min {_f(rule.min)}"
    else:
        assert rule.max is not None
        ok, bound, words = mean <= rule.max, rule.max, f"max {_f(rule.max)}"
    return RuleResult("threshold", name, "pass" if ok else "fail", mean, bound, None, ci.n, ci.low, ci.high,
                      reason=words)


def _tier_non_inferiority(config: GateConfig, rule: NonInferiorityRule, run: GateRun, where: str) -> RuleResult:
    """``tier`` against ``non_inferiority_to`` within one run, paired on the cases both tiers answered."""
    assert rule.tier is not None and rule.non_inferiority_to is not None
    for tier in (rule.tier, rule.non_inferiority_to):
        if run.tiers and tier not in run.tiers:
            return RuleResult("non_inferiority", rule.name or rule.scope_label(), "fail", None, None, rule.margin, 0,
                              reason=f"the run has no tier {tier!r} (its tiers: {', '.join(run.tiers)})")
    reference = rule.model_copy(update={"tier": rule.non_inferiority_to})
    ours, theirs = _untiered(_values(rule, run, where)), _untiered(_values(reference, run, where))
    return _non_inferiority(config, rule, run, run, where, values=(ours, theirs))


def _untiered(found: Any) -> Any:
    """Case values keyed by case and variant alone, so two tiers of one run pair case by case."""
    return type(found)({key.rsplit("|", 1)[0]: value for key, value in found.values.items()}, found.n_unmeasured)


def _non_inferiority(
    config: GateConfig, rule: NonInferiorityRule, run: GateRun, baseline: GateRun, where: str,
    values: tuple[Any, Any] | None = None,
) -> RuleResult:
    name = rule.name or rule.scope_label()
    ours, theirs = values if values is not None else (_values(rule, run, where), _values(rule, baseline, where))
    keys, base, cand = paired(theirs, ours)
    only = len(set(ours.values) ^ set(theirs.values))
    if not keys:
        return RuleResult("non_inferiority", name, "fail", None, None, rule.margin, 0,
                          reason="no case measured in both runs", only_in_one=only)
    if not rule.higher_is_better:  # compare "how much better", so a rise of a lower-is-better metric is a drop
        base, cand = [-x for x in base], [-x for x in cand]
    ci = stats.paired_bootstrap_ci(base, cand, confidence=config.confidence, n_resamples=config.resamples,
                                   seed=config.seed)
    assert ci.low is not None and ci.estimate is not None
    diffs = pd.Series(cand) - pd.Series(base)
    sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
    claim = power_claim(config, rule.margin, sd, len(keys))
    verdict: Verdict = "fail" if ci.low < -rule.margin else "pass"
    return RuleResult("non_inferiority", name, verdict, ci.estimate, ci.low, rule.margin, ci.n, ci.low, ci.high,
                      power=claim, only_in_one=only)


def power_claim(config: GateConfig, margin: float, sd: float, n: int) -> PowerClaim:
    """What the summary claims of a non-inferiority rule: A/A false fails, power against ``detect_drop``, size."""
    aa = ni_fail_probability(0.0, margin, sd, n, confidence=config.confidence)
    power = ni_fail_probability(config.detect_drop, margin, sd, n, confidence=config.confidence)
    size = ni_size_for_power(config.detect_drop, margin, sd, confidence=config.confidence, power=TARGET_POWER,
                             max_aa_fail=MAX_AA_FAIL)
    note = ""
    if aa > MAX_AA_FAIL:
        note = f"margin is tight for n={n}: two runs of the same system would fail {aa:.0%} of the time"
    return PowerClaim(sd, n, aa, config.detect_drop, power, size.n, TARGET_POWER, note or size.reason)


def _failure_rate(config: GateConfig, rule: FailureRateRule, run: GateRun) -> RuleResult:
    name = rule.name or f"failure_rate[tier={rule.tier}]"
    tier_info = run.tiers.get(rule.tier) or {}
    if tier_info.get("status") == "skipped":
        return RuleResult("failure_rate", name, "fail", None, rule.max, None, 0,
                          reason=f"the {rule.tier} tier did not run: {tier_info.get('reason', 'no reason recorded')}")
    gen = run.generation
    calls = fresh_calls(gen[gen["tier"] == rule.tier]) if not gen.empty else gen
    if calls.empty:
        replays = replay_summaries(gen).get(rule.tier)
        why = replays.not_measured() if replays and replays.replayed else f"no {rule.tier} call in this run"
        return RuleResult("failure_rate", name, "fail", None, rule.max, None, 0, reason=why)
    failed = int((calls["status"] == "failed").sum())
    n = len(calls)
    interval = sps.binomtest(failed, n).proportion_ci(confidence_level=config.confidence, method="exact")
    rate = failed / n
    verdict: Verdict = "pass" if rate <= rule.max else "fail"
    return RuleResult("failure_rate", name, verdict, rate, rule.max, None, n, float(interval.low),
                      float(interval.high))
