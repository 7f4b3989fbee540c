"""The input side of the loop: which partitions we hold, putting a batch back, pausing while
Redis is away, and the lag we report. librdkafka keeps a partition's pause across a rebalance,
so the paused state of every assigned partition is set here, on each assignment."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from consumer.metrics import ServiceMetrics
from consumer.outputs import position
from customer_ids.adapters.logs import get_logger

log = get_logger(__name__)
LAG_REPORT_S = 5.0


class InputPartitions:
    """The consumer's partitions as the loop needs them; the rebalance callbacks live here."""

    def __init__(self, consumer: Consumer, metrics: ServiceMetrics) -> None:
        self.consumer = consumer
        self.metrics = metrics
        self.paused = False
        self._next_lag_report = 0.0
        self.rebalances = 0  # assignments, revocations and losses seen: a batch spans none
        self._lag_topic: str | None = None

    def subscribe(self, topics: list[str]) -> None:
        """Consume these topics; the lag metric is the first's (the input topic's)."""
        self._lag_topic = topics[0]
        self.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def poll_batch(self, size: int, wait_s: float) -> list[Message]:
        """Up to `size` records: all that have arrived, at once, or else the first to arrive
        within `wait_s` with any that came with it. A batch never waits to fill (consume()
        with a timeout would hold every batch for all of it when fewer than `size` wait):
        under load the next batch gathers while this one commits. Consumer errors are logged
        (fatal ones raise)."""
        generation = self.rebalances
        messages = self.consumer.consume(num_messages=size, timeout=0)
        if not messages:
            messages = self.consumer.consume(num_messages=1, timeout=wait_s)
            if messages and size > 1:
                messages += self.consumer.consume(num_messages=size - 1, timeout=0)
        if messages and self.rebalances != generation:
            # librdkafka drops records of a revoked assignment within one consume() only: a
            # rebalance between two calls may leave some in the batch. Put them all back.
            self.rewind([m for m in messages if m.error() is None])
            return []
        batch = [m for m in messages if _usable(m)]
        if time.monotonic() >= self._next_lag_report:
            self._report_lag()
        return batch

    def rewind(self, messages: list[Message]) -> None:
        """Seek each partition back to the first record of the batch: its committed offset."""
        firsts: dict[tuple[str, int], int] = {}
        for m in messages:
            topic, partition, offset = position(m)
            firsts[(topic, partition)] = min(firsts.get((topic, partition), offset), offset)
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), offset in firsts.items():
            if (topic, partition) in assigned:
                self.consumer.seek(TopicPartition(topic, partition, offset))

    def pause(self) -> int:
        """Stop fetching on every partition held now and on any assigned until resume()."""
        self.paused = True
        held = self.consumer.assignment()
        self.consumer.pause(held)
        return len(held)

    def serve_group_while_paused(self) -> None:
        """Keep serving the group (rebalance callbacks, max.poll.interval) while paused. A
        partition assigned meanwhile may deliver: put back all it delivered, each partition to
        its first record (one seek per message would keep only the last)."""
        consumed = self.consumer.consume(num_messages=100, timeout=0)
        self.rewind([m for m in consumed if m.error() is None])

    def resume(self) -> None:
        self.paused = False
        self.consumer.resume(self.consumer.assignment())

    def _report_lag(self) -> None:
        """Records behind the end, per partition, from the client's cached high watermarks."""
        reported = 0
        held = [tp for tp in self.consumer.assignment() if tp.topic == self._lag_topic]
        for tp in self.consumer.position(held):
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                self.metrics.lag.labels(partition=str(tp.partition)).set(high - tp.offset)
                reported += 1
        if reported:  # until a partition has a position, try again on the next loop
            self._next_lag_report = time.monotonic() + LAG_REPORT_S

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        # One assigned while we wait for Redis must wait too.
        consumer.assign(partitions)
        if self.paused:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        log.info(
            "partitions_assigned",
            partitions=[f"{p.topic}:{p.partition}" for p in partitions],
            paused=self.paused,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        # Transactions never stay open across consume(), so nothing is pending here.
        log.info("partitions_revoked", partitions=[p.partition for p in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        log.warning("partitions_lost", partitions=[p.partition for p in partitions])


def _usable(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    log.warning("consumer_error", error=str(error))
    return False
