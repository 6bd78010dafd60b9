"""Did every tier the run was asked to run actually answer? Pure: run records in, verdict out.

A run is green only if every tier it ran answered. A tier that answered none of its calls, or whose share of failed
calls is over the limit (``--max-failure-rate``, else the suite's ``generation.max_failure_rate``, else
:data:`DEFAULT_MAX_FAILURE_RATE`), fails the run: the manifest says ``failed`` with the reasons, and the CLI exits 3.
Failures at or under the limit are listed in the report as before and leave the run green.

Only calls count: an answer replayed from the response cache was not asked of any model, so it is tallied apart
(``replayed``) and neither answers nor fails. A tier that replayed every answer made no call and is not judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.store.records import TierTallyInfo, VerdictInfo

DEFAULT_MAX_FAILURE_RATE = 0.2


@dataclass(frozen=True)
class TierTally:
    """How one tier's calls ended over the whole run (resumed records included)."""

    tier: str
    answered: int = 0  # calls of this run that answered (replays not counted)
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # failure message -> how many calls ended with it
    replayed: int = 0  # answers replayed from the response cache: no call made

    @property
    def calls(self) -> int:
        return self.answered + self.failed

    @property
    def failure_rate(self) -> float | None:
        """Failed calls / calls; ``None`` when the tier made no call (nothing to judge)."""
        return self.failed / self.calls if self.calls else None

    def commonest_error(self) -> tuple[str, int] | None:
        top = self.errors.most_common(1)
        return top[0] if top else None

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "answered": self.answered, "failed": self.failed,
                "failure_rate": self.failure_rate, "replayed": self.replayed}


@dataclass(frozen=True)
class Verdict:
    """The run's verdict: ``failed`` with one reason per failing tier, or green."""

    failed: bool
    reasons: tuple[str, ...]
    max_failure_rate: float
    tallies: dict[str, TierTally]

    def to_manifest(self) -> VerdictInfo:
        return VerdictInfo(
            status="failed" if self.failed else "passed",
            reasons=list(self.reasons),
            max_failure_rate=self.max_failure_rate,
            tiers={name: TierTallyInfo.model_validate(tally.to_dict()) for name, tally in self.tallies.items()},
        )


def tally_tiers(
    outcomes: Iterable[tuple[str, str, str | None, bool]], tiers: Iterable[str]
) -> dict[str, TierTally]:
    """Count answered and failed calls of each tier that was asked to run, and its replayed answers apart.

    Args:
        outcomes: one ``(tier, status, error, cached)`` per generation record of the run (status ``ok``, ``failed``
            or ``skipped``; ``cached``: replayed from the response cache); tiers not in ``tiers`` are ignored.
        tiers: the tiers the run was asked to run.
    """
    answered: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    replayed: Counter[str] = Counter()
    errors: dict[str, Counter[str]] = {tier: Counter() for tier in tiers}
    for tier, status, error, cached in outcomes:
        if tier not in errors:
            continue
        if status == "ok" and cached:
            replayed[tier] += 1
        elif status == "ok":
            answered[tier] += 1
        elif status == "failed":
            failed[tier] += 1
            errors[tier][error or "no error recorded"] += 1
    return {tier: TierTally(tier, answered[tier], failed[tier], errors[tier], replayed[tier]) for tier in errors}


def resolve_max_failure_rate(cli_value: float | None, suite_value: float | None) -> float:
    """The command line's limit, else the suite's, else the default."""
    if cli_value is not None:
        return cli_value
    return suite_value if suite_value is not None else DEFAULT_MAX_FAILURE_RATE


def judge(tallies: Mapping[str, TierTally], max_failure_rate: float) -> Verdict:
    """Fail the run for each tier that answered nothing, or whose failure share exceeds ``max_failure_rate``."""
    if not 0.0 <= max_failure_rate <= 1.0:
        raise ValueError(f"max_failure_rate={max_failure_rate} is not a share between 0 and 1")
    reasons: list[str] = []
    for name, tally in tallies.items():
        rate = tally.failure_rate
        if rate is None:
            continue
        if tally.answered == 0:
            reason = f"{name} tier answered none of its {tally.calls} calls"
        elif rate > max_failure_rate:
            reason = (
                f"{name} tier: {tally.failed} of {tally.calls} calls failed ({rate:.0%}), over the limit of "
                f"{max_failure_rate:.0%}"
            )
        else:
            continue
        top = tally.commonest_error()
        if top is not None:
            message, count = top
            reason += f"; commonest error ({count} of {tally.failed}): {message}"
        reasons.append(reason)
    return Verdict(bool(reasons), tuple(reasons), max_failure_rate, dict(tallies))


__all__ = [
    "DEFAULT_MAX_FAILURE_RATE",
    "TierTally",
    "Verdict",
    "judge",
    "resolve_max_failure_rate",
    "tally_tiers",
]
