"""``harness models``: every Claude model the pricing table knows, with its prices, status, dates and sources."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table

from harness.cli.console import console, plain, print_json
from harness.cli.options import JsonOpt, PricingOpt
from harness.config.pricing import Lifecycle, ModelPrice, NotPriced, PricingTable
from harness.money.costs import use_pricing
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


WIDE = 130
"""Below this console width the table drops the cache and batch columns (``--json`` always has every rate)."""


def _table(rows: list[dict[str, Any]], table: PricingTable, on: str) -> Group:
    """The models as a table; sources are numbered below it, so the table fits a terminal."""
    wide = console.width >= WIDE
    sources: dict[str, int] = {}
    out = Table(
        title=f"Claude models on {on}; USD per million tokens, as of {table.as_of.isoformat()}",
        box=box.SIMPLE_HEAD if wide else None,
        pad_edge=False,
    )
    columns = ["model", "status", "in/out", "cache read", "batch in/out", "deprecated", "retires", "successor", "src"]
    if not wide:
        columns = [c for c in columns if c not in ("cache read", "batch in/out", "deprecated")]
    for column in columns:
        out.add_column(column, no_wrap=True)
    for row in rows:
        prices = row["prices"]
        source = row["lifecycle_source"] or row["price_source"] or ""
        number = sources.setdefault(source, len(sources) + 1) if source else None
        retires = row["retires"] or ""
        if wide and row["status"] == "deprecated" and row["days_to_retirement"] is not None:
            retires += f" (in {row['days_to_retirement']} d)"
        cells = {  # ids, dates and URLs come from a YAML file a user may have edited: shown as text
            "model": plain(row["id"]),
            "status": plain(row["status"], _STYLE.get(row["status"], "")),
            "in/out": plain(f"{prices['input']:g}/{prices['output']:g}" if prices else "-"),
            "cache read": plain(f"{prices['cache_read']:g}" if prices else "-"),
            "batch in/out": plain(f"{prices['batch_input']:g}/{prices['batch_output']:g}" if prices else "-"),
            "deprecated": plain(row["deprecated"] or ""),
            "retires": plain(retires),
            "successor": plain(row["successor"] or ""),
            "src": plain(f"[{number}]" if number else ""),
        }
        out.add_row(*(cells[c] for c in columns))
    notes = [plain(f"[{number}] {url}") for url, number in sources.items()]
    more = "" if wide else "; cache, batch and deprecation figures: a wider terminal or --json"
    return Group(out, plain(f"table: {table.path}; src: the lifecycle source, else the price source{more}"), *notes)
