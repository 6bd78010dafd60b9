"""The fleet file: which local hosts to dispatch to, how, and what to do when they all fail."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from harness.config.capacity import CapacityPlan
from harness.config.yaml_loader import load_yaml, validate

# The dispatcher's registry (harness.dispatch.strategies.STRATEGIES) checks at import that it serves exactly these.
Strategy = Literal["race", "hedge", "single", "least_loaded", "auto"]
HostKind = Literal["ollama", "openai"]  # the keys of PROVIDERS; tests/test_kinds_match_registries.py holds them equal
Endpoint = Literal["chat", "completion"]
FallbackPolicy = Literal["cloud", "none"]

DEFAULT_CLOUD_MODEL = "claude-sonnet-4-6"  # why this model: README, "Which Claude model"
# Where `harness fleet up` writes the embedded fleet, and where commands look when no --fleet is given.
DEFAULT_FLEET = Path(".harness") / "fleet.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class HostCost(_Strict):
    """What a local host costs to run, so local calls get a dollar figure too (``money.costs.local_call_cost``)."""

    watts: float = Field(default=0.0, ge=0, description="average draw while serving")
    usd_per_kwh: float = Field(default=0.0, ge=0)
    hardware_usd_per_hour: float = Field(default=0.0, ge=0, description="hardware price amortised per hour")


class Host(_Strict):
    """One model server."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: HttpUrl
    kind: HostKind = "ollama"
    model: str = Field(min_length=1)
    endpoint: Endpoint = Field(
        default="chat",
        description="chat: messages API (ollama /api/chat, openai /v1/chat/completions); "
        "completion: raw prompt (ollama /api/generate raw, openai /v1/completions), for base models with a template",
    )
    max_concurrency: int = Field(
        default=1, ge=1, description="requests sent to this host at once; Ollama's default parallelism is 1"
    )
    stream: bool = Field(
        default=False,
        description="stream answers, so a cancelled race loser stops at once; some servers then report no token "
        "counts or timings",
    )
    token_env: str | None = Field(default=None, description="environment variable holding a bearer token (gateway)")
    cost: HostCost = Field(default_factory=HostCost)

    @property
    def base_url(self) -> str:
        return str(self.url).rstrip("/")


class HedgePolicy(_Strict):
    """When to send a second request: after ``delay_s`` if fixed, else after the host's recent p95."""

    delay_s: float | None = Field(default=None, gt=0, description="fixed delay; omit for the adaptive p95 delay")
    quantile: float = Field(default=0.95, gt=0.5, lt=1.0)
    min_delay_s: float = Field(default=0.05, ge=0)
    initial_delay_s: float = Field(default=1.0, gt=0, description="delay before enough latency samples exist")
    budget: float = Field(default=0.15, ge=0, le=1.0, description="extra requests allowed per call, on average")


class BreakerPolicy(_Strict):
    failures: int = Field(default=3, ge=1, description="consecutive failures that open the breaker")
    cooldown_s: float = Field(default=30.0, gt=0, description="how long an open breaker skips the host")


class Fleet(_Strict):
    """A fleet file."""

    hosts: list[Host] = Field(min_length=1)
    strategy: Strategy = "race"
    timeout_s: float = Field(default=8.0, gt=0, description="overall timeout of one dispatched call")
    hedge: HedgePolicy = Field(default_factory=HedgePolicy)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    fallback: FallbackPolicy = "none"
    cloud_model: str = DEFAULT_CLOUD_MODEL
    cloud_budget_usd: float = Field(default=5.0, ge=0, description="most the fallback may spend in one run")
    capacity: CapacityPlan | None = Field(default=None, description="daily volume for `fleet bench`'s recommendation")

    @field_validator("hosts")
    @classmethod
    def _unique_names(cls, hosts: list[Host]) -> list[Host]:
        names = [h.name for h in hosts]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate host name(s): {', '.join(duplicates)}")
        return hosts


    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet file; errors name the file, line and field."""
    return validate(Fleet, load_yaml(path))
