"""The suite's ``gate:`` section: the rules `harness gate` checks a run against.

```yaml
gate:
  confidence: 0.95            # of every interval the gate decides on
  detect_drop: 0.05           # the true drop whose power the summary states
  thresholds:                 # absolute: the run's mean must reach min (or stay under max)
    - {metric: recall@10, min: 0.85, variant: hybrid}
    - {metric: must_include_recall, tier: local, min: 0.6, category: code-section}
  non_inferiority:            # against --baseline: fail only when the CI's lower bound of (run - baseline) < -margin
    - {metric: ndcg@10, variant: hybrid, margin: 0.05}
    # ... or one tier against another of the same run (no baseline), paired on the cases both answered
    - {metric: graded_score, tier: haiku, non_inferiority_to: sonnet, margin: 0.05}
  failure_rate:               # failed calls / calls, per tier
    - {tier: local, max: 0.05}
```

A metric is a retrieval metric of the suite (``recall@10``), or an answer metric (``token_f1``) or ``grade_score``
together with ``tier:`` (``graded_score`` is another name for ``grade_score``). A tier is one the suite names:
``local``, ``cloud``, or a named tier of its ladder (``harness.config.tiers``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.config.tiers import TIER_NAME_PATTERN

GateTier = Annotated[str, Field(pattern=TIER_NAME_PATTERN)]
"""A tier's name: ``local``, ``cloud`` or a named tier of the suite's ladder."""
METRIC_ALIASES = {"graded_score": "grade_score"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Scoped(_Strict):
    """Which slice of the run a rule looks at: a retrieval or answer metric, narrowed by variant/category/tier."""

    metric: str = Field(min_length=1)
    variant: str | None = None
    category: str | None = None
    tier: GateTier | None = Field(default=None, description="for answer metrics and grade_score: whose answers")
    name: str | None = Field(default=None, description="shown in the summary and as the JUnit test name")

    @field_validator("metric")
    @classmethod
    def _alias(cls, metric: str) -> str:
        return METRIC_ALIASES.get(metric, metric)

    def scope_label(self) -> str:
        parts = [f"{key}={value}" for key, value in (("variant", self.variant), ("tier", self.tier),
                                                     ("category", self.category)) if value]
        return f"{self.metric}[{', '.join(parts)}]" if parts else self.metric


class ThresholdRule(_Scoped):
    """The run's mean over measured cases must be ``>= min`` (or ``<= max``)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> ThresholdRule:
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of `min` or `max`")
        return self


class NonInferiorityRule(_Scoped):
    """Paired against the baseline: fail only when the lower CI bound of ``run - baseline`` is below ``-margin``."""

    margin: float = Field(gt=0, le=1)
    higher_is_better: bool = True
    non_inferiority_to: GateTier | None = Field(
        default=None, description="another tier of the same run to hold ``tier`` against, instead of --baseline"
    )

    @model_validator(mode="after")
    def _two_tiers(self) -> NonInferiorityRule:
        if self.non_inferiority_to is not None and (self.tier is None or self.tier == self.non_inferiority_to):
            raise ValueError("non_inferiority_to needs `tier:` naming another tier of the run")
        return self

    def scope_label(self) -> str:
        label = super().scope_label()
        return label if self.non_inferiority_to is None else f"{label} vs {self.non_inferiority_to}"


class FailureRateRule(_Strict):
    """The share of a tier's calls that failed (errors, timeouts, budget) must be ``<= max``."""

    tier: GateTier
    max: float = Field(ge=0, le=1)
    name: str | None = None


class GateConfig(_Strict):
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    detect_drop: float = Field(default=0.05, gt=0, le=1, description="true drop whose power the summary states")
    resamples: int = Field(default=5000, ge=200, le=200_000, description="bootstrap resamples per interval")
    seed: int = 0
    thresholds: list[ThresholdRule] = Field(default_factory=list)
    non_inferiority: list[NonInferiorityRule] = Field(default_factory=list)
    failure_rate: list[FailureRateRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_rule(self) -> GateConfig:
        if not (self.thresholds or self.non_inferiority or self.failure_rate):
            raise ValueError("a gate needs at least one rule in thresholds, non_inferiority or failure_rate")
        return self
