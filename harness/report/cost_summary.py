"""The cost section: what each tier cost per call and the monthly volume at which the local fleet breaks even.

Only measured figures appear. With no cloud call in the run there is no cloud figure and no break-even.
"""

from __future__ import annotations

import pandas as pd

from harness.config.fleet import HostCost
from harness.costs import break_even, fleet_fixed_usd_per_month, local_call_cost
from harness.run.records import Manifest


def cost_lines(gen: pd.DataFrame, manifest: Manifest) -> list[str]:
    if gen.empty:
        return []
    ok = gen[gen["status"] == "ok"]
    local = ok[(ok["tier"] == "local") & ~ok["fallback"].astype(bool)]
    cloud = ok[(ok["tier"] == "cloud") | ok["fallback"].astype(bool)]
    host_costs = _host_costs(manifest)
    lines = []
    local_energy = None
    if len(local):
        energy = [
            local_call_cost(host_costs.get(h, HostCost()), s).energy_usd
            for h, s in zip(local["host"], local["latency_s"], strict=True)
        ]
        local_energy = sum(energy) / len(energy)
        lines.append(
            f"local tier: {len(local)} calls, ${local['cost_usd'].mean():.6f} per call fully loaded "
            f"(energy + hardware share for the busy seconds), ${local_energy:.6f} per call in energy alone"
        )
    if len(cloud):
        spent = cloud["cost_usd"].sum(min_count=1)
        lines.append(
            f"cloud tier: {len(cloud)} calls, ${spent:.4f} in total, ${cloud['cost_usd'].mean():.6f} per call "
            f"(list prices as of {manifest.pricing_as_of})"
        )
    else:
        lines.append("cloud tier: no cloud call was made, so there is no cloud cost and no break-even in this run")
    fixed = fleet_fixed_usd_per_month(list(host_costs.values()))
    if len(cloud) and local_energy is not None and cloud["cost_usd"].notna().any():
        result = break_even(fixed, local_energy, float(cloud["cost_usd"].mean()))
        if result.calls_per_month is None:
            lines.append("break-even: never — a local call costs at least as much energy as a cloud call")
        else:
            lines.append(
                f"break-even: above {result.calls_per_month:,.0f} calls a month the local fleet "
                f"(${fixed:,.2f}/month hardware) is cheaper than sending every call to the cloud"
            )
    return lines


def _host_costs(manifest: Manifest) -> dict[str, HostCost]:
    fleet = manifest.fleet or {}
    return {host["name"]: HostCost(**host.get("cost", {})) for host in fleet.get("hosts", [])}
