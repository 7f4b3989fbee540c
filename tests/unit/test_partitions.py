"""The input side: a partition assigned while Redis is away waits too, and a rewind seeks each
partition to the first record of the batch."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from consumer.metrics import ServiceMetrics
from consumer.partitions import InputPartitions
from tests.unit.fakes import FakeConsumer


class Rebalancing(FakeConsumer):
    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)


class Record:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def test_a_partition_assigned_while_paused_is_paused_and_resumed_later() -> None:
    consumer = Rebalancing(partitions=[0])
    partitions = InputPartitions(consumer, ServiceMetrics())  # type: ignore[arg-type]
    partitions.pause()
    new = [TopicPartition("in", 0), TopicPartition("in", 1)]
    partitions._on_assign(consumer, new)  # type: ignore[arg-type]
    assert consumer.paused == [0, 0, 1]
    partitions.resume()
    assert consumer.resumed == [0, 1]
    partitions._on_assign(consumer, [TopicPartition("in", 2)])  # type: ignore[arg-type]
    assert consumer.resumed == [0, 1, 2]  # librdkafka would keep an old pause: we clear it


def test_a_rewind_seeks_each_held_partition_to_its_first_record() -> None:
    consumer = FakeConsumer(partitions=[0, 1])
    partitions = InputPartitions(consumer, ServiceMetrics())  # type: ignore[arg-type]
    batch: list[Any] = [Record(0, 12), Record(1, 5), Record(0, 10), Record(2, 99)]
    partitions.rewind(batch)
    assert sorted(consumer.seeks) == [(0, 10), (1, 5)]  # partition 2 is no longer ours


class MessageAt(Record):
    def error(self) -> None:
        return None


class RebalancedMidPoll(FakeConsumer):
    """The wait returns a record, then the group rebalances inside the top-up call."""

    def __init__(self) -> None:
        super().__init__(partitions=[0])
        self.partitions: InputPartitions | None = None
        self.calls = 0

    def consume(self, num_messages: int = 1, timeout: float = 0) -> list[Any]:
        self.calls += 1
        if self.calls == 2:  # the wait for a first record
            return [MessageAt(0, 40)]
        if self.calls == 3:  # the top-up: a revoke and a new assignment are served here
            assert self.partitions is not None
            self.partitions._on_revoke(self, [TopicPartition("in", 0)])  # type: ignore[arg-type]
            self.partitions._on_assign(self, [TopicPartition("in", 0)])  # type: ignore[arg-type]
            return [MessageAt(0, 41)]
        return []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        pass


def test_a_batch_never_spans_a_rebalance() -> None:
    # Before: the record from before the rebalance stayed in the batch, and the commit under
    # the new generation could give that input a second output.
    consumer = RebalancedMidPoll()
    partitions = InputPartitions(consumer, ServiceMetrics())  # type: ignore[arg-type]
    consumer.partitions = partitions
    assert partitions.poll_batch(100, 0.01) == []
    assert consumer.seeks == [(0, 40)]  # both put back: read again under the new assignment
