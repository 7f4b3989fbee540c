"""Reading topics to their end: what the service's recovery, lookups and the tests share."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from customer_ids.errors import CustomerIdsError
from customer_ids.kafka_io import client_config


class TopicReadError(CustomerIdsError):
    """A topic could not be read to its end in time."""


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
