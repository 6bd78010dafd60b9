"""Is the pricing table stale against the installed ``anthropic`` SDK? One pure function, so a test runs it on the
installed SDK (and on doctored inputs, to show that it catches what it should).

It reports:
- a default model (cloud tier, grader) that the SDK's deprecation table lists, or that the pricing table marks
  deprecated or retired on the day checked;
- a model id the SDK lists that the table neither prices nor explains under ``not_priced``;
- a model whose end-of-life date in the SDK differs from the table's ``retires`` date (or that has none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from harness.config.pricing import PricingTable
from harness.money.lifecycle import model_status


def stale_pricing(
    table: PricingTable,
    *,
    sdk_models: Iterable[str],
    sdk_end_of_life: Mapping[str, date],
    defaults: Mapping[str, str],
    on: date,
) -> list[str]:
    """Every way the table (or a default) has fallen behind the SDK; empty when none."""
    problems: list[str] = []
    for name, model in defaults.items():
        if model in sdk_end_of_life:
            problems.append(
                f"default {name} = {model} is in the SDK's deprecation table "
                f"(end of life {sdk_end_of_life[model].isoformat()}): move the default to a current model"
            )
        status = model_status(model, table, on)
        if status.status in ("deprecated", "retired", "unknown"):
            problems.append(f"default {name} = {model} is {status.status} per {table.path.name} on {on.isoformat()}")
    known = table.names()
    for model in sorted(set(sdk_models) - known):
        problems.append(
            f"the SDK lists {model}, which {table.path.name} neither prices nor lists under not_priced: "
            "add its row (with its source) or explain it under not_priced"
        )
    for model, end in sorted(sdk_end_of_life.items()):
        status = model_status(model, table, on)
        retires = status.lifecycle.retires if status.lifecycle else None
        if status.status == "unknown":
            problems.append(f"the SDK's deprecation table lists {model}, which {table.path.name} does not know")
        elif retires != end:
            problems.append(
                f"{model} reaches end of life on {end.isoformat()} per the SDK, but {table.path.name} says "
                f"retires: {retires.isoformat() if retires else 'nothing'}: add or correct its lifecycle block"
            )
    return problems
