"""The one dollar budget every cloud call is held to: the cloud tier, the dispatcher's fallback and the grader."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from harness.errors import BudgetExceeded


@dataclass(frozen=True)
class Reservation:
    """Dollars held for one call in flight, on its budget and on every budget above it."""

    id: int
    usd: float
    purpose: str


@dataclass
class Budget:
    """Dollars that cloud calls may spend: one class for the cloud tier, the dispatcher's fallback and the grader.

    A call reserves its projected cost before it is made and settles it to the real cost after, so
    concurrent calls cannot all pass a check and overshoot together: the sum of what is spent and what is held never
    exceeds the cap. (Only a call that costs more than its projection can go past it, by the difference; projections
    are upper estimates for that reason.) ``reserve`` and ``settle`` never await, so on one event loop they are
    atomic; a lock makes them safe across threads too.

    A budget may have a ``parent`` (grading inside the run's budget, the fallback inside it too): a reservation holds
    on both, so the tighter cap wins and the parent sees every dollar.

    Args:
        cap_usd: the most it may spend; ``None`` means no cap (spend is still counted).
        name: shown in the refusal message ("run", "grading", "fallback").
        parent: an enclosing budget that must also allow every reservation.
    """

    cap_usd: float | None
    name: str = "run"
    parent: Budget | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    calls: int = 0
    unpriced_calls: int = 0
    refused: int = 0
    _held: dict[int, Reservation] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    _ids = itertools.count(1)

    @property
    def remaining_usd(self) -> float | None:
        """What may still be reserved; ``None`` without a cap."""
        if self.cap_usd is None:
            return None if self.parent is None else self.parent.remaining_usd
        own = max(0.0, self.cap_usd - self.spent_usd - self.reserved_usd)
        above = self.parent.remaining_usd if self.parent is not None else None
        return own if above is None else min(own, above)

    @property
    def exhausted(self) -> bool:
        """Nothing more can be reserved (the cap is reached, here or above)."""
        remaining = self.remaining_usd
        return remaining is not None and remaining <= 0.0

    def allows(self, projected_usd: float) -> bool:
        """Whether a call projected at ``projected_usd`` could be reserved now (a hint; ``reserve`` decides)."""
        remaining = self.remaining_usd
        return remaining is None or projected_usd <= remaining + 1e-12

    def reserve(self, projected_usd: float, purpose: str = "cloud call") -> Reservation:
        """Hold ``projected_usd`` for one call, here and in every parent.

        Raises:
            BudgetExceeded: the hold would take spend plus holds past a cap; nothing is held then.
        """
        if projected_usd < 0:
            raise ValueError(f"projected cost must be >= 0, got {projected_usd}")
        with self._lock:
            if not self.allows(projected_usd):
                self._refuse(projected_usd, purpose)
            reservation = Reservation(next(Budget._ids), projected_usd, purpose)
            self._hold(reservation)
            return reservation

    def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        """Replace the hold by what the call really cost.

        ``None`` means the call was made but its price is unknown: the projection stays spent (the safe side) and
        the call is counted as unpriced, so a report can say so rather than show a silent zero.
        """
        with self._lock:
            if not self._release(reservation):
                return
            self._charge(reservation.usd if actual_usd is None else actual_usd, priced=actual_usd is not None)

    def release(self, reservation: Reservation) -> None:
        """Drop the hold of a call that was never made or cost nothing (refused before reaching the server)."""
        with self._lock:
            self._release(reservation)

    def spend(self, usd: float | None) -> None:
        """Record a call that was made without a reservation (its price counted as is)."""
        with self._lock:
            self._charge(usd or 0.0, priced=usd is not None)

    def describe(self) -> str:
        cap = "no cap" if self.cap_usd is None else f"cap ${self.cap_usd:.4f}"
        return f"{self.name} budget ({cap}, spent ${self.spent_usd:.4f}, held ${self.reserved_usd:.4f})"

    # --- internals, called with the lock held ----------------------------------------------------------------

    def _refuse(self, projected_usd: float, purpose: str) -> None:
        self.refused += 1
        # name the budget whose own cap is the tightest, so the message says which cap to raise
        chain = [self]
        while chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        capped = [b for b in chain if b.cap_usd is not None]
        tight = min(capped, key=lambda b: b._own_remaining()) if capped else self
        raise BudgetExceeded(
            f"{tight.describe()} cannot hold ${projected_usd:.4f} more for a {purpose}",
            hint="raise --budget (or grading.max_usd) to make the remaining cloud calls",
        )

    def _own_remaining(self) -> float:
        return float("inf") if self.cap_usd is None else self.cap_usd - self.spent_usd - self.reserved_usd

    def _hold(self, reservation: Reservation) -> None:
        self._held[reservation.id] = reservation
        self.reserved_usd += reservation.usd
        if self.parent is not None:
            with self.parent._lock:
                self.parent._hold(reservation)

    def _release(self, reservation: Reservation) -> bool:
        held = self._held.pop(reservation.id, None)
        if held is None:
            return False
        self.reserved_usd = max(0.0, self.reserved_usd - held.usd)
        if self.parent is not None:
            with self.parent._lock:
                self.parent._release(reservation)
        return True

    def _charge(self, usd: float, *, priced: bool) -> None:
        self.calls += 1
        self.unpriced_calls += 0 if priced else 1
        self.spent_usd += usd
        if self.parent is not None:
            with self.parent._lock:
                self.parent._charge(usd, priced=priced)

