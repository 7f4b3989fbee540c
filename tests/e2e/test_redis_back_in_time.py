"""Redis going back in time under running instances (DESIGN §5): a restored snapshot, the
open-transaction race, an outage with a rebalance, a recovery killed half way.

Each prints one line of figures (events, outputs, shared numbers, customers with two numbers,
gaps, time to resume) and checks the invariants with the independent verifier.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from tests.helpers.events import make_events, send
from tests.helpers.load import (
    first_commit_after,
    log_events,
    recovered_after,
    returning,
    send_slowly,
    sized,
)
from tests.helpers.own_redis import OwnRedis
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import Committed, assert_invariants, read_committed, wait_for_outputs


def committed_count(scenario: Scenario) -> int:
    return len(read_committed(scenario.endpoints.bootstrap, scenario.output_topic).outputs)


def report(name: str, sent: int, committed: Committed, resume_s: float | None) -> None:
    print(
        f"\n{name}: {sent} events, {len(committed.outputs)} outputs, "
        f"{sum(len(c) > 1 for c in committed.customers_by_number().values())} shared numbers, "
        f"{sum(len(n) > 1 for n in committed.numbers_by_customer().values())} customers with "
        f"two numbers, gaps {committed.gaps()}, resumed after "
        f"{'-' if resume_s is None else f'{resume_s:.1f}s'}"
    )


def instance(
    start_service: Callable[..., ServiceProcess],
    scenario: Scenario,
    redis_server: OwnRedis,
    name: str,
    **env: str,
) -> ServiceProcess:
    """One more instance of the service, with a transactional.id of its own."""
    return start_service(
        name,
        REDIS_URL=redis_server.url,
        CUSTOMER_IDS_TRANSACTIONAL_ID=f"{scenario.tag}-{name}",
        **env,
    )


def wait_for_failpoint(service: ServiceProcess, timeout: float = 120.0) -> int:
    """The pid of the worker that stopped itself at its failpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log_events(service.log(), "failpoint_reached")
        if lines:
            return int(str(lines[0]["pid"]))
        time.sleep(0.05)
    raise AssertionError(f"failpoint not reached in {timeout}s:\n{service.log()[-3000:]}")


def test_redis_restored_from_an_older_snapshot_under_two_instances(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    events = make_events(sized(3000, 20000), duplicates=0.1, seed=1101)
    scenario.create_topics()
    sender = send_slowly(scenario, events, seconds=sized(12, 30))
    a = instance(start_service, scenario, own_redis, "a")
    b = instance(start_service, scenario, own_redis, "b")
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, sized(300, 2000))
    snapshot = own_redis.snapshot()
    at_snapshot = committed_count(scenario)
    # More numbers committed after the snapshot: these are what the older Redis forgets.
    wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, at_snapshot + sized(500, 3000)
    )
    restarted_at = time.time()
    own_redis.restart_from(snapshot)
    sender.join()
    back = returning(events, sized(300, 2000), "beef")  # customers who had numbers come back
    send(scenario, back)
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events) + len(back), timeout=240
    )
    logs = a.log() + b.log()
    report(
        "snapshot restore",
        len(events) + len(back),
        committed,
        first_commit_after(logs, restarted_at),
    )
    assert_invariants(events + back, committed, allow_gaps=True)
    assert recovered_after(logs, restarted_at), "the recovery must run, and say why"


def test_a_recovery_waits_for_a_transaction_left_open_before_it_began(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    """Instance a stops after its flush and fence, before its commit; Redis is wiped; b
    recovers; a goes on and commits. b's recovery must have waited for a's transaction."""
    events = make_events(sized(2000, 10000), seed=1201)
    sender = send_slowly(scenario, events, seconds=sized(6, 15))
    a = instance(
        start_service,
        scenario,
        own_redis,
        "a",
        CUSTOMER_IDS_FAILPOINT="before_commit:3",
    )
    worker = wait_for_failpoint(a)
    own_redis.restart_empty()
    b = instance(start_service, scenario, own_redis, "b")
    b.wait_for_log("redis_recovery_started", timeout=120)
    time.sleep(3)  # b is reading the log now, its end past a's open transaction
    resumed_at = time.time()
    os.kill(worker, signal.SIGCONT)
    sender.join()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=240
    )
    report("open transaction", len(events), committed, first_commit_after(b.log(), resumed_at))
    assert_invariants(events, committed, allow_gaps=True)
    rebuilt = log_events(b.log(), "redis_state_rebuilt_from_kafka")
    assert rebuilt and rebuilt[0]["records_read"], b.log()[-3000:]


