"""One budget for every cloud call: reserve before, settle after, so concurrent calls cannot overshoot the cap."""

from __future__ import annotations

import asyncio
import random

import pytest

from harness.errors import BudgetExceeded
from harness.money.budget import Budget


def test_reserve_counts_holds_against_the_cap_and_settle_replaces_them() -> None:
    budget = Budget(0.10)
    first = budget.reserve(0.06)
    assert budget.reserved_usd == pytest.approx(0.06) and budget.remaining_usd == pytest.approx(0.04)
    with pytest.raises(BudgetExceeded) as info:
        budget.reserve(0.05)  # 0.06 held + 0.05 > 0.10, though nothing is spent yet
    assert "run budget" in info.value.message and "$0.0500" in info.value.message
    assert budget.refused == 1
    budget.settle(first, 0.02)
    assert budget.spent_usd == pytest.approx(0.02) and budget.reserved_usd == 0.0
    second = budget.reserve(0.05)
    budget.release(second)
    assert budget.spent_usd == pytest.approx(0.02) and budget.calls == 1


def test_unknown_price_keeps_the_projection_spent_and_is_counted() -> None:
    budget = Budget(1.0)
    budget.settle(budget.reserve(0.3), None)
    assert budget.spent_usd == pytest.approx(0.3) and budget.unpriced_calls == 1


def test_settling_twice_or_after_release_changes_nothing() -> None:
    budget = Budget(1.0)
    held = budget.reserve(0.3)
    budget.settle(held, 0.1)
    budget.settle(held, 0.5)
    budget.release(held)
    assert budget.spent_usd == pytest.approx(0.1) and budget.calls == 1


def test_child_budget_holds_on_its_parent_and_the_tighter_cap_is_named() -> None:
    run = Budget(1.0)
    grading = Budget(0.25, name="grading", parent=run)
    held = grading.reserve(0.2)
    assert run.reserved_usd == pytest.approx(0.2)
    with pytest.raises(BudgetExceeded) as info:
        grading.reserve(0.1)
    assert info.value.message.startswith("grading budget")
    grading.settle(held, 0.15)
    assert run.spent_usd == pytest.approx(0.15) and run.reserved_usd == 0.0
    run.spend(0.8)  # the cloud tier spent most of the run's money
    with pytest.raises(BudgetExceeded) as info:
        grading.reserve(0.08)  # grading's own cap has room (0.10 left) but the run's has only 0.05
    assert info.value.message.startswith("run budget")


def test_no_cap_still_counts_spend() -> None:
    budget = Budget(None)
    budget.settle(budget.reserve(5.0), 4.0)
    assert budget.remaining_usd is None and not budget.exhausted and budget.spent_usd == 4.0


def test_concurrent_callers_never_exceed_the_cap() -> None:
    """A simulation with known truth: 200 tasks whose calls cost at most their projection, awaiting between
    reserve and settle, against a cap that fits only some of them; total spend must stay within the cap."""

    async def main() -> tuple[Budget, int]:
        budget = Budget(0.05)
        rng = random.Random(7)
        made = 0

        async def call() -> None:
            nonlocal made
            projected = 0.004
            try:
                held = budget.reserve(projected)
            except BudgetExceeded:
                return
            made += 1
            await asyncio.sleep(rng.random() / 1000)
            budget.settle(held, projected * rng.uniform(0.2, 1.0))

        await asyncio.gather(*(call() for _ in range(200)))
        return budget, made

    budget, made = asyncio.run(main())
    assert budget.spent_usd <= 0.05
    assert budget.reserved_usd == 0.0
    assert made >= 12  # the first 12 always fit (12 x 0.004 = 0.048); later ones fit as settlements free room
    assert budget.calls == made and budget.refused == 200 - made
