"""The cloud pricing table: a dated YAML file of list prices per model, validated with file:line errors.

The bundled table is ``harness/money/pricing.yaml``; ``--pricing FILE`` or ``HARNESS_PRICING`` replaces it. Loading only
parses and checks the file; choosing the active table for a run is :mod:`harness.money.costs`' job, and what a row's
``lifecycle`` means on a given day is :mod:`harness.money.lifecycle`'s.

Besides the priced rows, ``not_priced`` lists model ids the table knows of but does not price (a model with no
published list price), each with the reason, so the check against the installed SDK can tell "left out on purpose"
from "forgotten".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.config.yaml_loader import YamlDocument, load_yaml, validate
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


class Lifecycle(_Strict):
    """When a model stops being recommended (``deprecated``) and stops answering (``retires``), and who said so."""

    deprecated: date | None = Field(default=None, description="the day Anthropic deprecated the model")
    retires: date | None = Field(default=None, description="the first day requests to the model fail")
    source: str = Field(min_length=1, pattern=r"^https?://", description="where the dates were read")
    successor: str | None = Field(default=None, min_length=1, description="the recommended replacement, if named")

    @model_validator(mode="after")
    def _ordered(self) -> Lifecycle:
        if self.deprecated is None and self.retires is None:
            raise ValueError("give deprecated:, retires: or both")
        if self.deprecated is not None and self.retires is not None and self.retires < self.deprecated:
            raise ValueError(f"retires ({self.retires}) is before deprecated ({self.deprecated})")
        return self


class ModelPrice(Rates):
    """One model's row: its ids, its rates, and where and when they were read; optionally its lifecycle."""

    id: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()
    long_prompt: LongPromptRates | None = None
    source: str = Field(min_length=1, pattern=r"^https?://")
    checked: date
    lifecycle: Lifecycle | None = None
    note: str | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates that apply to a request with this many prompt tokens (input + cache writes + cache reads)."""
        if self.long_prompt is not None and prompt_tokens > self.long_prompt.above_tokens:
            return self.long_prompt
        return self


class NotPriced(_Strict):
    """A model id the table knows of but does not price, and why (a lifecycle still lets a run refuse it by date)."""

    id: str = Field(min_length=1)
    snapshots: tuple[str, ...] = ()
    reason: str = Field(min_length=1)
    lifecycle: Lifecycle | None = None


class PricingFile(_Strict):
    as_of: date
    currency: str = "USD per million tokens"
    models: list[ModelPrice] = Field(min_length=1)
    not_priced: list[NotPriced] = Field(default_factory=list)


@dataclass(frozen=True)
class PricingTable:
    """A loaded pricing file plus what a run manifest records about it (path, as-of date, content hash)."""

    path: Path
    sha256: str
    as_of: date
    models: tuple[ModelPrice, ...]
    _by_name: dict[str, ModelPrice] = field(repr=False, compare=False, default_factory=dict)
    not_priced: tuple[NotPriced, ...] = ()

    def find(self, model: str) -> ModelPrice | None:
        """The row for a model id, one of its aliases or dated snapshots; None when the table has no price for it."""
        return self._by_name.get(model) or self._by_name.get(_SNAPSHOT_SUFFIX.sub("", model))

    def find_unpriced(self, model: str) -> NotPriced | None:
        """The ``not_priced`` entry for a model id or one of its snapshots, if any."""
        base = _SNAPSHOT_SUFFIX.sub("", model)
        for entry in self.not_priced:
            if model in (entry.id, *entry.snapshots) or base == entry.id:
                return entry
        return None

    def names(self) -> set[str]:
        """Every id, alias and snapshot the table prices or explains."""
        priced = set(self._by_name)
        return priced.union(*({e.id, *e.snapshots} for e in self.not_priced))

    def price_for(self, model: str) -> ModelPrice:
        """The row for a model id, one of its aliases or dated snapshots; an unknown model lists the known ones."""
        row = self.find(model)
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
    _check_not_priced(document, parsed, by_name)
    _check_successors(document, parsed, by_name)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return PricingTable(Path(path), digest, parsed.as_of, tuple(parsed.models), by_name, tuple(parsed.not_priced))


def _check_not_priced(document: YamlDocument, parsed: PricingFile, by_name: dict[str, ModelPrice]) -> None:
    seen: set[str] = set()
    for index, entry in enumerate(parsed.not_priced):
        for name in (entry.id, *entry.snapshots):
            if name in by_name or name in seen:
                raise document.error(
                    f"model id {name!r} is both priced and listed under not_priced, or listed twice",
                    ("not_priced", index),
                    hint="a model is either priced (under models:) or explained (under not_priced:), once",
                )
            seen.add(name)


def _check_successors(document: YamlDocument, parsed: PricingFile, by_name: dict[str, ModelPrice]) -> None:
    """A successor must be a priced model, so a refused run can name a replacement the harness can actually price."""
    entries: list[tuple[str, int, Lifecycle | None]] = [
        *(("models", i, row.lifecycle) for i, row in enumerate(parsed.models)),
        *(("not_priced", i, entry.lifecycle) for i, entry in enumerate(parsed.not_priced)),
    ]
    for section, index, lifecycle in entries:
        if lifecycle is not None and lifecycle.successor is not None and lifecycle.successor not in by_name:
            raise document.error(
                f"successor {lifecycle.successor!r} has no row in this table",
                (section, index, "lifecycle", "successor"),
                hint="name a priced model id as the successor, or add its row",
            )