def test_an_outage_with_a_rebalance_loses_no_input(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    """Redis paused, one of two instances killed, Redis back after 10 s: the survivor takes
    the dead one's partitions while it waits, and must not skip any of their records."""
    events = make_events(sized(2000, 10000), seed=1301)
    scenario.create_topics()
    send(scenario, events[: len(events) // 2])
    a = instance(start_service, scenario, own_redis, "a")
    b = instance(start_service, scenario, own_redis, "b")
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(events) // 4)
    own_redis.pause()
    send(scenario, events[len(events) // 2 :])  # more input arrives on every partition
    b.kill()
    time.sleep(10)
    resumed_at = time.time()
    own_redis.resume()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=240
    )
    report("outage and rebalance", len(events), committed, first_commit_after(a.log(), resumed_at))
    assert len(committed.outputs) == len(events)
    assert_invariants(events, committed)


def test_a_recovery_killed_half_way_is_redone_by_a_waiting_instance(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    """The recoverer is SIGKILLed holding the recovery lock with the state marked rebuilding;
    two waiting instances must not adopt the half-built state, and one of them takes over
    within the lock's lease (issue: a dead instance stalls the others)."""
    first = send(scenario, make_events(sized(3000, 100_000), seed=1401))
    warm = start_service("warm", REDIS_URL=own_redis.url)
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(first), timeout=240)
    warm.terminate()
    own_redis.restart_empty()
    a = instance(
        start_service,
        scenario,
        own_redis,
        "a",
        CUSTOMER_IDS_FAILPOINT="recovery_started:1",
    )
    wait_for_failpoint(a)  # a holds the recovery lock, Redis is marked rebuilding
    others = [instance(start_service, scenario, own_redis, n) for n in ("b", "c")]
    second = make_events(sized(1000, 10000), seed=1402)
    back = returning(first, sized(200, 2000), "cafe")
    send(scenario, second + back)
    killed_at = time.time()
    a.kill()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        len(first) + len(second) + len(back),
        timeout=240,
    )
    logs = "".join(o.log() for o in others)
    resume = first_commit_after(logs, killed_at)
    report("recovery killed half way", len(first) + len(second) + len(back), committed, resume)
    assert_invariants(first + second + back, committed)
    assert resume is not None and resume < 30, f"resumed after {resume}s"
    assert "an earlier recovery did not finish" in logs


def test_an_allocation_paused_past_its_lease_fails_when_it_resumes(
    scenario: Scenario, own_redis: OwnRedis, start_service: Callable[..., ServiceProcess]
) -> None:
    """a stops (SIGSTOP) holding the sequence lock, just before its allocation step; its lease
    runs out and b allocates meanwhile; when a goes on, its late write must fail (the
    compare-and-set), and nothing is issued twice."""
    events = make_events(sized(2000, 10000), seed=1601)
    scenario.create_topics()  # three input partitions, so both instances get some
    sender = send_slowly(scenario, events, seconds=sized(12, 25))
    b = instance(start_service, scenario, own_redis, "b")
    b.wait_for_log("batch_committed", timeout=120)  # b owns partitions and keeps them
    a = instance(
        start_service, scenario, own_redis, "a", CUSTOMER_IDS_FAILPOINT="before_allocate:3"
    )
    worker = wait_for_failpoint(a)
    stopped_at = time.time()
    time.sleep(10)  # past the 6 s lease, within the 15 s session: b takes the lock, allocates
    os.kill(worker, signal.SIGCONT)
    sender.join()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events), timeout=240
    )
    report(
        "allocation paused past its lease",
        len(events),
        committed,
        first_commit_after(b.log(), stopped_at),
    )
    assert_invariants(events, committed, allow_gaps=True)
    assert "COUNTER moved" in a.log(), "a's late allocation must be refused"
