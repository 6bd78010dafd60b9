"""The suite's ``advice:`` section: how much quality the local tier may give up, and how much traffic there is.

Every field has a default, so a report gives tiering advice with no configuration at all.

```yaml
advice:
  tolerance: 0.05             # largest acceptable shortfall (cloud - local) of the graded score, 0..1 scale
                              # (0.05 = five points on a 0-100 scale)
  confidence: 0.95            # of the intervals the advice reads
  calls_per_day: 1000         # total traffic, split over categories in proportion to the suite's cases ...
  calls_per_day_by_category:  # ... unless given per category (categories not listed get no traffic)
    code-section: 400
    jurisdiction: 250
  days_per_month: 30.42       # default 365/12, the month every monthly figure uses
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_TOLERANCE = 0.05
DEFAULT_CALLS_PER_DAY = 1000.0
#: The one month: 365/12 days (730 hours), the billing month of cloud price sheets. The fleet's fixed cost a month
#: (:func:`harness.money.costs.fleet_fixed_usd_per_month`) and the advice's call volume a month both use it.
DAYS_PER_MONTH = 365.0 / 12.0


class AdviceConfig(BaseModel):
    """Inputs of the tiering advice; see the module docstring for the YAML form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance: float = Field(
        default=DEFAULT_TOLERANCE,
        ge=0.0,
        le=1.0,
        description="largest acceptable shortfall (cloud - local) of the 0..1 graded score",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="of every interval the advice reads")
    calls_per_day: float | None = Field(
        default=None, ge=0.0, description=f"total calls a day (default {DEFAULT_CALLS_PER_DAY:g}), split by cases"
    )
    calls_per_day_by_category: dict[str, float] | None = Field(default=None, description="calls a day per category")
    days_per_month: float = Field(
        default=DAYS_PER_MONTH, gt=0.0, le=31.0, description="the month of every monthly figure (default 365/12)"
    )

    @model_validator(mode="after")
    def _one_volume(self) -> AdviceConfig:
        if self.calls_per_day is not None and self.calls_per_day_by_category is not None:
            raise ValueError("give calls_per_day or calls_per_day_by_category, not both")
        if self.calls_per_day_by_category and any(v < 0 for v in self.calls_per_day_by_category.values()):
            raise ValueError("calls_per_day_by_category values must be >= 0")
        return self

    def daily_volume(self, cases_by_category: dict[str, int]) -> dict[str, float]:
        """Calls a day per category: as configured, or the total split in proportion to the suite's cases."""
        if self.calls_per_day_by_category is not None:
            return {c: float(self.calls_per_day_by_category.get(c, 0.0)) for c in cases_by_category}
        total = DEFAULT_CALLS_PER_DAY if self.calls_per_day is None else self.calls_per_day
        cases = sum(cases_by_category.values())
        return {c: total * n / cases for c, n in cases_by_category.items()} if cases else {}
