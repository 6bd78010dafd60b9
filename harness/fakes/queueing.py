"""A fake Ollama host with a real host's capacity: at most ``max_concurrency`` generations at once, the rest queue.

A model server has a fixed number of slots (Ollama's ``OLLAMA_NUM_PARALLEL``, llama.cpp's ``--parallel``); requests
beyond that wait in its queue, first come first served. Latency scripted by a ``Reply`` is the *service* time and
starts when a slot frees up, so queueing shows in what the client measures, as it does on a real host. A client that
goes away while queued leaves the queue without being served, and one that goes away while served frees its slot
at once (servers that notice the disconnect stop generating), both counted in ``disconnects``.

``busy_s`` sums the time slots were held, so a bench can check the busy share the dispatcher reports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from harness.fakes.ollama import FakeOllama
from harness.fakes.script import Script
from harness.fakes.server import Call


class QueueingOllama(FakeOllama):
    """``FakeOllama`` with ``max_concurrency`` slots and a FIFO queue in front of them.

    Args:
        script: generation behaviour; a reply's latency is its service time once it holds a slot.
        max_concurrency: generations served at once.
        models, name: as for ``FakeOllama``.
    """

    def __init__(
        self,
        script: Script = None,
        *,
        max_concurrency: int = 1,
        models: Sequence[str] = ("llama3.2:latest",),
        name: str | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        super().__init__(script, models=models, name=name)
        self.max_concurrency = max_concurrency
        self._slots: asyncio.Semaphore | None = None  # made on the server's loop
        self.queued = 0
        self.max_queued = 0
        self.busy_s = 0.0

    async def serve_generation(self, call: Call, *, stream: bool) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrency)
        slots = self._slots
        self.queued += 1
        self.max_queued = max(self.max_queued, self.queued)
        try:
            got_slot = await self._wait_for_slot(call, slots)
        finally:
            self.queued -= 1
        if not got_slot:
            self.generations += 1
            self.disconnects += 1
            return
        held = time.perf_counter()
        try:
            await super().serve_generation(call, stream=stream)
        finally:
            slots.release()
            self.busy_s += time.perf_counter() - held

    async def _wait_for_slot(self, call: Call, slots: asyncio.Semaphore) -> bool:
        """Take a slot, unless the client disconnects first (then False)."""
        if not slots.locked():
            await slots.acquire()
            return True
        acquire: asyncio.Task[Any] = asyncio.ensure_future(slots.acquire())
        gone: asyncio.Task[Any] = asyncio.ensure_future(self._until_disconnect(call.receive))
        done, _ = await asyncio.wait({acquire, gone}, return_when=asyncio.FIRST_COMPLETED)
        if acquire in done:
            gone.cancel()
            return True
        acquire.cancel()
        try:
            await acquire
        except asyncio.CancelledError:
            return False
        slots.release()  # it got the slot in the same instant the client left
        return False

    def reset_counters(self) -> None:
        super().reset_counters()
        self.max_queued = self.queued
        self.busy_s = 0.0
