"""The keyed search index, written by the service after it records an assignment and restored
from the service's own search topic when Redis comes back empty: digests only, never a value,
and none on the output topic that every subscriber reads."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import redis
from confluent_kafka import Message

from customer_ids.adapters.log_reader import read_to_end
from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.adapters.search_index import SearchIndex
from customer_ids.domain.events import CustomerCreated
from customer_ids.domain.search_terms import event_terms, normalise_email, search_digest
from customer_ids.store.ports import Terms
from customer_ids.wire.headers import ASSIGNMENT_HEADER
from tests.helpers.events import make_events, send
from tests.helpers.own_redis import OwnRedis
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import assert_invariants, wait_for_outputs

KEY = "search-key-for-tests-0123456789abcdef"


def same_email(events: list[CustomerCreated], event: CustomerCreated) -> set[str]:
    """Generated emails may repeat across customers: all of them are found."""
    return {e.customer_key for e in events if e.email == event.email}


def found_by_email(index: SearchIndex, event: CustomerCreated) -> set[str]:
    assert event.email is not None
    address = normalise_email(event.email.upper().center(len(event.email) + 4))
    assert address is not None
    return index.find([search_digest(KEY.encode(), "email", address)])


def test_the_service_indexes_new_customers_and_a_rebuild_restores_the_index(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], own_redis: OwnRedis
) -> None:
    events = make_events(300, duplicates=0.1, seed=1501)
    send(scenario.create_topics(), events)
    start_service(REDIS_URL=own_redis.url, CUSTOMER_IDS_SEARCH_KEY=KEY)
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(events))
    client = redis.Redis.from_url(own_redis.url)
    index = SearchIndex(client, RedisKeys(scenario.redis_prefix))
    customers = list({e.customer_key: e for e in events}.values())
    assert all(found_by_email(index, e) == same_email(events, e) for e in customers)

    # A returning customer with another email is found under both: a later event adds to
    # what a customer is found under, whichever of its records compaction keeps.
    moved = [
        replace(e, event_id=str(uuid.uuid4()), email=f"new-{i}@example.org")
        for i, e in enumerate(customers[:20])
    ]
    send(scenario, moved)
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(events) + 20)
    everyone = events + moved
    assert all(found_by_email(index, e) == same_email(everyone, e) for e in customers[:20])
    assert all(found_by_email(index, e) == same_email(everyone, e) for e in moved)

    # Only digests: no email, phone or name anywhere in Redis.
    sets = client.keys(f"{scenario.redis_prefix}search:*")
    members = [str(m) for key in sets for m in client.smembers(key)]
    stored = " ".join(str(k) for k in client.keys("*")) + " ".join(members)
    assert "@" not in stored and "+49" not in stored
    # No digest on any output a subscriber reads (they could link customers by it); all of a
    # customer's digests in the service's own search topic, one record per change.
    assert not output_headers_beyond_ids(scenario)
    latest = search_topic_records(scenario)
    for event in customers:
        wanted = {
            d
            for e in everyone
            if e.customer_key == event.customer_key
            for d in event_terms(KEY.encode(), e)
        }
        assert set(latest.get(event.customer_key, [])) == wanted

    own_redis.restart_empty()  # Redis forgets everything
    late = make_events(1, seed=1502)
    send(scenario, late)  # the next batch finds the epoch gone and rebuilds from Kafka
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(everyone) + 1, timeout=240
    )
    assert_invariants(everyone + late, committed)
    client = redis.Redis.from_url(own_redis.url)
    index = SearchIndex(client, RedisKeys(scenario.redis_prefix))
    assert all(found_by_email(index, e) == same_email(everyone, e) for e in customers)
    assert all(found_by_email(index, e) == same_email(everyone, e) for e in moved)


def output_headers_beyond_ids(scenario: Scenario) -> list[str]:
    """Header names on the output topic other than the causation id and the assignment."""
    extra: list[str] = []

    def on_output(message: Message) -> None:
        pairs: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        extra.extend(k for k, _ in pairs if k not in ("causation_id", ASSIGNMENT_HEADER))

    read_to_end(scenario.endpoints.bootstrap, scenario.output_topic, on_output)
    return extra


def search_topic_records(scenario: Scenario) -> dict[str, list[str]]:
    """The last record per customer of the service's search topic (None: a tombstone)."""
    latest: dict[str, list[str]] = {}

    def on_record(message: Message) -> None:
        value = message.value()
        digests = sorted(Terms.decode(value.decode()).digests) if value else []
        latest[(message.key() or b"").decode()] = digests

    read_to_end(scenario.endpoints.bootstrap, scenario.search_topic, on_record)
    return latest
