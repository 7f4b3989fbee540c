"""The right to erasure (issue 25): `customer-ids forget` removes a customer from the search
index for good (a Redis put back to before the erasure included), hides its dead letters, and
keeps its number retired: never issued to anyone else, still its own if it comes back."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace

import redis

from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.adapters.search_index import SearchIndex
from tests.helpers.events import make_events, send
from tests.helpers.load import log_events
from tests.helpers.own_redis import OwnRedis
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import assert_invariants, wait_for_outputs
from tests.integration.test_search_index import (
    KEY,
    found_by_email,
    output_headers_beyond_ids,
    search_topic_records,
)


def cli(scenario: Scenario, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", *args],
        env=scenario.env(CUSTOMER_IDS_CONNECT_TIMEOUT_S="30"),
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def test_forgotten_customers_are_not_found_and_their_numbers_are_never_reissued(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], own_redis: OwnRedis
) -> None:
    events = make_events(300, seed=2501)
    customers = list({e.customer_key: e for e in events}.values())
    with_email = [e for e in customers if e.email]
    forgotten, kept = with_email[:30], with_email[30:]
    # A record of a forgotten customer that was dead-lettered: its raw bytes hold its data.
    bad = replace(forgotten[0], event_id=str(uuid.uuid4()), country_code="X1")
    send(scenario.create_topics(), [*events, bad])
    start_service(REDIS_URL=own_redis.url, CUSTOMER_IDS_SEARCH_KEY=KEY)
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        len(events),
        dlq_topic=scenario.dlq_topic,
        dead_letters=1,
    )
    numbers = committed.numbers_by_customer()
    index = SearchIndex(redis.Redis.from_url(own_redis.url), RedisKeys(scenario.redis_prefix))
    assert all(e.customer_key in found_by_email(index, e) for e in forgotten)
    before_erasure = own_redis.snapshot()

    keys = [e.customer_key for e in forgotten]
    done = cli(scenario, "forget", "--by", "ticket-4711", *keys)
    assert done.returncode == 0, done.stderr
    assert "applied by the service" in done.stderr
    again = cli(scenario, "forget", keys[0])  # a second erasure succeeds, changes nothing
    assert again.returncode == 0, again.stderr

    assert not any(e.customer_key in found_by_email(index, e) for e in forgotten)
    assert all(e.customer_key in found_by_email(index, e) for e in kept)
    latest = search_topic_records(scenario)
    assert all(latest[k] == [] for k in keys)  # a tombstone: compaction drops the digests
    assert not output_headers_beyond_ids(scenario)  # subscribers never had them
    listed = cli(scenario, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == ""  # the dead letter of a forgotten customer is left out
    assert "1 dead letter(s) of erased customers left out" in listed.stderr

    # Redis put back to before the erasure: the recovery replays the search topic's tombstones.
    own_redis.restart_from(before_erasure)
    returning = replace(forgotten[1], event_id=str(uuid.uuid4()), email=None, phone=None)
    late = make_events(20, seed=2502)
    send(scenario, [returning, *late])
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events) + 21, timeout=240
    )
    assert_invariants([*events, returning, *late], committed)  # no erased number reissued
    assert (
        committed.numbers_by_customer()[returning.customer_key] == numbers[returning.customer_key]
    )
    index = SearchIndex(redis.Redis.from_url(own_redis.url), RedisKeys(scenario.redis_prefix))
    assert not any(e.customer_key in found_by_email(index, e) for e in forgotten)
    assert all(e.customer_key in found_by_email(index, e) for e in kept)


def test_forget_names_a_wrong_customer_and_a_service_that_does_not_apply_it(
    scenario: Scenario,
) -> None:
    scenario.create_topics()
    wrong = cli(scenario, "forget", "no-slash")
    assert wrong.returncode == 2
    assert "SOURCE_SYSTEM/CUSTOMER_ID" in wrong.stderr
    # No service runs: the request is recorded, and the command says it was not applied.
    waited = cli(scenario, "forget", "--timeout", "3", "crm/1")
    assert waited.returncode == 69, waited.stderr
    assert "erasure of crm/1 recorded" in waited.stderr
    assert "has not applied them" in waited.stderr


def test_a_topic_that_keeps_superseded_records_forever_is_reported_at_start_up(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    # Made by someone else before the service: compacted, but with Kafka's default lag (never).
    compacted = {"partitions": 3, "replication": -1, "config": {"cleanup.policy": "compact"}}
    ensure_topics(scenario.endpoints.bootstrap, {scenario.output_topic: compacted})
    service = start_service()
    service.wait_for_log("topic_lifetime_unbounded", timeout=120)
    line = next(e for e in log_events(service.log(), "topic_lifetime_unbounded"))
    problem = str(line["problem"])
    assert f"topic {scenario.output_topic} has max.compaction.lag.ms" in problem
    assert "--add-config max.compaction.lag.ms=604800000" in problem
