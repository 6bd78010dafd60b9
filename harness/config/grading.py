"""The suite's ``grading:`` section: how many answers Claude grades, with which model, and at what cost cap."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_GRADER_MODEL = "claude-sonnet-4-6"  # why this model: README, "Which Claude model"


class GradingConfig(BaseModel):
    """Sampled grading. Defaults grade a fifth of the generation cases, at least two per category.

    ``temperature``/``top_p`` are sent only when set here: some current models reject them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(default=0.2, ge=0, le=1, description="share of each category's generation cases graded")
    min_per_category: int = Field(default=2, ge=0, description="graded cases per category before the rate applies")
    max_usd: float | None = Field(default=None, gt=0, description="cap on grading spend, inside the run's budget")
    seed: int = Field(default=0, description="picks the sample and shuffles the grading order")
    model: str = Field(default=DEFAULT_GRADER_MODEL, min_length=1)
    batch: bool = Field(default=False, description="grade through the Message Batches API at half price")
    max_tokens: int = Field(default=400, ge=64, le=4096, description="longest grader reply")
    concurrency: int = Field(default=4, ge=1, le=64, description="grader calls at once (not batched)")
    cache_ttl: Literal["5m", "1h"] = Field(default="5m", description="prompt-cache lifetime of the rubric")
    batch_poll_s: float = Field(default=30.0, gt=0, le=3600, description="seconds between batch status polls")
    batch_timeout_s: float = Field(
        default=24 * 3600.0, gt=0, description="longest wait for a batch before its pending grades are recorded"
    )
    diagnose: bool = Field(
        default=False, description="also split each graded answer and its reference into claims and check them"
    )
    diagnose_max_tokens: int = Field(default=2000, ge=256, le=8192, description="longest claims reply")
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
