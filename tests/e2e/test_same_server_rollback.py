"""Redis put back on the same server under several instances (issue 20): keys restored, deleted,
a counter lost, while the instance with the oldest view allocates first. Same run_id, replid
and epoch: only the Kafka log can show what Redis forgot.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from tests.e2e.test_redis_back_in_time import committed_count, instance, report
from tests.helpers.events import make_events, send
from tests.helpers.load import (
    _stamp,
    first_commit_after,
    log_events,
    recovered_after,
    returning,
    send_slowly,
    sized,
)
from tests.helpers.own_redis import OwnRedis
from tests.helpers.rollback import capture, delete_keys, put_back
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import assert_invariants, wait_for_outputs


def more_outputs(scenario: Scenario, count: int) -> None:
    committed = committed_count(scenario)
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, committed + count)


@pytest.mark.parametrize("instances", [2, 3])
def test_the_stalest_instance_allocating_first_after_redis_was_put_back(
    instances: int,
    scenario: Scenario,
    own_redis: OwnRedis,
    start_service: Callable[..., ServiceProcess],
) -> None:
    """Every instance but the first is paused (its floors go stale), Redis is captured, the
    first commits thousands more, pauses too, Redis is put back to the capture on the same
    server, and the stale instances are woken first. The old code handed the first one's
    numbers out again (1,047 shared numbers in the report)."""
    events = make_events(sized(4000, 30000), duplicates=0.1, seed=2001 + instances)
    scenario.create_topics()
    sender = send_slowly(scenario, events, seconds=sized(14, 40))
    names = "abc"[:instances]
    running = [instance(start_service, scenario, own_redis, n) for n in names]
    first, stale = running[0], running[1:]
    more_outputs(scenario, sized(300, 2000))
    for service in stale:
        service.pause()
    client = redis.Redis.from_url(own_redis.url)
    kept = capture(client, scenario.redis_prefix)
    # The first instance takes over nothing (the others are paused well inside the session
    # timeout) and commits its own partitions' customers: what the capture forgets.
    more_outputs(scenario, sized(300, 2000))
    first.pause()
    put_back_at = time.time()
    put_back(client, scenario.redis_prefix, kept)
    for service in stale:
        service.resume()
    time.sleep(5)  # the stale instances allocate first
    first.resume()
    sender.join()
    back = returning(events, sized(600, 4000), "cafe")  # customers the capture may have lost
    send(scenario, back)
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events) + len(back), timeout=300
    )
    logs = "".join(s.log() for s in running)
    report(
        f"same-server put-back, {instances} instances",
        len(events) + len(back),
        committed,
        first_commit_after(logs, put_back_at),
    )
    assert_invariants(events + back, committed, allow_gaps=True)


def test_map_entries_lost_with_counters_intact(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    """A script deletes map buckets and another bucket is restored to older content; counters
    stay. Customers in those buckets come back: each must get the number it had."""
    events = make_events(sized(3000, 20000), seed=2101)
    scenario.create_topics()
    a = instance(start_service, scenario, own_redis, "a")
    b = instance(start_service, scenario, own_redis, "b")
    send(scenario, events[: len(events) // 2])
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(events) // 2)
    client = redis.Redis.from_url(own_redis.url)
    older = capture(client, f"{scenario.redis_prefix}map:1")  # buckets 1, 10-19, 100-199, ...
    send(scenario, events[len(events) // 2 :])
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(events))
    lost_at = time.time()
    deleted = delete_keys(client, f"{scenario.redis_prefix}map:2*", limit=400)
    assert deleted, "the test must delete some buckets"
    for key, dumped in older.dumps.items():  # older content, same server
        client.restore(key, 0, dumped, replace=True)
    back = returning(events, len(events), "f00d")  # every customer comes back
    send(scenario, back)
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, 2 * len(events), timeout=300
    )
    logs = a.log() + b.log()
    report("map entries lost", 2 * len(events), committed, first_commit_after(logs, lost_at))
    assert_invariants(events + back, committed, allow_gaps=True)
    assert recovered_after(logs, lost_at), "the loss must be noticed, and the map rebuilt"


def test_a_counter_deleted_as_an_eviction_would(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    """The counter key goes (eviction under maxmemory, a DEL); the map stays. New customers
    must not get numbers already issued."""
    events = make_events(sized(2000, 20000), seed=2201)
    scenario.create_topics()
    a = instance(start_service, scenario, own_redis, "a")
    b = instance(start_service, scenario, own_redis, "b")
    send(scenario, events[: len(events) // 2])
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(events) // 2)
    client = redis.Redis.from_url(own_redis.url)
    lost_at = time.time()
    assert delete_keys(client, f"{scenario.redis_prefix}seq:*", limit=100)
    send(scenario, events[len(events) // 2 :])
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=300
    )
    logs = a.log() + b.log()
    report("counter deleted", len(events), committed, first_commit_after(logs, lost_at))
    assert_invariants(events, committed, allow_gaps=True)


def test_a_restart_after_a_sigkill_mid_batch_aborts_its_own_transaction_first(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    """Killed between flush and commit with the default transaction timeout (60 s): the
    restarted instance used to read the watermark topic read_committed before
    init_transactions(), so it waited for its own dead transaction for up to a minute."""
    events = make_events(sized(1500, 10000), seed=2301)
    scenario.create_topics()
    sender = send_slowly(scenario, events, seconds=sized(8, 20))
    env = {"CUSTOMER_IDS_TRANSACTION_TIMEOUT_MS": "60000"}
    a = instance(
        start_service, scenario, own_redis, "a", CUSTOMER_IDS_FAILPOINT="before_commit:3", **env
    )
    from tests.e2e.test_redis_back_in_time import wait_for_failpoint  # noqa: PLC0415

    wait_for_failpoint(a)
    a.kill()
    again = instance(start_service, scenario, own_redis, "a", **env)
    sender.join()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=240
    )
    started = min(_stamp(line) for line in log_events(again.log(), "worker_started"))
    resumed = first_commit_after(again.log(), started)
    report("SIGKILL mid-batch, restarted at once", len(events), committed, resumed)
    # From the worker's start (interpreter and imports excluded) to its first commit.
    assert resumed is not None and resumed < 10, f"first commit {resumed}s after the start"
    assert_invariants(events, committed)
