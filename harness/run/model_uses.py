"""Which Claude models a run (or a fleet command) would call, where each was named, and the check that refuses a
retired one before anything runs.

A model is named by a suite field (``grading.model``), a fleet file field (``cloud_model``), a flag
(``--cloud-model``) or a default. Every use is checked against the pricing table's lifecycle on :func:`today`
(:mod:`harness.money.lifecycle`), whether or not an API key is set: a configuration that would fail with a key is
refused without one too, so CI catches it.
"""

from __future__ import annotations

from pathlib import Path

from harness.config.fleet import DEFAULT_CLOUD_MODEL, Fleet
from harness.config.suite import Suite
from harness.config.yaml_loader import load_yaml
from harness.money.costs import pricing_table
from harness.money.lifecycle import ModelUse, check_models, today


def cloud_model_use(fleet: Fleet | None, fleet_path: Path | None, flag: str | None, role: str) -> ModelUse:
    """The cloud model the fleet (or the default) and the ``--cloud-model`` flag choose, and where it was named."""
    if flag is not None:
        return ModelUse(flag, f"--cloud-model for the {role}")
    if fleet is not None and fleet_path is not None:
        document = load_yaml(fleet_path)
        if isinstance(document.data, dict) and "cloud_model" in document.data:
            where = f"the fleet file's cloud_model for the {role}"
            return ModelUse(fleet.cloud_model, where, document, ("cloud_model",))
    return ModelUse(DEFAULT_CLOUD_MODEL, f"the default cloud model DEFAULT_CLOUD_MODEL for the {role}")


def run_model_uses(
    suite: Suite, suite_path: Path, fleet: Fleet | None, fleet_path: Path | None, cloud_flag: str | None = None
) -> list[ModelUse]:
    """Every Claude model a run of this suite may call: the cloud tier, the fleet's cloud fallback, the grader."""
    generation = suite.generation
    if generation is None:
        return []
    uses: list[ModelUse] = []
    roles = []
    if "cloud" in generation.tiers:
        roles.append("cloud tier")
    if fleet is not None and fleet.fallback == "cloud" and "local" in generation.tiers:
        roles.append("cloud fallback")
    if roles:
        uses.append(cloud_model_use(fleet, fleet_path, cloud_flag, " and ".join(roles)))
    document = load_yaml(suite_path)
    data = document.data if isinstance(document.data, dict) else {}
    grading = data.get("grading")
    if isinstance(grading, dict) and "model" in grading:
        uses.append(ModelUse(suite.grading.model, "the suite's grading.model", document, ("grading", "model")))
    else:
        uses.append(ModelUse(suite.grading.model, "the default grader DEFAULT_GRADER_MODEL"))
    return uses


def check_run_models(uses: list[ModelUse]) -> list[str]:
    """Refuse a retired model (exit 2, naming its date, source and successor); warnings for ones retiring soon."""
    return check_models(uses, pricing_table(), today())


def check_fleet_models(fleet: Fleet, fleet_path: Path) -> list[str]:
    """For fleet commands that may fall back to the cloud: the same refusal and warnings as a run."""
    if fleet.fallback != "cloud":
        return []
    return check_run_models([cloud_model_use(fleet, fleet_path, None, "cloud fallback")])
