"""``harness models``: every Claude model the pricing table knows, with its prices, status, dates and sources."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from harness.cli.commands import JsonOpt, PricingOpt
from harness.cli.console import console, plain, print_json
from harness.config.pricing import Lifecycle, ModelPrice, NotPriced, PricingTable
from harness.costs import use_pricing
from harness.money.lifecycle import ModelStatus, model_status, today

_STYLE = {"current": "green", "deprecated": "yellow", "retired": "red"}


def models(pricing: PricingOpt = None, json_out: JsonOpt = False) -> None:
    """List each known Claude model: prices (USD per million tokens), status on today's date (current, deprecated,
    retired), deprecation and retirement dates, successor and sources. Today is $HARNESS_TODAY when set."""
    table = use_pricing(pricing)
    on = today()
    rows = [_priced(row, model_status(row.id, table, on)) for row in table.models]
    rows += [_unpriced(entry, model_status(entry.id, table, on)) for entry in table.not_priced]
    if json_out:
        print_json({"on": on.isoformat(), "pricing": table.manifest(), "models": rows})
        return
    console.print(_table(rows, table, on.isoformat()))


def _lifecycle(lifecycle: Lifecycle | None) -> dict[str, Any]:
    return {
        "deprecated": lifecycle.deprecated.isoformat() if lifecycle and lifecycle.deprecated else None,
        "retires": lifecycle.retires.isoformat() if lifecycle and lifecycle.retires else None,
        "successor": lifecycle.successor if lifecycle else None,
        "lifecycle_source": lifecycle.source if lifecycle else None,
    }


def _priced(row: ModelPrice, status: ModelStatus) -> dict[str, Any]:
    rates = {
        name: getattr(row, name)
        for name in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "batch_input", "batch_output")
    }
    return {
        "id": row.id,
        "aliases": list(row.aliases),
        "snapshots": list(row.snapshots),
        "status": status.status,
        "days_to_retirement": status.days_left,
        "priced": True,
        "prices": rates,
        "long_prompt": row.long_prompt.model_dump() if row.long_prompt else None,
        "price_source": row.source,
        "checked": row.checked.isoformat(),
        **_lifecycle(row.lifecycle),
        "note": row.note,
    }


def _unpriced(entry: NotPriced, status: ModelStatus) -> dict[str, Any]:
    return {
        "id": entry.id,
        "aliases": [],
        "snapshots": list(entry.snapshots),
        "status": status.status,
        "days_to_retirement": status.days_left,
        "priced": False,
        "prices": None,
        "long_prompt": None,
        "price_source": None,
        "checked": None,
        **_lifecycle(entry.lifecycle),
        "note": entry.reason,
    }


def _table(rows: list[dict[str, Any]], table: PricingTable, on: str) -> Group:
    """The models as a table; sources are numbered below it, so the table fits a terminal."""
    sources: dict[str, int] = {}
    out = Table(title=f"Claude models on {on}, prices per million tokens (USD) as of {table.as_of.isoformat()}")
    for column in ("model", "status", "in", "out", "cache read", "batch in/out", "deprecated", "retires", "successor",
                   "src"):
        out.add_column(column, no_wrap=column in ("model", "status", "deprecated", "retires", "successor"))
    for row in rows:
        prices = row["prices"]
        money = (
            (f"{prices['input']:g}", f"{prices['output']:g}", f"{prices['cache_read']:g}",
             f"{prices['batch_input']:g}/{prices['batch_output']:g}")
            if prices else ("-", "-", "-", "not priced")
        )
        source = row["lifecycle_source"] or row["price_source"] or ""
        number = sources.setdefault(source, len(sources) + 1) if source else None
        retires = row["retires"] or ""
        if row["status"] == "deprecated" and row["days_to_retirement"] is not None:
            retires += f" (in {row['days_to_retirement']} d)"
        out.add_row(  # ids, dates and URLs come from a YAML file a user may have edited: shown as text
            plain(row["id"]),
            plain(row["status"], _STYLE.get(row["status"], "")),
            *money,
            plain(row["deprecated"] or ""),
            plain(retires),
            plain(row["successor"] or ""),
            plain(f"[{number}]" if number else ""),
        )
    notes = [plain(f"[{number}] {url}") for url, number in sources.items()]
    return Group(out, plain(f"table: {table.path}; src: the lifecycle source, else the price source"), *notes)
