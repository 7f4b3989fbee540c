"""The search digests' store (customer_ids/store/terms.py) against its in-memory fake, one
contract: a retried batch gets its search record again, an erasure is never undone by an event
sent before it (whichever instance or retry brings it), what a customer sent after its erasure
stays, and a recovery re-applies every erasure to a Redis put back to before it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.adapters.search_index import SearchIndex
from customer_ids.store.factory import number_store
from customer_ids.store.ports import Forgotten, StateChangedError, TermsStore, TermsUpdate
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
    assert terms.update("e1", {"crm/a": TermsUpdate({"d1": 100})}) == {"crm/a": "d1@100"}
    # The batch aborted after Redis took it; its retry must write the search record again.
    assert terms.update("e1", {"crm/a": TermsUpdate({"d1": 100})}) == {"crm/a": "d1@100"}
    # A later event with another email adds to it; the same email again moves its time.
    later = terms.update("e1", {"crm/a": TermsUpdate({"d2": 200, "d1": 300})})
    assert later == {"crm/a": "d1@300,d2@200"}


def test_an_erasure_covers_what_was_sent_before_it_and_only_that(terms: TermsStore) -> None:
    terms.update("e1", {"crm/a": TermsUpdate({"d1": 100, "d2": 100})})
    assert terms.forget("e1", "crm/a", 500) == Forgotten(2, None)
    # A creation sent before the erasure, handled after it (another partition, a retry).
    assert terms.update("e1", {"crm/a": TermsUpdate({"d1": 400})}) == {}
    assert terms.forget("e1", "crm/a", 500) == Forgotten(0, None)  # again: changes nothing
    # The customer comes back after its erasure with another email: that is found.
    assert terms.update("e1", {"crm/a": TermsUpdate({"d3": 600, "d1": 450})}) == {"crm/a": "d3@600"}
    # An erasure sent between the old and the new data removes the old only.
    terms.update("e1", {"crm/b": TermsUpdate({"d4": 100})})
    terms.update("e1", {"crm/b": TermsUpdate({"d5": 900})})
    assert terms.forget("e1", "crm/b", 500) == Forgotten(1, "d5@900")


def test_a_stale_state_cannot_write(terms: TermsStore) -> None:
    with pytest.raises(StateChangedError):
        terms.update("e0", {"crm/a": TermsUpdate({"d1": 100})})
    with pytest.raises(StateChangedError):
        terms.forget("e0", "crm/a", 100)


def test_a_recovery_applies_every_erasure_to_an_older_redis(endpoints: Endpoints) -> None:
    client = redis.Redis.from_url(endpoints.redis_url)
    keys = RedisKeys(f"t-{uuid.uuid4().hex[:8]}:")
    number_store(client, keys.prefix).mark_valid_for_tests("e1")
    terms = RedisTermsStore(client, keys)
    # What a Redis snapshot from before the erasures holds.
    terms.update(
        "e1",
        {"crm/a": TermsUpdate({"d1": 100}), "crm/b": TermsUpdate({"d2": 100, "d3": 900})},
    )
    cleared = terms.apply_erasures({"crm/a": 500, "crm/b": 500})
    assert cleared == 2
    index = SearchIndex(client, keys)
    assert index.find(["d1"]) == set()
    assert index.find(["d2"]) == set()
    assert index.find(["d3"]) == {"crm/b"}  # sent after crm/b's erasure: kept
    assert terms.update(None, {"crm/a": TermsUpdate({"d1": 300})}) == {}  # remembered
