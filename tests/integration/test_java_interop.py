"""Java consumers and producers agree with what customer-ids does in Python (librdkafka):
keyed records land where the Java client would put them, and the Java example subscriber
(examples/java-subscriber: kafka-clients + Apache Avro, no registry) decodes every output.

Needs a JDK and Maven (the jar is built once per session) besides the usual Kafka and Redis.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from customer_ids.adapters.kafka_io import producer_config
from tests.helpers.events import make_events, send
from tests.helpers.java import subscribe
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import wait_for_outputs

PARTITION_VECTORS = "com.example.customers.subscriber.PartitionVectors"
PARTITIONS = 6

# Upstream ids as they come: accents, other scripts, emoji (4-byte UTF-8), odd lengths.
NAMES = ("Müller", "Ørsted", "Ærø", "東京", "Владимир", "Ελλάδα", "😀", "ñandú", "e\u0301", "ß")


@pytest.fixture
def admin(scenario: Scenario) -> AdminClient:
    return AdminClient({"bootstrap.servers": scenario.endpoints.bootstrap})


@pytest.fixture
def keyed_topic(scenario: Scenario, admin: AdminClient) -> Iterator[str]:
    """A fresh topic of PARTITIONS partitions, deleted afterwards."""
    name = f"t-{scenario.tag}.murmur2"
    new = NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)
    for future in admin.create_topics([new], operation_timeout=60).values():
        future.result(60)
    yield name
    for future in admin.delete_topics([name], operation_timeout=60).values():
        future.result(60)


def customer_keys(count: int, seed: int) -> list[str]:
    """Keys as the service writes them, `source_system/customer_id`: half the generator's own
    (ASCII), half with non-ASCII ids of varied length."""
    rng = random.Random(seed)
    ascii_keys = [e.customer_key for e in make_events(count // 2, seed=seed)]
    other = [
        f"{rng.choice(('crm', 'webshop', 'pos'))}/{rng.choice(NAMES)}-{rng.getrandbits(24):x}"
        + rng.choice(NAMES) * rng.randint(0, 3)
        for _ in range(count - len(ascii_keys))
    ]
    keys = ascii_keys + other
    assert len(set(keys)) == count
    assert all("\n" not in k and "\r" not in k and "\t" not in k for k in keys)
    return keys


def java_placement(jar: Path, keys: list[str], partitions: int) -> dict[str, int]:
    """key -> partition, from kafka-clients' own BuiltInPartitioner.partitionForKey."""
    result = subprocess.run(
        ["java", "-cp", str(jar), PARTITION_VECTORS, str(partitions)],
        input="".join(f"{k}\n" for k in keys),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # split("\n"), not splitlines(): the latter also splits at U+2028, U+0085 and the like.
    rows = [line.rsplit("\t", 1) for line in result.stdout.split("\n") if line]
    placement = {key: int(partition) for key, partition in rows}
    assert list(placement) == keys, "PartitionVectors must echo every key once, in order"
    return placement


@pytest.mark.timeout(900)  # the first test to build the jar may download its dependencies
def test_our_producers_place_keys_as_the_java_client_does(
    scenario: Scenario, java_jar: Path, keyed_topic: str
) -> None:
    keys = customer_keys(200, seed=1201)
    expected = java_placement(java_jar, keys, PARTITIONS)
    assert set(expected.values()) == set(range(PARTITIONS)), "200 keys reach every partition"

    delivered: dict[str, int] = {}
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        key = message.key()
        assert isinstance(key, bytes)
        if error is not None:
            failures.append(f"{key!r}: {error}")
        else:
            partition = message.partition()
            assert partition is not None
            delivered[key.decode("utf-8")] = partition

    # The configuration every producer of the project (service, library, replay) uses.
    producer = Producer(producer_config(scenario.endpoints.bootstrap))
    for key in keys:
        producer.produce(keyed_topic, key=key.encode("utf-8"), value=b"v", on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(120) == 0, "records not delivered within 120 s"
    assert not failures, failures[:5]
    assert set(delivered) == set(keys)
    wrong = {k: (delivered[k], expected[k]) for k in keys if delivered[k] != expected[k]}
    assert not wrong, (
        f"{len(wrong)}/{len(keys)} keys on another partition than Java's "
        f"(librdkafka, java): {list(wrong.items())[:5]}"
    )


@pytest.mark.timeout(900)
def test_java_subscriber_decodes_every_output(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], java_jar: Path
) -> None:
    scenario.create_topics()  # three partitions: the lines carry more than partition 0
    sent = send(scenario, make_events(300, seed=1301))
    start_service()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(sent), timeout=300
    )
    assert len(committed.outputs) == len(sent)
    expected = {(o.customer_key, o.customer_number) for o in committed.outputs}

    lines = subscribe(
        java_jar,
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        f"t-{scenario.tag}-java-subscriber",
        len(committed.outputs),
    )
    assert len(lines) == len(sent)
    assert all(line["key"] == f"{line['source_system']}/{line['customer_id']}" for line in lines)
    got = {(line["key"], line["customer_number"]) for line in lines}
    assert got == expected
    # The service wrote each output where a Java producer would have put that customer's key.
    java = java_placement(java_jar, sorted({line["key"] for line in lines}), 3)
    assert {line["key"]: line["partition"] for line in lines} == java
    assert {line["causation_id"] for line in lines} == {e.event_id for e in sent}
    assert len({(line["partition"], line["offset"]) for line in lines}) == len(lines)
    assert len({line["partition"] for line in lines}) > 1, "outputs spread over partitions"
