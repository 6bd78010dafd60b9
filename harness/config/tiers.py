"""The suite's ladder of answering tiers: ``generation.tiers`` and ``generation.reference``.

Two spellings, which may not be mixed with the same name twice:

```yaml
generation:
  tiers: [local, cloud]                  # the two built-in tiers: --fleet (or the embedded fleet) and its cloud_model
---
generation:
  tiers:
    - {name: fleet-8b,  fleet: fleets/small.yaml}   # a fleet file, resolved against the suite's folder
    - {name: haiku,     cloud: claude-haiku-4-5}    # a Claude model
    - {name: sonnet,    cloud: claude-sonnet-4-5}
  reference: sonnet                      # what every other tier is measured against (default: the costliest that ran)
```

A tier names exactly one of ``fleet:`` or ``cloud:``. Its name is an identifier, because it becomes a column prefix, a
cache key part and a chart label. The checks that need no file (identifier, one of fleet/cloud, duplicate names,
unknown reference) run while the suite loads; :func:`resolve_ladder` checks the fleet files (``--fleet NAME=FILE``
overrides one) and returns each tier's plan, every error naming the suite's file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from harness.config.fleet import DEFAULT_CLOUD_MODEL, Fleet, load_fleet
from harness.config.yaml_loader import YamlDocument
from harness.errors import ConfigError, InputError

BuiltinTier = Literal["local", "cloud"]
BUILTIN_TIERS: tuple[BuiltinTier, ...] = ("local", "cloud")
TierKind = Literal["local", "cloud"]
TIER_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,39}$"
"""An identifier (``-`` allowed): it becomes a results column prefix, a cache key part and a chart label."""


class TierSpec(BaseModel):
    """One named tier: a fleet file or a Claude model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TIER_NAME_PATTERN, description="an identifier: letters, digits, '_' and '-'")
    fleet: str | None = Field(default=None, description="a fleet file, relative to the suite's folder")
    cloud: str | None = Field(default=None, description="a Claude model id (see `harness models`)")

    @model_validator(mode="after")
    def _exactly_one(self) -> TierSpec:
        if (self.fleet is None) == (self.cloud is None):
            given = "both fleet: and cloud:" if self.fleet is not None else "neither fleet: nor cloud:"
            raise ValueError(f"tier {self.name!r} names {given}; give exactly one (a fleet file or a Claude model)")
        if self.fleet is not None and not self.fleet.strip():
            raise ValueError(f"tier {self.name!r} has an empty fleet: path")
        return self

    @property
    def kind(self) -> TierKind:
        return "local" if self.fleet is not None else "cloud"


def _entry_tag(value: Any) -> str:
    return "builtin" if isinstance(value, str) else "named"


TierEntry = Annotated[
    Annotated[BuiltinTier, Tag("builtin")] | Annotated[TierSpec, Tag("named")], Discriminator(_entry_tag)
]
"""``local``, ``cloud``, or ``{name, fleet | cloud}``."""


def entry_name(entry: BuiltinTier | TierSpec) -> str:
    return entry if isinstance(entry, str) else entry.name


def check_ladder(tiers: list[BuiltinTier | TierSpec], reference: str | None, document: YamlDocument) -> None:
    """Duplicate names and an unknown reference, each refused with the line of the entry that is wrong."""
    first: dict[str, int] = {}
    for index, entry in enumerate(tiers):
        name = entry_name(entry)
        if name in first:
            where = document.line_of(("generation", "tiers", first[name]))
            raise document.error(
                f"duplicate tier name {name!r} (first at line {where})",
                ("generation", "tiers", index),
                hint="every tier needs its own name",
            )
        first[name] = index
    if reference is not None and reference not in first:
        raise document.error(
            f"unknown reference tier {reference!r}",
            ("generation", "reference"),
            hint=f"tiers defined: {', '.join(first)}",
        )


@dataclass(frozen=True)
class TierPlan:
    """One tier a run is asked for, resolved: its kind, and its fleet (local) or model (cloud).

    ``fleet`` is ``None`` for a local tier only when no fleet is known (the built-in ``local`` without ``--fleet``
    or a started fleet): that tier is skipped with the reason, as before.
    """

    name: str
    kind: TierKind
    fleet: Fleet | None = None
    fleet_path: Path | None = None
    model: str | None = None  # the cloud tier's model
    location: tuple[str | int, ...] = ()  # where the suite names it, for errors
    builtin: bool = False  # the built-in ``local`` or ``cloud`` (its fleet from --fleet, its model from the fleet)


