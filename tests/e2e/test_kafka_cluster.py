"""Kafka as a cluster (three KRaft nodes, replication factor 3, min.insync.replicas 2) losing a
broker under load: the leader of the output partitions SIGKILLed mid-run, then a rolling restart
of all three. The service keeps assigning without a restart; nothing lost, doubled or shared
(the independent verifier), and each test prints the longest pause between two commits.

One cluster serves the module (starting three brokers costs a minute on two cores).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from customer_ids.stack.kafka_cluster import KafkaCluster
from customer_ids.stack.local import default_cache_dir
from tests.helpers.events import make_events
from tests.helpers.load import log_events, send_slowly, sized
from tests.helpers.own_redis import free_port
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.services import Endpoints
from tests.helpers.verify import Committed, assert_invariants, wait_for_every_input

READY_S = 240.0  # a broker (re)joining on a machine four times slower


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    ports = [(free_port(), free_port()) for _ in range(3)]
    nodes = KafkaCluster.on_ports(tmp_path_factory.mktemp("cluster"), default_cache_dir(), ports)
    nodes.start()
    try:
        nodes.wait_ready(READY_S)
        yield nodes
    finally:
        # Thrown away with its data: a graceful stop of the last node waits out its lost
        # quorum (a minute) for nothing.
        for node in nodes.nodes:
            node.kill()


@pytest.fixture
def on_cluster(cluster: KafkaCluster, endpoints: Endpoints) -> Scenario:
    """uuid-named topics on the cluster, three replicas each, the shared Redis. A broker an
    earlier test left stopped (it failed before starting it again) is started first."""
    if None in cluster.running_pids():
        cluster.start()
        cluster.wait_ready(READY_S)
    return Scenario(
        Endpoints(cluster.bootstrap, endpoints.redis_url, "cluster"),
        extra_env={"CUSTOMER_IDS_REPLICATION_FACTOR": "3"},
    ).create_topics()


@pytest.fixture
def start_on_cluster(
    on_cluster: Scenario, services: list[ServiceProcess], tmp_path: Path
) -> Callable[[], ServiceProcess]:
    """The service against the cluster (killed at the end like every test's services)."""

    def start() -> ServiceProcess:
        service = ServiceProcess(on_cluster, tmp_path, "svc").start()
        services.append(service)
        return service

    return start


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    return int(meta.topics[topic].partitions[partition].leader)


def wait_in_sync(bootstrap: str, topics: list[str], timeout: float = READY_S) -> None:
    """Until every partition of `topics` has all three replicas in sync again."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    lagging: list[str] = []
    while time.monotonic() < deadline:
        try:
            meta = admin.list_topics(timeout=10)
            lagging = [
                f"{t}/{p}"
                for t in topics
                for p, info in meta.topics[t].partitions.items()
                if len(info.isrs) < 3
            ]
        except Exception as exc:  # a node restarting: NOT_LEADER, timeouts; ask again
            lagging = [repr(exc)]
        if not lagging:
            return
        time.sleep(1)
    raise AssertionError(f"replicas not back in sync after {timeout}s: {lagging[:5]}")


def longest_pause(service: ServiceProcess, since: float) -> float:
    """The longest time between two consecutive commits after `since` (time.time())."""
    stamps = sorted(
        datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()
        for line in log_events(service.log(), "batch_committed")
    )
    stamps = [s for s in stamps if s >= since - 5]
    return max((b - a for a, b in itertools.pairwise(stamps)), default=0.0)


def report(name: str, sent: int, committed: Committed, pause: float) -> None:
    print(
        f"\n{name}: {sent} events, {len(committed.outputs)} outputs, "
        f"{sum(len(c) > 1 for c in committed.customers_by_number().values())} shared numbers, "
        f"{sum(len(n) > 1 for n in committed.numbers_by_customer().values())} customers with "
        f"two numbers, gaps {committed.gaps()}, longest pause between commits {pause:.1f}s"
    )


@pytest.mark.timeout(1200)
def test_the_leader_of_the_output_partitions_is_killed_mid_run(
    cluster: KafkaCluster,
    on_cluster: Scenario,
    start_on_cluster: Callable[[], ServiceProcess],
) -> None:
    scenario = on_cluster
    events = make_events(sized(3000, 30000), seed=1301)
    sender = send_slowly(scenario, events, seconds=sized(30, 120))
    service = start_on_cluster()
    service.wait_for_log("batch_committed", timeout=READY_S)
    time.sleep(sized(3, 10))
    victim = cluster.node(leader_of(cluster.bootstrap, scenario.output_topic, 0))
    pid = victim.running_pid()
    assert pid is not None
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    sender.join(timeout=600)
    assert not sender.is_alive(), "the producer could not deliver the input"
    committed, recorded = wait_for_every_input(
        scenario.endpoints.bootstrap, scenario.input_topic, scenario.output_topic, timeout=600
    )
    assert service.running(), "the service must ride out a lost broker without a restart"
    assert_invariants(events, committed, recorded=recorded)
    pause = longest_pause(service, killed_at)
    report(f"broker {victim.node_id} (leader of output/0) SIGKILLed", len(events), committed, pause)


@pytest.mark.timeout(1800)
def test_a_rolling_restart_of_all_three_brokers_under_load(
    cluster: KafkaCluster,
    on_cluster: Scenario,
    start_on_cluster: Callable[[], ServiceProcess],
) -> None:
    scenario = on_cluster
    topics = [scenario.input_topic, scenario.output_topic, scenario.watermark_topic]
    wait_in_sync(cluster.bootstrap, topics)
    events = make_events(sized(4000, 40000), seed=1302)
    sender = send_slowly(scenario, events, seconds=sized(60, 240))
    service = start_on_cluster()
    service.wait_for_log("batch_committed", timeout=READY_S)
    started = time.time()
    for node in cluster.nodes:
        assert node.stop(), f"broker {node.node_id} was not running"  # controlled shutdown
        node.start()
        cluster.wait_ready(READY_S)
        wait_in_sync(cluster.bootstrap, topics)
    sender.join(timeout=900)
    assert not sender.is_alive(), "the producer could not deliver the input"
    committed, recorded = wait_for_every_input(
        scenario.endpoints.bootstrap, scenario.input_topic, scenario.output_topic, timeout=600
    )
    assert service.running(), "the service must ride out a rolling restart without a restart"
    assert_invariants(events, committed, recorded=recorded)
    report("rolling restart of 3 brokers", len(events), committed, longest_pause(service, started))


def test_topics_the_service_creates_on_the_cluster_are_replicated(
    cluster: KafkaCluster, on_cluster: Scenario
) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    meta = admin.list_topics(on_cluster.output_topic, timeout=30)
    replicas = {len(p.replicas) for p in meta.topics[on_cluster.output_topic].partitions.values()}
    assert replicas == {3}
    from confluent_kafka.admin import (  # type: ignore[attr-defined]  # noqa: PLC0415
        ConfigResource,
        ResourceType,
    )

    resource = ConfigResource(ResourceType.TOPIC, on_cluster.output_topic)
    config = admin.describe_configs([resource])[resource].result(30)
    assert config["min.insync.replicas"].value == "2"
