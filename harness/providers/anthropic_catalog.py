"""What the installed ``anthropic`` SDK knows about Claude models: the ids its ``Model`` type lists, and its
deprecation table (model id -> end-of-life date), which the SDK uses for its own DeprecationWarning.

The deprecation table is private to the SDK (``anthropic._data``); reading it here, in one place, lets a test cross-
check the pricing table after every SDK upgrade (``make lock``). When a later SDK moves it, :func:`sdk_catalog`
raises instead of returning an empty table, so the check cannot pass by finding nothing.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from datetime import date, datetime

_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)\b")


@dataclass(frozen=True)
class SdkCatalog:
    version: str
    model_ids: frozenset[str]  # every literal of anthropic.types.Model
    end_of_life: dict[str, date]  # anthropic._data.DEPRECATED_MODELS, parsed


def parse_sdk_date(text: str) -> date:
    """``"November 30th, 2026"`` -> ``date(2026, 11, 30)``."""
    return datetime.strptime(_ORDINAL.sub(r"\1", text.strip()), "%B %d, %Y").date()


def _literals(alias: object) -> set[str]:
    out: set[str] = set()
    for arg in typing.get_args(alias):
        if isinstance(arg, str):
            out.add(arg)
        else:
            out |= _literals(arg)
    return out


def sdk_catalog() -> SdkCatalog:
    """Read the installed SDK's model ids and deprecation table."""
    import anthropic
    from anthropic.types import Model

    try:
        from anthropic._data import DEPRECATED_MODELS
    except ImportError as exc:  # the SDK moved its private table: the cross-check must be taught where
        raise RuntimeError(f"anthropic {anthropic.__version__} has no anthropic._data.DEPRECATED_MODELS") from exc
    ids = _literals(Model)
    if not ids:
        raise RuntimeError(f"anthropic {anthropic.__version__}: anthropic.types.Model lists no model id")
    end_of_life = {model: parse_sdk_date(when) for model, when in DEPRECATED_MODELS.items()}
    return SdkCatalog(anthropic.__version__, frozenset(ids), end_of_life)
