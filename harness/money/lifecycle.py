"""A cloud model's lifecycle on a given day, read from the pricing table's ``lifecycle`` blocks.

A model is *retired* on and after its ``retires`` date (requests to it fail), *deprecated* from its ``deprecated``
date (or, when that day is not known, as soon as a retirement date is announced), and *current* otherwise. A run
refuses every retired model it names before anything runs (:func:`check_models`, exit 2) and warns about one that
retires within :data:`WARN_DAYS` days. At run time, an API's ``not_found_error`` about a model is explained from
the same table (:func:`unavailable_message`).

"Today" is :func:`today`: the ``HARNESS_TODAY`` environment variable (an ISO date) when set, else the system date,
so tests and reproductions never depend on the wall clock.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from harness.config.pricing import Lifecycle, PricingTable
from harness.config.yaml_loader import YamlDocument
from harness.config.yaml_positions import LinePath
from harness.errors import InputError

TODAY_ENV = "HARNESS_TODAY"
WARN_DAYS = 30
"""A model that retires within this many days makes a run warn (in the CLI and in the report's verdict)."""

Status = Literal["current", "deprecated", "retired", "unknown"]


def today() -> date:
    """``$HARNESS_TODAY`` (YYYY-MM-DD) when set, else the system date."""
    given = os.environ.get(TODAY_ENV, "").strip()
    if not given:
        return date.today()
    try:
        return date.fromisoformat(given)
    except ValueError as exc:
        raise InputError(f"{TODAY_ENV}={given!r} is not a date", hint="use YYYY-MM-DD, or unset it") from exc


@dataclass(frozen=True)
class ModelStatus:
    """What the table says of one model id on one day."""

    model: str
    row_id: str | None  # the table's id for it (a snapshot or alias maps to its row); None when unknown
    status: Status
    lifecycle: Lifecycle | None
    priced: bool
    on: date

    @property
    def days_left(self) -> int | None:
        """Days until retirement (0 or less once retired); None without a retirement date."""
        if self.lifecycle is None or self.lifecycle.retires is None:
            return None
        return (self.lifecycle.retires - self.on).days

    @property
    def retiring_soon(self) -> bool:
        return self.days_left is not None and 0 < self.days_left <= WARN_DAYS


def model_status(model: str, table: PricingTable, on: date) -> ModelStatus:
    """The status of a model id, alias or dated snapshot on day ``on``."""
    row = table.find(model)
    if row is not None:
        return ModelStatus(model, row.id, _status(row.lifecycle, on), row.lifecycle, True, on)
    unpriced = table.find_unpriced(model)
    if unpriced is not None:
        return ModelStatus(model, unpriced.id, _status(unpriced.lifecycle, on), unpriced.lifecycle, False, on)
    return ModelStatus(model, None, "unknown", None, False, on)


def _status(lifecycle: Lifecycle | None, on: date) -> Status:
    if lifecycle is None:
        return "current"
    if lifecycle.retires is not None and on >= lifecycle.retires:
        return "retired"
    if lifecycle.deprecated is not None:  # a known deprecation day decides; else an announced retirement does
        return "deprecated" if on >= lifecycle.deprecated else "current"
    return "deprecated"


@dataclass(frozen=True)
class ModelUse:
    """A model a run would call, and where it was named: a YAML field (file and line), a flag, or a default."""

    model: str
    where: str  # e.g. "grading.model", "--cloud-model", "the default cloud model"
    document: YamlDocument | None = None
    location: LinePath = ()


def check_models(uses: Iterable[ModelUse], table: PricingTable, on: date) -> list[str]:
    """Refuse a retired model (InputError naming the date, source and successor); return warnings for models that
    retire within :data:`WARN_DAYS` days. Unknown ids pass here: pricing refuses them with its own message."""
    warnings: list[str] = []
    seen: set[str] = set()
    for use in uses:
        status = model_status(use.model, table, on)
        if status.status == "retired":
            raise _retired_error(use, status, table)
        if status.retiring_soon and use.model not in seen:
            seen.add(use.model)
            warnings.append(retiring_warning(status, use.where, table))
    return warnings


def _retired_error(use: ModelUse, status: ModelStatus, table: PricingTable) -> InputError:
    lifecycle = status.lifecycle
    assert lifecycle is not None and lifecycle.retires is not None  # a retired status has a retirement date
    message = (
        f"{use.where} names {use.model}, which retired on {lifecycle.retires.isoformat()} "
        f"(per {table.path.name}; source: {lifecycle.source}): every call to it would fail"
    )
    hint = _successor_hint(lifecycle)
    if use.document is not None:
        return use.document.error(message, use.location, hint=hint)
    return InputError(message, hint=hint)


def retiring_warning(status: ModelStatus, where: str, table: PricingTable) -> str:
    lifecycle = status.lifecycle
    assert lifecycle is not None and lifecycle.retires is not None
    days = status.days_left
    return (
        f"{status.model} ({where}) retires on {lifecycle.retires.isoformat()}, in {days} day{'s' * (days != 1)} "
        f"(per {table.path.name}; source: {lifecycle.source}); {_successor_hint(lifecycle)}"
    )


def _successor_hint(lifecycle: Lifecycle) -> str:
    if lifecycle.successor:
        return f"use its successor {lifecycle.successor} instead (`harness models` lists every model and its status)"
    return "the table names no successor: pick a current model from `harness models`"


def unavailable_message(model: str, table: PricingTable, on: date) -> tuple[str, str]:
    """(message, hint) for an API that answered ``not_found_error`` about ``model``."""
    status = model_status(model, table, on)
    lifecycle = status.lifecycle
    if lifecycle is not None and lifecycle.retires is not None:
        verb = "retired" if status.status == "retired" else "is due to retire"
        return (
            f"model {model} is not available ({verb} on {lifecycle.retires.isoformat()} per {table.path.name})",
            _successor_hint(lifecycle),
        )
    known = "no retirement date for it" if status.row_id else "no row for it"
    return (
        f"model {model} is not available (the API does not know it; {table.path.name} has {known})",
        "check the model id (`harness models` lists the known ones), or whether this API key may use it",
    )


def retired_ids(table: PricingTable, on: date) -> frozenset[str]:
    """Every id, alias and snapshot the table says is retired on day ``on`` (the ids a real API refuses)."""
    out: set[str] = set()
    for row in table.models:
        if _status(row.lifecycle, on) == "retired":
            out.update((row.id, *row.aliases, *row.snapshots))
    for entry in table.not_priced:
        if _status(entry.lifecycle, on) == "retired":
            out.update((entry.id, *entry.snapshots))
    return frozenset(out)
