"""Drive one open-loop schedule: start each call when it is due, whatever earlier calls are doing.

Latency is measured from the call's *due* time, so time spent queued anywhere (waiting for one of the dispatcher's
host slots, in a host's queue, or behind the load generator's own lag) counts, as a user would feel it. Every run is
bounded: the schedule is finite, and calls still open ``grace_s`` after the last due time are cancelled and recorded
as failures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from harness.capacity.summary import CallRecord
from harness.errors import HarnessError

Send = Callable[[int], Awaitable[object]]
OnDone = Callable[[CallRecord], None]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HarnessError):
        return exc.message.splitlines()[0][:200]
    return f"{type(exc).__name__}: {exc}"[:200]


async def drive(
    schedule: Sequence[float], send: Send, *, grace_s: float, on_done: OnDone | None = None
) -> tuple[list[CallRecord], float]:
    """Run ``send(i)`` for every due time ``schedule[i]`` (seconds from now); return the records and elapsed seconds.

    ``send`` answers the call or raises; whatever it raises is recorded as the call's failure (a bug in ``send``
    included, so a broken run shows as failures rather than vanishing). Elapsed time runs from the start to the last
    call's end (or the cut-off).
    """
    records: list[CallRecord | None] = [None] * len(schedule)
    start = time.perf_counter()

    async def one(index: int, due: float) -> None:
        sent = time.perf_counter() - start
        try:
            await send(index)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- recorded as the call's failure
            record = CallRecord(due, sent, time.perf_counter() - start - due, False, _reason(exc))
        else:
            record = CallRecord(due, sent, time.perf_counter() - start - due, True)
        records[index] = record
        if on_done is not None:
            on_done(record)

    tasks: dict[asyncio.Task[None], int] = {}
    for index, due in enumerate(schedule):
        wait = start + due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks[asyncio.create_task(one(index, due), name=f"load:{index}")] = index
    last_due = schedule[-1] if schedule else 0.0
    remaining = start + last_due + grace_s - time.perf_counter()
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, remaining)) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5.0)
    elapsed = time.perf_counter() - start
    out: list[CallRecord] = []
    for index, due in enumerate(schedule):
        record = records[index]
        if record is None:  # cut off: still open at the bound
            record = CallRecord(due, due, elapsed - due, False, f"no answer within {grace_s:g}s of the last due time")
            if on_done is not None:
                on_done(record)
        out.append(record)
    return out, elapsed
