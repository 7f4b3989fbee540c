"""Fault injection against the real broker and Redis, the service as real subprocesses.

Each test checks the four invariants with the independent verifier. The CI subset runs small
sizes; `CUSTOMER_IDS_FULL_FAULTS=1 scripts/test tests/e2e` runs the full sizes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from producer.emitter import CustomerEventProducer
from tests.helpers.events import bad_values, make_events, send
from tests.helpers.load import send_slowly, sized
from tests.helpers.own_redis import OwnRedis
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.services import Endpoints
from tests.helpers.verify import assert_invariants, read_committed, wait_for_outputs


def test_sigkill_at_random_moments_keeps_every_invariant_without_gaps(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    events = make_events(sized(3000, 20000), duplicates=0.1, seed=101)
    sender = send_slowly(scenario, events, seconds=sized(6, 25))
    rng = random.Random(5)
    service = start_service()
    for _ in range(sized(2, 5)):
        time.sleep(rng.uniform(0.5, 3.0))
        service.kill()
        service = start_service()
    sender.join()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=180
    )
    assert len(committed.outputs) == len(events)
    assert_invariants(events, committed)


def test_instances_joining_and_one_killed_under_load(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    events = make_events(sized(3000, 20000), duplicates=0.1, seed=202)
    sender = send_slowly(scenario, events, seconds=sized(8, 25))
    first = start_service("a", CUSTOMER_IDS_TRANSACTIONAL_ID=f"t-{scenario.tag}-a")
    time.sleep(2)
    second = start_service("b", CUSTOMER_IDS_TRANSACTIONAL_ID=f"t-{scenario.tag}-b")
    time.sleep(2)
    start_service("c", CUSTOMER_IDS_TRANSACTIONAL_ID=f"t-{scenario.tag}-c")
    time.sleep(2)
    second.kill()
    sender.join()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=180
    )
    assert len(committed.outputs) == len(events)
    assert_invariants(events, committed)
    assert first.running()


def test_redis_flushall_mid_run_with_two_instances_gives_no_duplicate(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    events = make_events(sized(3000, 20000), duplicates=0.1, seed=303)
    sender = send_slowly(scenario, events, seconds=sized(8, 25))
    a = start_service("a", CUSTOMER_IDS_TRANSACTIONAL_ID=f"t-{scenario.tag}-a")
    b = start_service("b", CUSTOMER_IDS_TRANSACTIONAL_ID=f"t-{scenario.tag}-b")
    deadline = time.monotonic() + 60
    while '"batch_committed"' not in a.log() + b.log():  # either may own the partitions
        assert time.monotonic() < deadline, a.log()[-2000:] + b.log()[-2000:]
        time.sleep(0.1)
    time.sleep(2)
    client = redis.Redis.from_url(scenario.endpoints.redis_url)
    # FLUSHALL, limited to this test's keys and, like FLUSHALL, atomic.
    wiped = client.eval(
        "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
        "n = n + redis.call('DEL', k) end return n",
        0,
        f"{scenario.redis_prefix}*",
    )
    assert int(wiped) > 0
    sender.join()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=180
    )
    assert_invariants(events, committed, allow_gaps=True)
    logs = a.log() + b.log()
    assert '"reason": "epoch lost"' in logs, "the rebuild from Kafka must be logged"
    gaps = committed.gaps()
    print(f"gaps after the wipe: {gaps}")


def test_redis_restarted_without_persistence_restores_state_from_kafka(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    first = send(scenario, make_events(500, seed=401))
    service = start_service(REDIS_URL=own_redis.url)
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 500)
    own_redis.restart_empty()
    # The same customers again must get their old numbers; new ones continue the sequence.
    again = first[:100]
    second = send(scenario, again + make_events(500, seed=402))
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 1100)
    assert_invariants(first + second, committed)
    assert sorted({o.sequence for o in committed.outputs}) == list(range(1, 1001))
    assert '"redis_state_rebuilt_from_kafka"' in service.log()
    assert '"reason": "epoch lost"' in service.log()


def test_redis_unreachable_for_a_while_pauses_then_resumes_with_nothing_skipped(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    events = make_events(sized(1500, 5000), seed=501)
    sender = send_slowly(scenario, events, seconds=sized(8, 20))
    service = start_service(REDIS_URL=own_redis.url)
    service.wait_for_log("batch_committed")
    own_redis.pause()
    time.sleep(sized(6, 10))
    own_redis.resume()
    sender.join()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=180
    )
    assert len(committed.outputs) == len(events)
    assert_invariants(events, committed)
    assert '"redis_unavailable_pausing"' in service.log()
    assert '"redis_available_resuming"' in service.log()


def test_interleaved_bad_records_are_all_dead_lettered_and_the_service_keeps_going(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    kinds = list(bad_values().values())
    bad_count = sized(140, 1000)
    good = make_events(bad_count, seed=601)
    service = start_service()
    with CustomerEventProducer(scenario.endpoints.bootstrap, scenario.input_topic) as out:
        for i, event in enumerate(good):
            out.emit_event(event)
            value = kinds[i % len(kinds)]
            out.emit_raw(b"bad", value)
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        len(good),
        dlq_topic=scenario.dlq_topic,
        dead_letters=bad_count,
        timeout=180,
    )
    assert_invariants(good, committed)
    assert len(committed.dead_letters) == bad_count
    offsets = {h["source.offset"] for _, h in committed.dead_letters}
    assert len(offsets) <= bad_count
    assert service.running()


def test_a_zombie_with_the_same_transactional_id_is_fenced(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    """The old instance is paused past its id's lease (a frozen VM, a long GC); the new one
    takes the id over, and its init_transactions fences the old one, which stops when it
    wakes and meets the fence."""
    events = make_events(sized(2000, 10000), seed=701)
    half = len(events) // 2
    sender = send_slowly(scenario, events[:half], seconds=sized(6, 15))
    old = start_service("old")
    old.wait_for_log("batch_committed")
    old.pause()
    new = start_service("new")
    new.wait_for_log("service_started", timeout=240)  # its init_transactions fenced the old one
    old.resume()
    sender.join()
    # Records after the fence, on every partition: the old instance meets the fence at its next
    # transaction (on a slow machine it may have drained the first half before the new one came).
    send(scenario, events[half:])
    deadline = time.monotonic() + 120
    while old.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=180
    )
    assert_invariants(events, committed)
    assert not old.running(), "the fenced instance must stop"
    assert old.proc is not None and old.proc.returncode == 0
    assert old.log().count('"fenced_shutting_down"') == 1


def test_a_second_live_instance_with_the_same_transactional_id_is_refused(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    """Two instances on one host with the default id used to fence each other: the first
    exited for good. Now the second is refused at start (exit 2, naming the setting) and
    the first goes on."""
    first = start_service("first")
    first.wait_for_log("service_started", timeout=240)
    second = start_service("second")
    assert second.proc is not None and second.proc.wait(120) == 2, second.log()[-2000:]
    assert "CUSTOMER_IDS_TRANSACTIONAL_ID" in second.log()
    events = make_events(50, seed=702)
    send(scenario, events)
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 50)
    assert_invariants(events, committed)
    assert first.running() and "fenced_shutting_down" not in first.log()


def test_verifier_catches_a_number_given_twice(scenario: Scenario) -> None:
    """The verifier itself can fail: a forged second output for another customer is caught."""
    events = make_events(2, seed=801)
    committed = read_committed(scenario.endpoints.bootstrap, scenario.output_topic)
    from customer_ids.domain.events import CustomerIdAssigned, now_utc  # noqa: PLC0415

    committed.outputs = [
        CustomerIdAssigned(
            e.event_id,
            e.event_id,
            e.customer_id,
            e.source_system,
            "CU-00000001-8",
            "CU",
            1,
            now_utc(),
        )
        for e in events
    ]
    with pytest.raises(AssertionError, match="numbers given to two customers"):
        assert_invariants(events, committed)


def test_broker_restarted_mid_run_the_service_recovers_by_itself(
    endpoints: Endpoints, tmp_path: Path, start_service: Callable[..., ServiceProcess]
) -> None:
    """A broker of this test's own (same jars, fresh ports), stopped and started again on the
    same data while events flow."""
    from customer_ids.stack.kafka import KafkaNode  # noqa: PLC0415
    from customer_ids.stack.local import default_cache_dir  # noqa: PLC0415
    from tests.helpers.own_redis import free_port  # noqa: PLC0415

    node = KafkaNode(tmp_path / "broker", default_cache_dir(), free_port(), free_port())
    node.start()
    try:
        node.wait_ready()
        scenario = Scenario(Endpoints(node.bootstrap, endpoints.redis_url, "own broker"))
        events = make_events(sized(1500, 10000), seed=901)
        first, second = events[: len(events) // 2], events[len(events) // 2 :]
        send(scenario, first)
        service = ServiceProcess(
            scenario, tmp_path, "svc", CUSTOMER_IDS_KAFKA_CALL_TIMEOUT_S="5"
        ).start()
        try:
            wait_for_outputs(node.bootstrap, scenario.output_topic, len(first), timeout=120)
            node.stop()
            time.sleep(3)
            node.start()
            node.wait_ready()
            send(scenario, second)
            committed = wait_for_outputs(
                node.bootstrap, scenario.output_topic, len(events), timeout=180
            )
            assert_invariants(events, committed)
            assert service.running(), "the service must ride out a broker restart"
        finally:
            service.kill()
    finally:
        node.stop()
