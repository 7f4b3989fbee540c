"""Several processes allocating over overlapping customers on the real Redis: no customer with
two numbers, no number twice, no gaps; and without the lock, the compare-and-set has to refuse
racing steps, which is the work the lock saves."""

from __future__ import annotations

import multiprocessing
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from consumer.assign import Assigned, assign_numbers
from customer_ids.config.settings import Settings
from customer_ids.store.factory import number_store
from customer_ids.store.ports import AllocationConflictError
from customer_ids.store.redis_store import RedisNumberStore
from producer.generator import generate_events
from tests.helpers.services import Endpoints


class UnlockedAllocator(RedisNumberStore):
    """The same allocator with the lock taken away, to show what the lock prevents."""

    @contextmanager
    def locked(self, sequence_names: Any) -> Iterator[Any]:
        yield None


CUSTOMERS = 1500
BATCH = 15


def worker(redis_url: str, prefix: str, seed: int, use_lock: bool, out: Any, start: Any) -> None:
    client = redis.Redis.from_url(redis_url)
    allocator = number_store(client, prefix, lease_s=10, lock_wait_s=30)
    if not use_lock:
        allocator = UnlockedAllocator(client, allocator.keys, allocator.leases, 30)
    events = list(generate_events(CUSTOMERS, seed=1))  # the same customers everywhere...
    rng = random.Random(seed)
    rng.shuffle(events)  # ...in a different order
    router = Settings().router
    conflicts = 0
    result: dict[str, str] = {}
    start.wait()  # every process begins at once, so they really race
    for i in range(0, len(events), BATCH):
        batch = [(e, router.route(e)) for e in events[i : i + BATCH]]
        while True:
            try:
                numbers = assign_numbers(batch, allocator, "e1")
                break
            except AllocationConflictError:
                conflicts += 1  # the service aborts and retries the batch the same way
        assert all(isinstance(o, Assigned) for o in numbers.outcomes), "no record failed"
        for item in numbers.assigned:
            result[item.event.customer_key] = item.assignment.number
    out.put((result, conflicts))


def run_workers(
    endpoints: Endpoints, use_lock: bool, processes: int = 4
) -> tuple[list[dict[str, str]], int]:
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    number_store(redis.Redis.from_url(endpoints.redis_url), prefix).mark_valid_for_tests("e1")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start = ctx.Barrier(processes)
    procs = [
        ctx.Process(target=worker, args=(endpoints.redis_url, prefix, s, use_lock, queue, start))
        for s in range(processes)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return [r for r, _ in results], sum(c for _, c in results)


def test_concurrent_allocators_agree_with_no_duplicates_and_no_gaps(endpoints: Endpoints) -> None:
    results, conflicts = run_workers(endpoints, use_lock=True)
    first = results[0]
    assert len(first) == CUSTOMERS
    for other in results[1:]:
        assert other == first, "every process must see the same number for each customer"
    numbers = sorted(int(n.split("-")[1]) for n in first.values())
    assert numbers == list(range(1, CUSTOMERS + 1)), "distinct and gapless"
    assert conflicts == 0, "under the lock no allocation step is ever refused"


def test_without_the_lock_numbers_stay_unique_but_racing_steps_are_refused(
    endpoints: Endpoints,
) -> None:
    results, conflicts = run_workers(endpoints, use_lock=False)
    first = results[0]
    for other in results[1:]:
        assert other == first
    numbers = sorted(int(n.split("-")[1]) for n in first.values())
    assert len(set(numbers)) == CUSTOMERS == len(numbers)
    assert conflicts > 0, "racing processes collide on the counter without the lock"
