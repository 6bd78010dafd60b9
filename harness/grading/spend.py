"""Tokens and dollars of the grader calls behind one grade."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Spend:
    """Tokens and dollars of the grader calls behind one grade (a retry adds up)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = 0.0
    calls: int = 0
    unpriced: list[str] = field(default_factory=list)

    def add(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, cost: float | None) -> None:
        self.calls += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_tokens += cache_read
        self.cache_write_tokens += cache_write
        # an unpriced call makes the total unknown, never a silent zero
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost

    def fields(self) -> dict[str, Any]:
        if not self.calls:
            return {}
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": self.cost_usd,
        }
