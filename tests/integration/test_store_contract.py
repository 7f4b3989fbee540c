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
