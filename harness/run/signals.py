"""SIGINT and SIGTERM stop a run promptly and cleanly, whatever phase it is in.

- Outside the event loop (loading, ingesting, writing reports) either signal raises RunInterrupted where the main
  thread is, as Ctrl-C raises KeyboardInterrupt.
- Inside the event loop the signal cancels the run's task, so the next await point ends it; retrieval runs in a worker
  thread (see the runner), so there is always one within a search's time.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

from harness.errors import RunInterrupted

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


_received: list[int] = []  # signals the handler below raised for, while interrupts_raise is active


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise RunInterrupted(signum)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise RunInterrupted in the main thread (no-op in other threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    _received.clear()
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_interrupted)
    try:
        yield
        # The exception raised from a signal handler is lost when it lands in a finaliser (``__del__``) or a callback
        # that swallows everything; the signal still stops the command, here at the latest.
        if _received:
            raise RunInterrupted(_received[0])
    finally:
        _received.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def run_stoppable(work: Awaitable[T]) -> T:
    """Await ``work`` in the current task; SIGINT or SIGTERM cancels it and raises RunInterrupted instead."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    received: list[int] = []
    previous: dict[int, Any] = {}

    def on_signal(signum: int) -> None:
        received.append(signum)
        if task is not None and len(received) == 1:
            task.cancel()

    installed = threading.current_thread() is threading.main_thread()
    if installed:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await work
    except asyncio.CancelledError:
        if not received:
            raise
        raise RunInterrupted(received[0]) from None
    finally:
        if installed:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
                signal.signal(sig, previous[sig])  # remove_signal_handler leaves SIG_DFL; put back what was there
