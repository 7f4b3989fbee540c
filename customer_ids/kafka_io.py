"""Small helpers over confluent-kafka that several commands share: client config, topic
creation with AdminClient, and reading a topic to its end with read_committed."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from customer_ids.errors import CustomerIdsError
from customer_ids.logs import kafka_logger

# Passed straight through to every client, so SASL and TLS work without code changes.
SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
}


class TopicReadError(CustomerIdsError):
    """A topic could not be read to its end in time."""


def client_config(
    bootstrap: str, extra: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Base config for every client: brokers, security pass-through, our logger, extras."""
    env = os.environ if env is None else env
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": kafka_logger()}
    for var, key in SECURITY_ENV.items():
        if env.get(var):
            config[key] = env[var]
    config.update(extra or {})
    return config


def ensure_topics(
    bootstrap: str, specs: Mapping[str, dict[str, Any]], timeout: float = 30.0
) -> list[str]:
    """Create the topics that are missing; returns the names created.

    `specs` maps name -> {"partitions": n, "replication": r, "config": {...}}.
    """
    admin = AdminClient(client_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(
            name,
            num_partitions=spec["partitions"],
            replication_factor=spec["replication"],
            config=spec.get("config", {}),
        )
        for name, spec in specs.items()
        if name not in existing
    ]
    created = []
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
            try:
                future.result()
                created.append(name)
            except Exception as exc:
                if (
                    exc.args
                    and getattr(exc.args[0], "code", lambda: None)()
                    == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    continue  # another instance created it at the same moment
                raise
    return created


def read_to_end(
    bootstrap: str,
    topic: str,
    handle: Callable[[Message], None],
    timeout: float = 120.0,
) -> int:
    """Read every committed record of `topic`, from the beginning to the end sampled now."""
    return read_topics_to_end(bootstrap, {topic: handle}, timeout)


def read_topics_to_end(
    bootstrap: str,
    handlers: Mapping[str, Callable[[Message], None]],
    timeout: float = 120.0,
) -> int:
    """Read every committed record of these topics, from the beginning to the end sampled now,
    with one consumer (its start-up is most of the cost of reading a small topic).

    read_committed cannot pass an open transaction, so this also waits for every transaction
    that was open when the end was sampled to commit or abort. Returns the records handled.
    """
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": f"customer-ids-reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                "fetch.max.bytes": 52428800,
                "fetch.wait.max.ms": 10,
            },
        )
    )
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in handlers:
            info = consumer.list_topics(topic, timeout=30).topics.get(topic)
            if info is None or info.error is not None:
                continue
            for p in info.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                if high > low:
                    ends[(topic, p)] = high
        if not ends:
            return 0
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        handled = 0
        deadline = time.monotonic() + timeout
        pending = set(ends)
        while pending:
            if time.monotonic() > deadline:
                raise TopicReadError(
                    f"reading {sorted(handlers)} to the end took over {timeout:.0f}s; "
                    f"partitions {sorted(pending)} not finished"
                )
            for message in consumer.consume(num_messages=10000, timeout=0.05):
                error = message.error()
                if error is None:
                    handlers[message.topic() or ""](message)
                    handled += 1
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise TopicReadError(f"reading {message.topic()}: {error}")
            positions = consumer.position([TopicPartition(t, p) for t, p in pending])
            pending -= {
                (tp.topic, tp.partition)
                for tp in positions
                if tp.offset >= ends[(tp.topic, tp.partition)]
            }
        return handled
    finally:
        consumer.close()
