"""One contract, two stores: the in-memory fake the unit tests use and the Redis store must
refuse the same things the same way, or unit tests pass over paths production takes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from customer_ids.store.factory import number_store
from customer_ids.store.ports import (
    AllocationConflictError,
    NumberStore,
    StateChangedError,
    StoredAssignment,
)
from customer_ids.store.redis_store import RedisNumberStore
from tests.helpers.services import Endpoints
from tests.unit.fakes import FakeStore


@pytest.fixture(params=["fake", "redis"])
def store(request: pytest.FixtureRequest, endpoints: Endpoints) -> Iterator[NumberStore]:
    if request.param == "fake":
        yield FakeStore("e1")
        return
    real = number_store(redis.Redis.from_url(endpoints.redis_url), f"t-{uuid.uuid4().hex[:8]}:")
    real.mark_valid_for_tests("e1")
    yield real


def one(number: int) -> StoredAssignment:
    return StoredAssignment("CU", number, f"CU-{number}")


def test_a_fresh_allocation_is_recorded(store: NumberStore) -> None:
    store.allocate("e1", {"CU": (0, 0, 2)}, {"crm/a": one(1), "crm/b": one(2)})
    assert store.counters(["CU"]) == {"CU": 2}
    assert store.lookup(["crm/a", "crm/b", "crm/c"]) == {"crm/a": one(1), "crm/b": one(2)}


def test_another_epoch_is_refused_and_nothing_changes(store: NumberStore) -> None:
    with pytest.raises(StateChangedError):
        store.allocate("e0", {"CU": (0, 0, 1)}, {"crm/a": one(1)})
    assert store.counters(["CU"]) == {"CU": 0} and store.lookup(["crm/a"]) == {}


def test_a_counter_that_moved_is_refused_and_nothing_changes(store: NumberStore) -> None:
    store.allocate("e1", {"CU": (0, 0, 1)}, {"crm/a": one(1)})
    with pytest.raises(AllocationConflictError):
        store.allocate("e1", {"CU": (0, 0, 1)}, {"crm/b": one(1)})
    assert store.counters(["CU"]) == {"CU": 1} and store.lookup(["crm/b"]) == {}


def test_a_customer_recorded_meanwhile_is_a_clash(store: NumberStore) -> None:
    store.allocate("e1", {"CU": (0, 0, 1)}, {"crm/a": one(1)})
    with pytest.raises(AllocationConflictError):
        store.allocate("e1", {"CU": (1, 0, 1)}, {"crm/a": one(2)})
    assert store.lookup(["crm/a"]) == {"crm/a": one(1)}, "the first number stays"


def test_a_clash_writes_no_reverse_entry_for_the_clashing_number(endpoints: Endpoints) -> None:
    # Before: the reverse index got number -> customer even when that customer's entry clashed,
    # so /v1/numbers could name an owner for a number never issued to it.
    client = redis.Redis.from_url(endpoints.redis_url)
    real = number_store(client, f"t-{uuid.uuid4().hex[:8]}:", reverse_index=True)
    real.mark_valid_for_tests("e1")
    real.allocate("e1", {"CU": (0, 0, 1)}, {"crm/a": one(1)})
    with pytest.raises(AllocationConflictError):
        real.allocate("e1", {"CU": (1, 0, 1)}, {"crm/a": one(2)})
    assert real.customer_of("CU-1") == "crm/a"
    assert real.customer_of("CU-2") is None


@pytest.fixture
def redis_store(endpoints: Endpoints) -> RedisNumberStore:
    real = number_store(redis.Redis.from_url(endpoints.redis_url), f"t-{uuid.uuid4().hex[:8]}:")
    real.mark_valid_for_tests("e1")
    real.allocate("e1", {"CU": (0, 0, 2)}, {"crm/s": one(1), "crm/m": one(2)})
    return real


def test_a_merge_step_is_a_compare_and_set_and_moves_the_generation(
    redis_store: RedisNumberStore,
) -> None:
    merged = one(2).merged("crm/s", one(1))
    assert redis_store.merge_generation() == 0
    assert redis_store.apply_merges("e1", 0, {"crm/m": (one(2), merged)}, []) == 1
    assert redis_store.lookup(["crm/m"]) == {"crm/m": merged}
    # A view read before that step (a holder that lost its lock while paused) writes nothing.
    with pytest.raises(AllocationConflictError, match="MERGES moved"):
        redis_store.apply_merges("e1", 0, {"crm/m": (merged, one(2))}, [])
    # A customer that changed since it was read is refused too.
    with pytest.raises(AllocationConflictError, match="MERGES moved"):
        redis_store.apply_merges("e1", 1, {"crm/m": (one(2), one(2))}, [])
    # No customer comes into being by a merge: the ledger's counts stay true.
    with pytest.raises(StateChangedError, match="LEDGER"):
        redis_store.apply_merges("e1", 1, {"crm/x": (one(9), one(9))}, [])
    assert redis_store.lookup(["crm/m", "crm/x"]) == {"crm/m": merged}


def test_a_batch_that_read_before_a_merge_is_refused_at_its_fence(
    redis_store: RedisNumberStore,
) -> None:
    read_at = redis_store.merge_generation()
    redis_store.fence("e1", {}, read_at)  # nothing merged meanwhile: it may commit
    redis_store.apply_merges("e1", read_at, {}, [])
    with pytest.raises(AllocationConflictError, match="MERGES moved"):
        redis_store.fence("e1", {}, read_at)
    redis_store.fence("e1", {}, read_at + 1)
