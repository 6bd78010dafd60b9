"""What a run's manifest says about its ladder: the tiers in the suite's order, and how many retrieved chunks each
prompt was built from."""

from __future__ import annotations

from typing import Any

from harness.store.records import Manifest


def _generation_config(manifest: Manifest) -> Any:
    return ((manifest.suite.config or {}) if manifest.suite is not None else {}).get("generation")


def context_chunks(manifest: Manifest) -> int | None:
    """How many of the retrieved chunks the prompt was built from (the suite's ``generation.context_chunks``)."""
    generation = _generation_config(manifest)
    value = generation.get("context_chunks") if isinstance(generation, dict) else None
    return value if isinstance(value, int) else None


def tier_order(manifest: Manifest) -> list[str]:
    """The suite's ladder order (``generation.tiers``); the store's files list tiers alphabetically."""
    generation = _generation_config(manifest)
    tiers = generation.get("tiers") if isinstance(generation, dict) else None
    if not isinstance(tiers, list):
        return list(manifest.tiers)
    # a named tier is a mapping ({name, fleet | cloud}); a built-in one is its name
    return [str(tier.get("name")) if isinstance(tier, dict) else str(tier) for tier in tiers]


def in_tier_order(tiers: list[str], order: list[str]) -> list[str]:
    return sorted(tiers, key=lambda tier: (order.index(tier) if tier in order else len(order), tier))
