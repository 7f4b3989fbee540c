"""The exactly-once loop (DESIGN §4): consume a batch, assign numbers, produce the outputs and
the consumed offsets in one Kafka transaction, commit.

Errors fall in three kinds, as confluent-kafka documents them: retriable (retry the call),
txn_requires_abort (abort, rewind to the committed offsets, go again) and fatal (stop). Redis
trouble aborts and rewinds too, then pauses consumption until Redis answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import structlog
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from consumer import failpoints
from consumer.accounting import account_batch
from consumer.allocator import RedisNumberStore, ReplicasBehindError
from consumer.assign import BatchNumbers, assign_numbers
from consumer.batch_records import (
    batch_span,
    dead_letters,
    decode_batch,
    next_offsets,
    output_record,
    position,
    watermark_key,
)
from consumer.dead_letter import dead_letter_headers, dead_letter_record
from consumer.leases import LeaseLostError, LockTimeoutError
from consumer.metrics import ServiceMetrics
from consumer.recovery import StateRecovery, Valid, checkpoint_field
from consumer.store import AllocationConflictError, StateBehindLogError, StateChangedError
from consumer.transaction import KafkaTransaction, RetryBatchError, kafka_errors
from customer_ids.codec import AvroCodec
from customer_ids.events import now_utc
from customer_ids.logs import get_logger
from customer_ids.settings import Settings

log = get_logger("customer_ids.service")
MAX_BACKOFF_S = 5.0
LAG_REPORT_S = 5.0


@dataclass
class AssignmentService:
    settings: Settings
    consumer: Consumer
    transaction: KafkaTransaction
    allocator: RedisNumberStore
    recovery: StateRecovery
    metrics: ServiceMetrics
    input_codec: AvroCodec
    output_codec: AvroCodec
    redis_ping: Callable[[], object]
    epoch: str | None = None
    # Highest value known committed per counter (recovery's reading of the log, then our own
    # commits): a counter below it means Redis went back in time.
    floors: dict[str, int] = field(default_factory=dict)
    _failures: int = 0
    _next_lag_report: float = 0.0
    _waiting_for_redis: bool = False

    # ---------------------------------------------------------------- lifecycle
    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; raises FencedError when a newer instance took over."""
        self.transaction.init()
        self.metrics.kafka_up.set(1)
        if not self._adopt(stop, lambda: self.recovery.ensure(None)):
            return
        self.consumer.subscribe(
            [self.settings.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self.metrics.ready.set(1)
        log.info(
            "service_started",
            transactional_id=self.settings.transactional_id,
            group=self.settings.group_id,
            input=self.settings.input_topic,
        )
        try:
            while not stop.is_set():
                messages = self.consumer.consume(
                    num_messages=self.settings.batch_size,
                    timeout=self.settings.batch_wait_ms / 1000,
                )
                batch = [m for m in messages if self._usable(m)]
                if batch:
                    self._process_with_retries(batch, stop)
                if time.monotonic() >= self._next_lag_report:
                    self._report_lag()
        finally:
            self.metrics.ready.set(0)

    def _report_lag(self) -> None:
        """Records behind the end, per partition, from the client's cached high watermarks."""
        reported = 0
        for tp in self.consumer.position(self.consumer.assignment()):
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                self.metrics.lag.labels(partition=str(tp.partition)).set(high - tp.offset)
                reported += 1
        if reported:  # until a partition has a position, try again on the next loop
            self._next_lag_report = time.monotonic() + LAG_REPORT_S

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # librdkafka keeps a partition's pause across a rebalance, and one assigned while we
        # wait for Redis must wait too: set the state of every assigned partition ourselves.
        consumer.assign(partitions)
        if self._waiting_for_redis:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        log.info(
            "partitions_assigned",
            partitions=[p.partition for p in partitions],
            paused=self._waiting_for_redis,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Transactions never stay open across consume(), so nothing is pending here.
        log.info("partitions_revoked", partitions=[p.partition for p in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("partitions_lost", partitions=[p.partition for p in partitions])

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal():
            raise KafkaException(error)
        log.warning("consumer_error", error=str(error))
        return False

    # ---------------------------------------------------------------- one batch
    def _process_with_retries(self, batch: list[Message], stop: threading.Event) -> None:
        """One transaction for the batch; on a passing failure abort, rewind and back off.

        Rewinding puts the batch back in the consumer, so the next consume() retries it.
        """
        try:
            # Every line about this batch (aborts, dead letters, waits) says which one it is.
            with structlog.contextvars.bound_contextvars(batch=batch_span(batch)):
                self._process(batch)
            self._failures = 0
        except (
            RetryBatchError,
            StateChangedError,
            AllocationConflictError,
            LockTimeoutError,
            LeaseLostError,
            ReplicasBehindError,
            redis.RedisError,
        ) as exc:
            self._abort_and_rewind(batch, reason=type(exc).__name__, error=exc)
            if isinstance(exc, redis.RedisError):
                self._wait_for_redis(stop)
            elif isinstance(exc, StateChangedError):
                force = str(exc) if isinstance(exc, StateBehindLogError) else None
                self.metrics.ready.set(0)  # /readyz: not ready while recovering
                if self._adopt(stop, lambda: self.recovery.ensure(self.epoch, force)):
                    self.metrics.ready.set(1)
            else:
                self._backoff(stop)

    def _adopt(self, stop: threading.Event, ensure: Callable[[], Valid]) -> bool:
        """Allocate from now on under the state `ensure` made valid; False if stopped first."""
        valid = self._with_redis(stop, ensure)
        if valid is None:
            return False
        self.epoch = valid.epoch
        for counter, value in valid.floors.items():
            self.floors[counter] = max(self.floors.get(counter, 0), value)
        return True

    def _process(self, batch: list[Message]) -> None:
        """Sort librdkafka's errors into our three kinds wherever in the batch they arise."""
        with kafka_errors():
            self._process_batch(batch)

    def _process_batch(self, batch: list[Message]) -> None:
        started = time.monotonic()
        decoded = decode_batch(batch, self.input_codec, self.settings.router)
        self.transaction.begin()
        numbers: BatchNumbers | None = None
        if decoded.good:
            assert self.epoch is not None
            lock_started = time.monotonic()
            numbers = assign_numbers(
                [(e, s) for _, e, s in decoded.good], self.allocator, self.epoch, self.floors
            )
            self.metrics.lock_wait.observe(time.monotonic() - lock_started)
        dead = dead_letters(decoded, numbers)
        for message, error in dead:
            self._dead_letter(message, error)
        if numbers is not None:
            self._produce_outputs(numbers)
            self.transaction.flush()
            self._fence()
            failpoints.reached("before_commit")
        self.transaction.commit(next_offsets(batch), self.consumer.consumer_group_metadata())
        self.metrics.kafka_up.set(1)
        if numbers is not None:
            for counter, value in numbers.watermarks.items():
                self.floors[counter] = max(self.floors.get(counter, 0), value)
        account_batch(self.metrics, batch, dead, numbers, time.monotonic() - started)

    def _fence(self) -> None:
        """DESIGN §5.4: our records are on the broker, holding back read_committed readers.
        If Redis is no longer the state we allocated against (lost, rebuilt, restarted from
        older data, failed over), a recovery may not have seen them: abort. Otherwise record
        how far the output partitions are covered, and wait for the replicas (§5.1)."""
        assert self.epoch is not None
        topic = self.settings.output_topic
        delivered = self.transaction.delivered
        replicas = self.allocator.fence(
            self.epoch, {checkpoint_field(topic, p): o for p, o in delivered.items()}
        )
        wanted = self.settings.redis_replica_acks
        if wanted is None:  # auto: one acknowledgement whenever the primary has a replica
            wanted = min(1, replicas)
        self.allocator.wait_for_replicas(wanted, self.settings.redis_wait_ms)

    def _dead_letter(self, message: Message, error: Exception) -> None:
        # A record too large to write again with its headers goes as a reference to it.
        key, value, headers = dead_letter_record(
            message.key(), message.value(), dead_letter_headers(message, error)
        )
        self.transaction.produce(self.settings.dlq_topic, key=key, value=value, headers=headers)
        log.warning(
            "dead_lettered",
            reason=type(error).__name__,
            error=str(error)[:300],
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
        )

    def _produce_outputs(self, numbers: BatchNumbers) -> None:
        assigned_at = now_utc()
        for item in numbers.assigned:
            record = output_record(item, self.output_codec, assigned_at)
            self.transaction.produce(
                self.settings.output_topic,
                key=record.key,
                value=record.value,
                headers=record.headers,
                track=True,  # where they land: the fence records it as the checkpoint
            )
        for counter, value in numbers.watermarks.items():
            self.transaction.produce(
                self.settings.watermark_topic,
                key=watermark_key(counter, self.settings.transactional_id),
                value=str(value).encode(),
            )

    # ---------------------------------------------------------------- abort and rewind
    def _abort_and_rewind(self, batch: list[Message], reason: str, error: Exception) -> None:
        self.metrics.aborts.labels(reason=reason).inc()
        log.warning("batch_aborted", reason=reason, error=str(error)[:300], records=len(batch))
        self.transaction.abort()
        self._rewind(batch)

    def _rewind(self, messages: list[Message]) -> None:
        """Seek each partition back to the first record of the batch: its committed offset."""
        firsts: dict[tuple[str, int], int] = {}
        for m in messages:
            topic, partition, offset = position(m)
            firsts[(topic, partition)] = min(firsts.get((topic, partition), offset), offset)
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), offset in firsts.items():
            if (topic, partition) in assigned:
                self.consumer.seek(TopicPartition(topic, partition, offset))

    # ---------------------------------------------------------------- waiting
    def _backoff(self, stop: threading.Event) -> None:
        self._failures += 1
        stop.wait(min(MAX_BACKOFF_S, 0.05 * 2**self._failures))

    def _wait_for_redis(self, stop: threading.Event) -> None:
        """Pause consumption and poll Redis with backoff; resume when it answers."""
        self.metrics.redis_up.set(0)
        self.metrics.ready.set(0)
        self._waiting_for_redis = True
        paused = self.consumer.assignment()
        self.consumer.pause(paused)
        log.error("redis_unavailable_pausing", partitions=len(paused))
        waited = 0
        while not stop.is_set():
            # Keep serving the group (rebalance callbacks, max.poll.interval) while paused.
            # A partition assigned meanwhile is not paused: put back all it delivered, each
            # partition to its first record (one seek per message would keep only the last).
            consumed = self.consumer.consume(num_messages=100, timeout=0)
            self._rewind([m for m in consumed if m.error() is None])
            self._backoff(stop)
            try:
                self.redis_ping()
                break
            except redis.RedisError:
                waited += 1
        self._failures = 0
        self._waiting_for_redis = False
        self.consumer.resume(self.consumer.assignment())
        self.metrics.redis_up.set(1)
        self.metrics.ready.set(1)
        log.info("redis_available_resuming", attempts=waited + 1)

    def _with_redis(self, stop: threading.Event, call: Callable[[], Valid]) -> Valid | None:
        """Run call, waiting out Redis outages and lock timeouts; None if stopped first."""
        while not stop.is_set():
            try:
                result = call()
                self._failures = 0
                self.metrics.redis_up.set(1)
                return result
            except (redis.RedisError, LockTimeoutError, LeaseLostError, StateChangedError) as exc:
                log.warning("redis_retry", error=str(exc)[:200])
                self.metrics.redis_up.set(0)
                self._backoff(stop)
        return None
