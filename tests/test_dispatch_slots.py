"""The fleet's slot pool: per-host limits, one first-come-first-served queue, and waiters bound to one host or many."""

from __future__ import annotations

import asyncio
import random

from harness.dispatch.slots import SlotPool


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_takes_the_first_host_in_order_with_a_slot_free() -> None:
    pool = SlotPool({"a": 1, "b": 2})
    assert await pool.take(["a", "b"]) == "a"
    assert await pool.take(["a", "b"]) == "b"
    assert await pool.take(["b", "a"]) == "b"
    assert (pool.free("a"), pool.free("b")) == (0, 0)
    waiting = asyncio.create_task(pool.take(["a", "b"]))
    await _settle()
    assert not waiting.done() and pool.unbound_waiting == 1


async def test_a_freed_slot_goes_to_the_oldest_waiter_that_accepts_its_host() -> None:
    pool = SlotPool({"a": 1, "b": 1})
    await pool.take(["a"])
    await pool.take(["b"])
    only_a = asyncio.create_task(pool.take(["a"]))
    await _settle()
    either = asyncio.create_task(pool.take(["a", "b"]))
    await _settle()
    only_b = asyncio.create_task(pool.take(["b"]))
    await _settle()
    assert pool.unbound_waiting == 1

    pool.give_back("b")  # only_a cannot use b: the next oldest, either, gets it, ahead of only_b
    await _settle()
    assert either.done() and either.result() == "b"
    assert not only_a.done() and not only_b.done()

    pool.give_back("a")
    pool.give_back("b")
    await _settle()
    assert (only_a.result(), only_b.result()) == ("a", "b")
    assert (pool.free("a"), pool.free("b"), pool.unbound_waiting) == (0, 0, 0)


async def test_a_cancelled_waiter_holds_nothing() -> None:
    pool = SlotPool({"a": 1})
    await pool.take(["a"])
    waiter = asyncio.create_task(pool.take(["a"]))
    await _settle()
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    pool.give_back("a")
    assert pool.free("a") == 1


async def test_a_slot_granted_to_a_waiter_cancelled_in_the_same_tick_passes_on() -> None:
    pool = SlotPool({"a": 1})
    await pool.take(["a"])
    first = asyncio.create_task(pool.take(["a"]))
    second = asyncio.create_task(pool.take(["a"]))
    await _settle()
    pool.give_back("a")  # granted to first ...
    first.cancel()  # ... which is cancelled before it runs again
    await asyncio.gather(first, return_exceptions=True)
    await _settle()
    assert first.cancelled()
    assert second.done() and second.result() == "a"
    assert pool.free("a") == 0


async def test_a_slot_freed_in_the_tick_its_waiter_is_cancelled_passes_over_it() -> None:
    """Cancelling a waiting task cancels its future at once, but the task leaves the queue only when it runs again;
    a slot given back in between goes to the next waiter (or is free), not to the leaving one."""
    pool = SlotPool({"a": 1})
    await pool.take(["a"])
    leaving = asyncio.create_task(pool.take(["a"]))
    staying = asyncio.create_task(pool.take(["a"]))
    await _settle()
    leaving.cancel()
    pool.give_back("a")
    await asyncio.gather(leaving, return_exceptions=True)
    await _settle()
    assert leaving.cancelled() and staying.result() == "a"
    pool.give_back("a")
    assert pool.free("a") == 1


async def test_random_traffic_keeps_the_slots_and_the_queue_order() -> None:
    """Random takes, gives back and cancellations against a plain model of the pool: every slot is either free or
    held, a free slot never sits beside a waiter that accepts it, and each freed slot goes to the oldest such waiter."""
    rng = random.Random(7)
    capacity = {"a": 2, "b": 1, "c": 3}
    pool = SlotPool(capacity)
    held: list[str] = []  # hosts of slots held by finished takes
    waiting: list[tuple[frozenset[str], asyncio.Task[str]]] = []  # oldest first

    async def give_back(host: str, waiting: list[tuple[frozenset[str], asyncio.Task[str]]]) -> list[
        tuple[frozenset[str], asyncio.Task[str]]
    ]:
        expected = next((task for accepts, task in waiting if host in accepts), None)
        pool.give_back(host)
        await _settle()
        if expected is None:
            return waiting
        assert expected.done() and expected.result() == host
        held.append(host)
        return [(accepts, task) for accepts, task in waiting if task is not expected]

    for _ in range(3000):
        roll = rng.random()
        if roll < 0.45:
            hosts = rng.sample(sorted(capacity), rng.randint(1, 3))
            first_free = next((h for h in hosts if pool.free(h) > 0), None)
            task = asyncio.create_task(pool.take(hosts))
            await _settle()
            if task.done():
                assert task.result() == first_free
                held.append(task.result())
            else:
                assert all(pool.free(h) == 0 for h in hosts)
                waiting.append((frozenset(hosts), task))
        elif roll < 0.9 and held:
            waiting = await give_back(held.pop(rng.randrange(len(held))), waiting)
        elif waiting:
            _, task = waiting.pop(rng.randrange(len(waiting)))
            task.cancel()
            if held and rng.random() < 0.5:  # a slot freed in the same tick, before the cancelled task runs again
                waiting = await give_back(held.pop(rng.randrange(len(held))), waiting)
            await asyncio.gather(task, return_exceptions=True)
        for host, slots in capacity.items():
            assert pool.free(host) + held.count(host) == slots
            if pool.free(host):
                assert not any(host in accepts for accepts, _ in waiting)
    assert pool.unbound_waiting == sum(1 for accepts, _ in waiting if len(accepts) > 1)
    for _, task in waiting:
        task.cancel()
    await asyncio.gather(*(task for _, task in waiting), return_exceptions=True)
