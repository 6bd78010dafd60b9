"""Tokens and dollars of the grader calls behind one grade."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.providers.types import Usage


@dataclass
class Spend:
    """Tokens and dollars of the grader calls behind one grade (a retry adds up)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float | None = 0.0
    calls: int = 0
    unpriced: list[str] = field(default_factory=list)

    def add(self, usage: Usage, cost: float | None) -> None:
        """Count one call's tokens (a count the server did not report adds nothing) and its cost."""
        self.calls += 1
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        self.cache_read_input_tokens += usage.cache_read_input_tokens or 0
        self.cache_creation_input_tokens += usage.cache_creation_input_tokens or 0
        # an unpriced call makes the total unknown, never a silent zero
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost

    def fields(self) -> dict[str, Any]:
        if not self.calls:
            return {}
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cost_usd": self.cost_usd,
        }
