"""The suite's ``grading:`` section: how many answers are graded, by which judges, and at what cost cap.

``judges:`` lists the graders. The first is always Claude (``grading.model``), the primary judge: its grade is the one
every drift, advice and gate figure reads. A second judge, from another model family, grades the same sample with the
same rubric and prompts, blind, so the report can set the judges against each other (self-preference, when nobody has
labelled). It is a host of the run's fleet (``host:``), or any Ollama or OpenAI-compatible server (``url`` + ``kind``
+ ``model``), asked for structured output.

Money: a judge with ``price:`` is a paid API; its calls reserve and settle on the grading budget like Claude's. Any
other judge is self-hosted: its grades cost what its host's cost model says (the fleet host's ``cost:``, or the
``cost:`` given here), or nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from harness.config.fleet import HostCost

DEFAULT_GRADER_MODEL = "claude-sonnet-4-6"  # why this model: README, "Which Claude model"
PRIMARY_JUDGE = "claude"
"""The primary judge's name: the Claude grader of ``grading.model``, first in ``grading.judges``."""
JUDGE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

JudgeKind = Literal["anthropic", "ollama", "openai"]
"""``anthropic``: the primary judge only; ``ollama`` / ``openai``: the keys of the providers' registry."""


class JudgePrice(BaseModel):
    """List prices of a paid judge API, US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    input: float = Field(ge=0, description="USD per million prompt tokens")
    output: float = Field(ge=0, description="USD per million output tokens")


class JudgeConfig(BaseModel):
    """One grader. ``{name: claude}`` is the primary judge (its model is ``grading.model``); any other entry is a
    second judge given by ``host:`` (a fleet host's name) or by ``url`` + ``kind`` + ``model``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=JUDGE_NAME_PATTERN, description="how reports name this judge")
    kind: JudgeKind | None = Field(default=None, description="anthropic (claude only), ollama or openai")
    host: str | None = Field(default=None, min_length=1, description="a host of the run's fleet file, by name")
    url: HttpUrl | None = None
    model: str | None = Field(default=None, min_length=1)
    token_env: str | None = Field(default=None, min_length=1, description="variable holding a bearer token")
    cost: HostCost | None = Field(default=None, description="a self-hosted judge's cost model (as a fleet host's)")
    price: JudgePrice | None = Field(default=None, description="a paid API's prices: its calls use the grading budget")
    concurrency: int | None = Field(default=None, ge=1, le=64, description="calls at once (grading.concurrency)")
    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="longest wait for one grade")

    @property
    def primary(self) -> bool:
        return self.name == PRIMARY_JUDGE

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> JudgeConfig:
        if self.primary:
            given = [f for f in ("host", "url", "model", "token_env", "cost", "price") if getattr(self, f) is not None]
            if self.kind not in (None, "anthropic") or given:
                extra = ", ".join(given) or f"kind: {self.kind}"
                raise ValueError(
                    f"the judge named {PRIMARY_JUDGE!r} is the Claude grader of grading.model; it takes no {extra} "
                    f"(name a second judge otherwise)"
                )
            return self
        if self.kind == "anthropic":
            raise ValueError(f"kind: anthropic is the primary judge only; name it {PRIMARY_JUDGE!r}, or use ollama "
                             "or openai for a second judge")
        if self.host is not None:
            given = [f for f in ("kind", "url", "model", "token_env", "cost") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"a judge given by host: takes its {', '.join(given)} from the fleet file; "
                                 "remove them here")
            return self
        missing = [f for f in ("url", "kind", "model") if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a second judge needs host: (a fleet host) or url, kind and model; missing: "
                             f"{', '.join(missing)}")
        if self.cost is not None and self.price is not None:
            raise ValueError("give cost: (a self-hosted judge) or price: (a paid API), not both")
        return self

    @property
    def base_url(self) -> str | None:
        return str(self.url).rstrip("/") if self.url is not None else None


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
    judges: list[JudgeConfig] = Field(
        default_factory=lambda: [JudgeConfig(name=PRIMARY_JUDGE)],
        min_length=1,
        description="the graders; the first is claude (the primary judge), the rest grade the same sample blind",
    )

    @field_validator("judges")
    @classmethod
    def _primary_first_names_unique(cls, judges: list[JudgeConfig]) -> list[JudgeConfig]:
        problem = judge_list_problem([j.name for j in judges])
        if problem is not None:
            raise ValueError(f"judge {problem[0] + 1}: {problem[1]}")
        return judges

    @property
    def second_judges(self) -> list[JudgeConfig]:
        return self.judges[1:]


def judge_list_problem(names: list[object]) -> tuple[int, str] | None:
    """The first entry of ``grading.judges`` (by index) that breaks the list's rules, and why; None when it is fine.

    Used on the validated list and, by the suite loader, on the raw YAML, so the error can name the entry's line.
    """
    if names and names[0] != PRIMARY_JUDGE:
        return 0, (f"the first judge must be {{name: {PRIMARY_JUDGE}}}, the primary grader (grading.model); "
                   "list second judges after it")
    seen: set[object] = set()
    for index, name in enumerate(names):
        if name in seen:
            return index, f"duplicate judge name {name!r}"
        seen.add(name)
    return None
