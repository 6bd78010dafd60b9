"""The cloud pricing table: a dated YAML file of list prices per model, validated with file:line errors.

The bundled table is ``harness/money/pricing.yaml``; ``--pricing FILE`` or ``HARNESS_PRICING`` replaces it. Loading only
parses and checks the file; choosing the active table for a run is :mod:`harness.money.costs`' job.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from harness.config.yaml_loader import load_yaml, validate
from harness.errors import InputError

BUNDLED_PRICING = Path(__file__).resolve().parent.parent / "money" / "pricing.yaml"
#: A dated snapshot id is an id or alias followed by -YYYYMMDD (``claude-sonnet-4-5-20250929``).
_SNAPSHOT_SUFFIX = re.compile(r"-\d{8}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rates(_Strict):
    """US dollars per million tokens for each kind of token."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float = Field(ge=0, description="prompt-cache write with the default 5-minute lifetime")
    cache_write_1h: float = Field(ge=0, description="prompt-cache write with the 1-hour lifetime")
    cache_read: float = Field(ge=0, description="prompt-cache hit or refresh")
    batch_input: float = Field(ge=0, description="Message Batches API input")
    batch_output: float = Field(ge=0, description="Message Batches API output")


class LongPromptRates(Rates):
    """Rates that replace the row's own on every token of a request whose prompt is above ``above_tokens``."""

    above_tokens: int = Field(gt=0)


class ModelPrice(Rates):
    """One model's row: its ids, its rates, and where and when they were read."""

    id: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()
    long_prompt: LongPromptRates | None = None
    source: str = Field(min_length=1, pattern=r"^https?://")
    checked: date
    note: str | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates that apply to a request with this many prompt tokens (input + cache writes + cache reads)."""
        if self.long_prompt is not None and prompt_tokens > self.long_prompt.above_tokens:
            return self.long_prompt
        return self


class PricingFile(_Strict):
    as_of: date
    currency: str = "USD per million tokens"
    models: list[ModelPrice] = Field(min_length=1)


@dataclass(frozen=True)
class PricingTable:
    """A loaded pricing file plus what a run manifest records about it (path, as-of date, content hash)."""

    path: Path
    sha256: str
    as_of: date
    models: tuple[ModelPrice, ...]
    _by_name: dict[str, ModelPrice] = field(repr=False, compare=False, default_factory=dict)

    def price_for(self, model: str) -> ModelPrice:
        """The row for a model id, one of its aliases or dated snapshots; an unknown model lists the known ones."""
        row = self._by_name.get(model) or self._by_name.get(_SNAPSHOT_SUFFIX.sub("", model))
        if row is None:
            raise InputError(
                f"no price for cloud model {model!r} in {self.path}",
                hint=f"use one of: {', '.join(m.id for m in self.models)} (pricing as of {self.as_of.isoformat()}), "
                "or add a row to a copy of the table and pass it with --pricing FILE or HARNESS_PRICING",
            )
        return row

    def manifest(self) -> dict[str, str]:
        return {"path": str(self.path), "as_of": self.as_of.isoformat(), "sha256": self.sha256}


def load_pricing(path: str | Path = BUNDLED_PRICING) -> PricingTable:
    """Parse and validate a pricing file; errors name the file, line and field."""
    document = load_yaml(path)
    parsed = validate(PricingFile, document)
    by_name: dict[str, ModelPrice] = {}
    for index, row in enumerate(parsed.models):
        for name in (row.id, *row.aliases, *row.snapshots):
            if name in by_name:
                raise document.error(
                    f"model id {name!r} is listed twice (also under {by_name[name].id!r})",
                    ("models", index),
                    hint="each id, alias and snapshot may appear in one row only",
                )
            by_name[name] = row
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return PricingTable(Path(path), digest, parsed.as_of, tuple(parsed.models), by_name)
