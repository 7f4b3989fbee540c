"""The keyed search index, written by the service in the step that records an assignment and
restored with everything else when Redis comes back empty: digests only, never a value."""

from __future__ import annotations

from collections.abc import Callable

import redis
from confluent_kafka import Message

from customer_ids.adapters.log_reader import read_to_end
from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.adapters.search_index import SearchIndex
from customer_ids.domain.events import CustomerCreated
from customer_ids.domain.search_terms import event_terms, normalise_email, search_digest
from customer_ids.wire.headers import SEARCH_HEADER
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
    customers = {e.customer_key: e for e in events}.values()
    assert all(found_by_email(index, e) == same_email(events, e) for e in customers)

    # Only digests: no email, phone or name anywhere in Redis or on the output topic.
    sets = client.keys(f"{scenario.redis_prefix}search:*")
    members = [str(m) for key in sets for m in client.smembers(key)]
    stored = " ".join(str(k) for k in client.keys("*")) + " ".join(members)
    assert "@" not in stored and "+49" not in stored
    headers: list[bytes] = []

    def on_output(message: Message) -> None:
        pairs: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        headers.extend(v for k, v in pairs if k == SEARCH_HEADER)

    read_to_end(scenario.endpoints.bootstrap, scenario.output_topic, on_output)
    assert len(headers) == len(events)  # on every output, repeats too (compaction keeps one)
    assert all(b"@" not in h and b"+" not in h for h in headers)
    expected = {d for e in customers for d in event_terms(KEY.encode(), e)}
    assert {d for h in headers for d in h.decode().split(",")} == expected

    own_redis.restart_empty()  # Redis forgets everything
    late = make_events(1, seed=1502)
    send(scenario, late)  # the next batch finds the epoch gone and rebuilds from Kafka
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events) + 1, timeout=240
    )
    assert_invariants(events + late, committed)
    client = redis.Redis.from_url(own_redis.url)
    index = SearchIndex(client, RedisKeys(scenario.redis_prefix))
    assert all(found_by_email(index, e) == same_email(events, e) for e in customers)
