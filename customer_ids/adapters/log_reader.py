"""Reading topics to their true end: what recovery, lookups and the tests share.

"The end" is sampled with a read_uncommitted client: its end offset is the high watermark,
past every record a producer has flushed, including those of transactions still open. A
read_committed client's own end offset is the last stable offset, which stops *before* open
transactions, so a reader that trusted it would miss a batch that commits a moment later
(DESIGN §5.3). Reading read_committed up to the high watermark waits for those transactions
to commit or abort.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import TopicMetadata  # type: ignore[attr-defined]

from customer_ids.adapters.kafka_io import client_config
from customer_ids.domain.errors import CustomerIdsError

Partition = tuple[str, int]


class TopicReadError(CustomerIdsError):
    """A topic could not be read to its end (no progress for too long, or a broker error)."""


def _consumer(bootstrap: str, isolation: str) -> Consumer:
    return Consumer(
        client_config(
            bootstrap,
            {
                "group.id": f"customer-ids-reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": isolation,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                # Prefetch bounded: a reader's memory is its queue, not the topic's size.
                "fetch.max.bytes": 16777216,
                "queued.max.messages.kbytes": 16384,
                "fetch.wait.max.ms": 10,
            },
        )
    )


def end_offsets(
    bootstrap: str, topics: list[str], retry_s: float = 120.0, must_exist: bool = False
) -> dict[Partition, tuple[int, int]]:
    """(low, high watermark) of every partition of these topics, sampled read_uncommitted.

    A partition without a leader yet (a topic just created, a broker restarting) answers
    NOT_LEADER or LEADER_NOT_AVAILABLE for a moment: asked again, as clients do. With
    `must_exist`, a topic the metadata does not show (yet) is asked for again too, then an
    error: a record of truth that cannot be read must never read as empty."""
    sampler = _consumer(bootstrap, "read_uncommitted")
    deadline = time.monotonic() + retry_s
    try:
        ends: dict[Partition, tuple[int, int]] = {}
        for topic in topics:
            info = _topic_metadata(sampler, topic, deadline, must_exist)
            if info is None:
                continue
            for p in info.partitions:
                while True:
                    try:
                        ends[(topic, p)] = sampler.get_watermark_offsets(
                            TopicPartition(topic, p), timeout=30, cached=False
                        )
                        break
                    except KafkaException as exc:
                        if not _passing(exc) or time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
        return ends
    finally:
        sampler.close()


def _topic_metadata(
    sampler: Consumer, topic: str, deadline: float, must_exist: bool
) -> TopicMetadata | None:
    while True:
        info: TopicMetadata | None = sampler.list_topics(topic, timeout=30).topics.get(topic)
        if info is not None and info.error is None:
            return info
        error = None if info is None else info.error
        missing = error is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        if missing and not must_exist:
            return None
        if time.monotonic() > deadline:
            raise TopicReadError(
                f"topic {topic} cannot be read: "
                f"{error or 'not found'}; it holds records of truth, "
                "so nothing goes on without it: check the broker and the topic's ACLs"
            )
        time.sleep(0.5)


def _passing(exc: KafkaException) -> bool:
    error = exc.args[0]
    return bool(error.retriable()) or error.code() in (
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
    )


def read_to_end(
    bootstrap: str,
    topic: str,
    handle: Callable[[Message], None],
    timeout: float | None = 120.0,
) -> int:
    """Read every committed record of `topic`, from the beginning to the end sampled now."""
    return read_topics_to_end(bootstrap, {topic: handle}, timeout=timeout)


def read_topics_to_end(
    bootstrap: str,
    handlers: Mapping[str, Callable[[Message], None]],
    *,
    timeout: float | None = 120.0,
    start: Mapping[Partition, int] | None = None,
    ends: Mapping[Partition, int] | None = None,
    stall_s: float = 300.0,
    progress: Callable[[int, int], None] | None = None,
    must_exist: bool = False,
) -> int:
    """Read the committed records of these topics from `start` (default: the beginning) up to
    `ends` (default: the true end sampled now), with one read_committed consumer.

    `timeout=None` sets no overall limit (a large topic takes as long as it takes); the read
    fails only when it makes no progress for `stall_s`. `progress(handled, remaining)` is
    called about every five seconds. Returns the records handled.
    """
    if ends is None:
        ends = {
            tp: high
            for tp, (low, high) in end_offsets(
                bootstrap, list(handlers), must_exist=must_exist
            ).items()
            if high > low
        }
    begin = {tp: (start or {}).get(tp, OFFSET_BEGINNING) for tp in ends}
    todo = {tp: end for tp, end in ends.items() if end > max(begin[tp], 0)}
    if not todo:
        return 0
    consumer = _consumer(bootstrap, "read_committed")
    try:
        consumer.assign([TopicPartition(t, p, begin[(t, p)]) for t, p in todo])
        reading = _Reading(handlers, todo, timeout, stall_s)
        next_report = time.monotonic()
        while reading.todo:
            reading.check_limits()
            if progress is not None and time.monotonic() >= next_report:
                next_report = time.monotonic() + 5.0
                progress(reading.handled, len(reading.todo))
            reading.take(consumer.consume(num_messages=10000, timeout=0.05))
            reading.drop_finished(consumer)
        return reading.handled
    finally:
        consumer.close()


class _Reading:
    """One read to the end: what is left per partition, what was handled, when it last moved."""

    def __init__(
        self,
        handlers: Mapping[str, Callable[[Message], None]],
        todo: dict[Partition, int],
        timeout: float | None,
        stall_s: float,
    ) -> None:
        self.handlers = handlers
        self.todo = todo
        self.timeout = timeout
        self.stall_s = stall_s
        self.handled = 0
        self.started = self.moved = time.monotonic()

    def check_limits(self) -> None:
        now = time.monotonic()
        if self.timeout is not None and now - self.started > self.timeout:
            raise TopicReadError(
                f"reading {sorted(self.handlers)} to the end took over {self.timeout:.0f}s; "
                f"partitions {sorted(self.todo)} not finished"
            )
        if now - self.moved > self.stall_s:
            raise TopicReadError(
                f"reading {sorted(self.handlers)}: no progress for {self.stall_s:.0f}s; "
                f"partitions {sorted(self.todo)} not finished"
            )

    def take(self, messages: list[Message]) -> None:
        for message in messages:
            error = message.error()
            if error is None:
                self.handlers[message.topic() or ""](message)
                self.handled += 1
                self.moved = time.monotonic()
            elif error.code() == KafkaError._PARTITION_EOF:
                # At the end the position may stay on a transaction marker; EOF says where.
                tp = (message.topic() or "", message.partition() or 0)
                if tp in self.todo and (message.offset() or 0) >= self.todo[tp]:
                    del self.todo[tp]
            else:
                raise TopicReadError(f"reading {message.topic()}: {error}")

    def drop_finished(self, consumer: Consumer) -> None:
        for position in consumer.position([TopicPartition(t, p) for t, p in self.todo]):
            if position.offset >= self.todo[(position.topic, position.partition)]:
                del self.todo[(position.topic, position.partition)]
                self.moved = time.monotonic()