def is_ladder(tiers: list[BuiltinTier | TierSpec]) -> bool:
    """Whether the suite names its tiers (the ladder form) rather than listing the built-in two."""
    return any(isinstance(entry, TierSpec) for entry in tiers)


def parse_fleet_overrides(values: list[str]) -> tuple[Path | None, dict[str, Path]]:
    """``--fleet FILE`` (the built-in local tier's) and any ``--fleet NAME=FILE`` (a named tier's), apart."""
    plain: list[str] = []
    named: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and re.fullmatch(TIER_NAME_PATTERN, name) and path:
            if name in named:
                raise InputError(f"--fleet {name}=... is given twice", hint="give each named tier's fleet once")
            named[name] = Path(path)
        else:
            plain.append(value)
    if len(plain) > 1:
        raise InputError(f"--fleet is given {len(plain)} files without a tier name",
                         hint="give one plain --fleet FILE (the local tier's); name the others as --fleet NAME=FILE")
    return (Path(plain[0]) if plain else None), named


def resolve_ladder(
    tiers: list[BuiltinTier | TierSpec],
    document: YamlDocument,
    suite_dir: Path,
    local_fleet: Fleet | None,
    local_fleet_path: Path | None,
    overrides: dict[str, Path] | None = None,
    cloud_override: str | None = None,
) -> list[TierPlan]:
    """Each tier's plan, in the suite's order. A named fleet file that is missing or invalid is refused (exit 2) with
    the suite line that names it; an override for a tier the suite does not name as a fleet is refused too."""
    overrides = dict(overrides or {})
    fleet_names = {t.name for t in tiers if isinstance(t, TierSpec) and t.fleet is not None}
    unknown = sorted(set(overrides) - fleet_names)
    if unknown:
        raise InputError(
            f"--fleet {unknown[0]}=FILE names no fleet tier of the suite",
            hint=f"fleet tiers: {', '.join(sorted(fleet_names)) or 'none (use a plain --fleet FILE)'}",
        )
    plans: list[TierPlan] = []
    for index, entry in enumerate(tiers):
        location: tuple[str | int, ...] = ("generation", "tiers", index)
        if entry == "local":
            plans.append(TierPlan("local", "local", local_fleet, local_fleet_path, location=location, builtin=True))
        elif entry == "cloud":
            model = cloud_override or (local_fleet.cloud_model if local_fleet else DEFAULT_CLOUD_MODEL)
            plans.append(TierPlan("cloud", "cloud", model=model, location=location, builtin=True))
        elif isinstance(entry, TierSpec) and entry.cloud is not None:
            plans.append(TierPlan(entry.name, "cloud", model=entry.cloud, location=(*location, "cloud")))
        elif isinstance(entry, TierSpec) and entry.fleet is not None:
            path = overrides.get(entry.name) or _under(suite_dir, entry.fleet)
            plans.append(TierPlan(entry.name, "local", _load_tier_fleet(path, entry, document, location,
                                                                         entry.name in overrides),
                                  path, location=(*location, "fleet")))
    return plans


def _under(suite_dir: Path, given: str) -> Path:
    path = Path(given).expanduser()
    return path if path.is_absolute() else suite_dir / path


def _load_tier_fleet(path: Path, entry: TierSpec, document: YamlDocument, location: tuple[str | int, ...],
                     overridden: bool) -> Fleet:
    where = f"--fleet {entry.name}={path}" if overridden else f"fleet: {entry.fleet}"
    if not path.is_file():
        message = f"tier {entry.name!r}: the fleet file {path} does not exist ({where})"
        hint = "fix the path (it is relative to the suite's folder), or pass --fleet NAME=FILE"
        if overridden:
            raise InputError(message, hint=hint)
        raise document.error(message, (*location, "fleet"), hint=hint)
    try:
        return load_fleet(path)
    except ConfigError as exc:
        if overridden:
            raise
        raise document.error(f"tier {entry.name!r}: its fleet file is invalid: {exc.message}", (*location, "fleet"),
                             hint=exc.hint) from exc
