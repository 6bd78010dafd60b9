"""Per-subject token buckets: ``rate`` requests per second on average, bursts up to ``burst``. Pure (clock injected)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by subject, with the least recently seen subjects forgotten past ``max_subjects``.

    Args:
        rate: tokens added per second.
        burst: bucket capacity (and the starting fill).
        max_subjects: bound on remembered subjects, so memory stays flat whatever the traffic.
    """

    def __init__(self, rate: float, burst: float, *, max_subjects: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_subjects = max_subjects
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, subject: str, now: float) -> float:
        """Take one token for ``subject``: 0.0 if granted, else the seconds until one will be available."""
        bucket = self._buckets.get(subject)
        if bucket is None:
            bucket = _Bucket(tokens=self.burst, updated=now)
            self._buckets[subject] = bucket
            if len(self._buckets) > self.max_subjects:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(subject)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        # the epsilon absorbs float error, so a client that waits exactly the advertised time is admitted
        if bucket.tokens >= 1.0 - 1e-9:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` is whole seconds; round up so a client that obeys it is never refused again at once."""
    return str(max(1, math.ceil(wait_s)))
