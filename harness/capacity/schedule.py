"""Open-loop arrival schedules: when each call is due, fixed before the run starts.

An open loop sends calls when they are due whether or not earlier calls have answered, as independent users do. A
closed loop (N workers, each waiting for its answer before sending the next) slows down exactly when the system does,
so it never sees the queue it would have built: coordinated omission. The schedule is drawn up front and latency is
measured from each call's due time.
"""

from __future__ import annotations

import numpy as np

from harness.errors import InputError


def poisson_schedule(rate: float, duration_s: float, *, max_calls: int, seed: int = 0) -> list[float]:
    """Due times (seconds from the start) of a Poisson process of ``rate`` calls/s over ``duration_s`` seconds.

    Inter-arrival gaps are independent exponentials with mean ``1 / rate``; the schedule stops at ``duration_s`` or
    after ``max_calls`` calls, whichever comes first.

    Raises:
        InputError: a non-positive rate, duration or call bound.
    """
    if rate <= 0 or duration_s <= 0 or max_calls < 1:
        raise InputError(
            f"schedule: rate {rate:g}/s, duration {duration_s:g}s and max_calls {max_calls} must all be positive",
            hint="pass --rates with positive calls/s and a positive --duration",
        )
    rng = np.random.default_rng(seed)
    expected = rate * duration_s
    # draw enough gaps for the duration in one go (mean + 6 sd), then cut
    draws = int(expected + 6 * np.sqrt(expected) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate, size=draws))
    while times[-1] < duration_s and len(times) < max_calls:
        more = np.cumsum(rng.exponential(1.0 / rate, size=draws)) + times[-1]
        times = np.concatenate([times, more])
    due = times[times < duration_s][:max_calls]
    return [float(t) for t in due]
