"""Build a run's answering tiers from the suite and the fleet: the tiers that run, and the ones skipped with why.

The local tier is the fleet behind a dispatcher (with the embedded fleet's liveness probe when there is one); the cloud
tier is Claude, when a key is set. Both spend from the run's one budget.
"""

from __future__ import annotations

from pathlib import Path

from harness.config.fleet import DEFAULT_CLOUD_MODEL, DEFAULT_FLEET, Fleet, load_fleet
from harness.config.suite import Suite
from harness.run.tiers import AnswerTier, Budget, CloudTier, LocalTier, SkippedTier, cloud_key_present
from harness.store.records import TierInfo

NO_KEY = "ANTHROPIC_API_KEY is not set"


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


def build_tiers(
    suite: Suite, fleet: Fleet | None, budget: Budget, fleet_path: Path | None, cloud_override: str | None = None
) -> tuple[list[AnswerTier], list[SkippedTier]]:
    tiers: list[AnswerTier] = []
    skipped: list[SkippedTier] = []
    if suite.generation is None:
        return tiers, skipped
    wanted = suite.generation.tiers
    if "local" in wanted:
        if fleet is None:
            skipped.append(SkippedTier("local", "no fleet: pass --fleet FILE or start one with `harness fleet up`"))
        else:
            tiers.append(LocalTier(_dispatcher(fleet, budget, fleet_path)))
    if "cloud" in wanted:
        if cloud_key_present():
            from harness.providers.anthropic_cloud import AnthropicProvider

            model = cloud_model(fleet, cloud_override)
            tiers.append(CloudTier(AnthropicProvider(model), model, budget))
        else:
            skipped.append(SkippedTier("cloud", NO_KEY))
    return tiers, skipped


def _dispatcher(fleet: Fleet, budget: Budget, fleet_path: Path | None) -> object:
    from harness.dispatch import Dispatcher
    from harness.localfleet.liveness import local_liveness

    # The fallback's own cap, held inside the run's budget, which the cloud tier and the grader share.
    fallback_budget = Budget(fleet.cloud_budget_usd, name="fallback", parent=budget)
    # The embedded fleet knows its servers' PIDs: a server that dies is reported as such, not as connection errors.
    probe = local_liveness(fleet, fleet_path) if fleet_path is not None else None
    return Dispatcher.from_fleet(fleet, cloud_budget=fallback_budget, host_probe=probe)


def tier_manifest(suite: Suite, tiers: list[AnswerTier], skipped: list[SkippedTier]) -> dict[str, TierInfo]:
    """The manifest's ``tiers``: each tier the suite asked for, run or skipped with why."""
    if suite.generation is None:
        return {}
    out: dict[str, TierInfo] = {t.name: TierInfo(status="run") for t in tiers}
    out.update({s.name: TierInfo(status="skipped", reason=s.reason) for s in skipped})
    return out
