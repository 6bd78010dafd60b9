"""Build a run's ladder of tiers: any number of fleets and Claude models, each answering every generation case.

Each fleet tier gets its own dispatcher (so its own breaker, hedging, slot pool and fallback policy) and is priced
by its own hosts' cost models; each cloud tier is one Claude model, priced from the pricing table. Every tier spends
from the run's one budget. The built-in ``local`` and ``cloud`` keep their meaning (``--fleet`` and its
``cloud_model``), so a ``tiers: [local, cloud]`` suite builds exactly the two tiers it always did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config.fleet import Fleet
from harness.config.suite import Suite
from harness.config.tiers import TierPlan, resolve_ladder
from harness.config.yaml_loader import load_yaml
from harness.money.costs import pricing_table
from harness.money.lifecycle import ModelUse, model_status, today
from harness.run.tiers import AnswerTier, Budget, CloudTier, LocalTier, SkippedTier, cloud_key_present

NO_KEY = "ANTHROPIC_API_KEY is not set"
NO_FLEET = "no fleet: pass --fleet FILE or start one with `harness fleet up`"


def plan_ladder(
    suite: Suite,
    suite_path: Path,
    fleet: Fleet | None,
    fleet_path: Path | None,
    overrides: dict[str, Path] | None = None,
    cloud_override: str | None = None,
) -> list[TierPlan]:
    """Every tier the suite asks for, resolved against the suite's folder and the command line (exit 2 on a bad one)."""
    if suite.generation is None:
        return []
    document = load_yaml(suite_path)
    return resolve_ladder(suite.generation.tiers, document, suite_path.resolve().parent, fleet, fleet_path,
                          overrides, cloud_override)


def ladder_model_uses(plans: list[TierPlan], suite_path: Path) -> list[ModelUse]:
    """The Claude models the named tiers call (each cloud tier, each fleet tier's cloud fallback), where each is
    named. An id the pricing table does not know is refused here, with the suite's line (exit 2)."""
    document = load_yaml(suite_path)
    table = pricing_table()
    uses: list[ModelUse] = []
    for plan in plans:
        if plan.builtin:
            continue  # the built-in tiers' models are named by the fleet file or --cloud-model
        if plan.kind == "cloud" and plan.model is not None:
            if model_status(plan.model, table, today()).status == "unknown":
                raise document.error(
                    f"tier {plan.name!r}: unknown Claude model {plan.model!r}",
                    plan.location,
                    hint=f"`harness models` lists the models {table.path.name} knows",
                )
            uses.append(ModelUse(plan.model, f"the cloud tier {plan.name!r}", document, plan.location))
        elif plan.fleet is not None and plan.fleet.fallback == "cloud":
            fleet_doc = load_yaml(plan.fleet_path) if plan.fleet_path is not None else None
            location = ("cloud_model",) if fleet_doc is not None and "cloud_model" in (fleet_doc.data or {}) else ()
            uses.append(ModelUse(plan.fleet.cloud_model, f"the cloud fallback of fleet tier {plan.name!r}",
                                 fleet_doc, location))
    return uses


def build_ladder(plans: list[TierPlan], budget: Budget) -> tuple[list[AnswerTier], list[SkippedTier]]:
    """The tiers that run, and those skipped with the plain reason (no fleet for ``local``; no API key for a cloud
    tier), in the suite's order."""
    tiers: list[AnswerTier] = []
    skipped: list[SkippedTier] = []
    for plan in plans:
        if plan.kind == "local":
            if plan.fleet is None:
                skipped.append(SkippedTier(plan.name, NO_FLEET))
            else:
                tiers.append(LocalTier(_dispatcher(plan.fleet, budget, plan.fleet_path, plan.name), plan.name,
                                       plan.fleet))
        elif cloud_key_present():
            from harness.providers.anthropic_cloud import AnthropicProvider

            assert plan.model is not None  # a cloud plan always names its model
            tiers.append(CloudTier(AnthropicProvider(plan.model), plan.model, budget, plan.name))
        else:
            skipped.append(SkippedTier(plan.name, NO_KEY))
    return tiers, skipped


def _dispatcher(fleet: Fleet, budget: Budget, fleet_path: Path | None, name: str) -> object:
    from harness.dispatch import Dispatcher
    from harness.localfleet.liveness import local_liveness

    # Each fleet's fallback has its own cap, held inside the run's budget, which the cloud tiers and the grader share.
    label = "fallback" if name == "local" else f"fallback of {name}"
    fallback_budget = Budget(fleet.cloud_budget_usd, name=label, parent=budget)
    # The embedded fleet knows its servers' PIDs: a server that dies is reported as such, not as connection errors.
    probe = local_liveness(fleet, fleet_path) if fleet_path is not None else None
    return Dispatcher.from_fleet(fleet, cloud_budget=fallback_budget, host_probe=probe)


def ladder_capacity(plans: list[TierPlan], capacity_of: Any) -> int:
    """Cases answered at once: every case asks every tier, so the smallest fleet limits it (4 with no fleet)."""
    fleets = [plan.fleet for plan in plans if plan.kind == "local" and plan.fleet is not None]
    return min((int(capacity_of(f)) for f in fleets), default=int(capacity_of(None)))


def fleet_of_tier(plans: list[TierPlan]) -> dict[str, Fleet]:
    """Tier name -> its fleet, for each fleet tier with one (prompt style, cost model)."""
    return {plan.name: plan.fleet for plan in plans if plan.kind == "local" and plan.fleet is not None}


def ladder_manifest(plans: list[TierPlan], skipped: list[SkippedTier]) -> dict[str, Any]:
    """The manifest's ``tiers``: each tier in the suite's order, run or skipped with why, with its kind and what
    serves it (a named fleet tier keeps its whole fleet, so its hosts' cost models price the report)."""
    reasons = {s.name: s.reason for s in skipped}
    out: dict[str, Any] = {}
    for plan in plans:
        info: dict[str, Any] = {"status": "skipped", "reason": reasons[plan.name]} if plan.name in reasons else {
            "status": "run"}
        info["kind"] = plan.kind
        if plan.kind == "cloud":
            info["model"] = plan.model
        elif plan.fleet is not None:
            info["model"] = ", ".join(sorted({host.model for host in plan.fleet.hosts}))
            if not plan.builtin:
                info["fleet"] = plan.fleet.model_dump(mode="json")
                info["fleet_path"] = str(plan.fleet_path) if plan.fleet_path is not None else None
        out[plan.name] = info
    return out
