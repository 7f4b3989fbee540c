"""The search digests' store (customer_ids/store/terms.py) against its in-memory fake, one
contract: a retried batch gets its search record again, an erasure is never undone by an older
event (whichever instance or retry brings it), a customer who comes back after its erasure is
found again, and a recovery re-applies every erasure to a Redis put back to before it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.adapters.search_index import SearchIndex
from customer_ids.store.factory import number_store
from customer_ids.store.ports import Forgotten, TermsStore, TermsUpdate
from customer_ids.store.terms import RedisTermsStore
from tests.helpers.services import Endpoints
from tests.unit.fakes import FakeStore, FakeTerms


@pytest.fixture(params=["fake", "redis"])
def terms(request: pytest.FixtureRequest, endpoints: Endpoints) -> Iterator[TermsStore]:
    if request.param == "fake":
        yield FakeTerms(FakeStore("e1"))
        return
    client = redis.Redis.from_url(endpoints.redis_url)
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    number_store(client, prefix).mark_valid_for_tests("e1")
    yield RedisTermsStore(client, RedisKeys(prefix))


def test_every_attempt_gets_the_full_value_a_retry_included(terms: TermsStore) -> None:
    first = terms.update("e1", {"crm/a": TermsUpdate(100, ["d1"])})
    assert first == {"crm/a": "100|d1"}
    # The batch aborted after Redis took it; its retry must write the search record again.
    assert terms.update("e1", {"crm/a": TermsUpdate(100, ["d1"])}) == {"crm/a": "100|d1"}
    # A later event with another email adds to it.
    assert terms.update("e1", {"crm/a": TermsUpdate(200, ["d2"])}) == {"crm/a": "200|d1,d2"}


def test_an_erasure_is_never_undone_by_an_older_event(terms: TermsStore) -> None:
    terms.update("e1", {"crm/a": TermsUpdate(100, ["d1", "d2"])})
    assert terms.forget("e1", "crm/a", 500) == Forgotten(2, True)
    # A creation sent before the erasure, handled after it (another partition, a retry).
    assert terms.update("e1", {"crm/a": TermsUpdate(400, ["d1"])}) == {}
    assert terms.forget("e1", "crm/a", 500) == Forgotten(0, True)  # again: changes nothing
    # The customer comes back after its erasure: new data, found again.
    assert terms.update("e1", {"crm/a": TermsUpdate(600, ["d3"])}) == {"crm/a": "600|d3"}
    # An erasure older than that data leaves it (and writes no tombstone over it).
    assert terms.forget("e1", "crm/a", 550) == Forgotten(0, False)


def test_a_stale_state_cannot_write(terms: TermsStore) -> None:
    with pytest.raises(Exception, match="state"):
        terms.update("e0", {"crm/a": TermsUpdate(100, ["d1"])})


def test_a_recovery_applies_every_erasure_to_an_older_redis(endpoints: Endpoints) -> None:
    client = redis.Redis.from_url(endpoints.redis_url)
    keys = RedisKeys(f"t-{uuid.uuid4().hex[:8]}:")
    number_store(client, keys.prefix).mark_valid_for_tests("e1")
    terms = RedisTermsStore(client, keys)
    # What a Redis snapshot from before the erasures holds.
    terms.update("e1", {"crm/a": TermsUpdate(100, ["d1"]), "crm/b": TermsUpdate(900, ["d2"])})
    cleared = terms.apply_erasures({"crm/a": 500, "crm/b": 500})
    assert cleared == 1  # crm/b came back after its erasure: kept
    index = SearchIndex(client, keys)
    assert index.find(["d1"]) == set()
    assert index.find(["d2"]) == {"crm/b"}
    assert terms.update(None, {"crm/a": TermsUpdate(300, ["d1"])}) == {}  # remembered
