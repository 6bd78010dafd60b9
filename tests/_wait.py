"""Waiting in tests for the event itself: poll a condition with a generous timeout, never sleep a fixed time and look.

The timeout only bounds a test that would otherwise hang; a busy machine makes a wait longer, never wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

GENEROUS_S = 30.0


def eventually(condition: Callable[[], bool], timeout: float = GENEROUS_S) -> bool:
    """Poll a condition another thread makes true a moment later; False if it never did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def until(condition: Callable[[], bool], timeout: float = GENEROUS_S) -> bool:
    """``eventually`` for a coroutine: the event loop keeps running (tasks, servers on it) while it polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
