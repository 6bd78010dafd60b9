"""The fleet's request slots: each host serves ``max_concurrency`` requests at once, and one queue waits for them all.

A request bound to one host waits for that host alone, as it would behind a per-host semaphore. A request that may go
to any of several hosts (``auto``'s first request: late binding) takes the first slot that frees on any of them.
Pooling the queue this way is what a single M/G/k queue has over k separate ones: no call waits behind a straggler at
one host while a slot stands free at another. Waiters are served first come, first served: a freed slot goes to the
oldest waiter that accepts its host.

Invariant: a host with a free slot has no waiter that accepts it (a freed slot is handed on before it is counted
free). So a request that finds a free slot may take it at once without jumping the queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(eq=False)
class _Waiter:
    hosts: frozenset[str]
    granted: asyncio.Future[str]


class SlotPool:
    """Free slots per host and the fleet-wide queue of requests waiting for one.

    Args:
        capacity: host name -> its ``max_concurrency``.
    """

    def __init__(self, capacity: dict[str, int]) -> None:
        self._free = dict(capacity)
        self._waiters: deque[_Waiter] = deque()

    def free(self, host: str) -> int:
        """Slots of ``host`` nobody holds."""
        return self._free[host]

    @property
    def unbound_waiting(self) -> int:
        """Requests waiting for a slot on any of several hosts (they count at no single host until one is found)."""
        return sum(1 for w in self._waiters if len(w.hosts) > 1 and not w.granted.done())

    async def take(self, hosts: Sequence[str]) -> str:
        """Hold a slot on one of ``hosts``: the first of them, in the order given, with a slot free now; else wait in
        the queue for the first slot freed on any of them. Returns the host; give the slot back with :meth:`give_back`.
        Cancelled while waiting, it holds nothing."""
        for host in hosts:
            if self._free[host] > 0:
                self._free[host] -= 1
                return host
        waiter = _Waiter(frozenset(hosts), asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.cancelled():
                self._waiters.remove(waiter)  # still queued: give_back passes over a cancelled waiter, never drops it
            else:
                self.give_back(waiter.granted.result())  # granted and cancelled in the same tick: pass the slot on
            raise

    def give_back(self, host: str) -> None:
        """Release a slot of ``host``: to the oldest waiter that accepts it, else back to the free count.

        A waiter whose task was cancelled has its future cancelled at once, but leaves the queue only when the task
        runs again; until then it is passed over.
        """
        for waiter in self._waiters:
            if host in waiter.hosts and not waiter.granted.done():
                self._waiters.remove(waiter)
                waiter.granted.set_result(host)
                return
        self._free[host] += 1
