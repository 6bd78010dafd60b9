"""The fleet a run uses and what it can serve; the tiers themselves are built by :mod:`harness.run.ladder`."""

from __future__ import annotations

from pathlib import Path

from harness.config.fleet import DEFAULT_CLOUD_MODEL, DEFAULT_FLEET, Fleet, load_fleet


def run_fleet_path(path: Path | None) -> Path | None:
    """The fleet file a run uses: the one passed, else the one ``harness fleet up`` wrote, if any."""
    if path is not None:
        return path
    return DEFAULT_FLEET if DEFAULT_FLEET.exists() else None


def load_run_fleet(path: Path | None) -> Fleet | None:
    found = run_fleet_path(path)
    return load_fleet(found) if found is not None else None


def fleet_capacity(fleet: Fleet | None) -> int:
    """Calls the fleet can serve at once: a race occupies every host, so the smallest host limits it."""
    if fleet is None:
        return 4
    limits = [host.max_concurrency for host in fleet.hosts]
    return min(limits) if fleet.strategy == "race" else sum(limits)


def cloud_model(fleet: Fleet | None, override: str | None = None) -> str:
    """The cloud tier's model: ``--cloud-model``, else the fleet file's ``cloud_model``, else the default."""
    if override is not None:
        return override
    return fleet.cloud_model if fleet else DEFAULT_CLOUD_MODEL
