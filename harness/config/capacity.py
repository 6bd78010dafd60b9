"""The fleet file's ``capacity:`` section: the volume the fleet must serve, for `harness fleet bench`'s
recommendation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CapacityPlan(BaseModel):
    """What the fleet is for, in calls.

    Example::

        capacity: {volume: 50000, peak_factor: 3, slo_s: 1.5}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    volume: float = Field(gt=0, description="calls per day")
    peak_factor: float = Field(default=3.0, ge=1, description="the busiest hour's rate over the day's average")
    slo_s: float | None = Field(default=None, gt=0, description="p99 bound; omit for twice the unloaded p50")
