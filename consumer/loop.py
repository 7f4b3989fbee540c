"""The exactly-once loop (DESIGN §4): consume a batch, assign numbers, produce the outputs and
the consumed offsets in one Kafka transaction, commit.

Errors fall in three kinds, as confluent-kafka documents them: retriable (retry the call),
txn_requires_abort (abort, rewind to the committed offsets, go again) and fatal (stop). Redis
trouble aborts and rewinds too, then pauses consumption until Redis answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import redis
import structlog
from confluent_kafka import Consumer, Message

from consumer.accounting import StageClock, account_batch
from consumer.assign import Assigned, BatchNumbers, assign_numbers
from consumer.claims import ClaimsBehindError, ClaimsLog, Ranges
from consumer.kafka_txn import KafkaTransaction, RetryBatchError, kafka_errors
from consumer.merges import MergeOutcome, apply_merges, merge_claims
from consumer.metrics import ServiceMetrics
from consumer.outputs import (
    Decoded,
    SideTopic,
    Topics,
    batch_claims,
    batch_records,
    batch_span,
    dead_letters,
    decode_batch,
    merge_records,
    next_offsets,
    search_records,
    sent_ms,
)
from consumer.partitions import InputPartitions
from consumer.recovery import StateRecovery, Valid, checkpoint_field
from consumer.renderings import guard_renderings
from customer_ids.adapters import failpoints
from customer_ids.adapters.logs import get_logger
from customer_ids.adapters.search_index import SearchIndex
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import TemporaryError
from customer_ids.domain.events import CustomerErasureRequested, now_utc
from customer_ids.domain.search_terms import event_terms
from customer_ids.store.leases import LeaseLostError, LockTimeoutError
from customer_ids.store.ports import (
    AllocationConflictError,
    Forgotten,
    StateBehindLogError,
    StateChangedError,
    TermsStore,
    TermsUpdate,
)
from customer_ids.store.redis_store import RedisNumberStore, ReplicasBehindError
from customer_ids.wire.codec import RecordCodec

log = get_logger(__name__)
MAX_BACKOFF_S = 5.0
MAX_SHOWN = 20  # possible duplicates named on one output record


@dataclass
class AssignmentService:
    settings: Settings
    consumer: Consumer
    transaction: KafkaTransaction
    allocator: RedisNumberStore
    recovery: StateRecovery
    metrics: ServiceMetrics
    input_codec: RecordCodec
    output_codec: RecordCodec
    redis_ping: Callable[[], object]
    claims: ClaimsLog
    terms: TermsStore
    erasure_codec: RecordCodec
    merge_codec: RecordCodec
    epoch: str | None = None
    # Highest value known committed per counter (recovery's reading of the log, then our own
    # commits): a counter below it means Redis went back in time.
    floors: dict[str, int] = field(default_factory=dict)
    _failures: int = 0

    def __post_init__(self) -> None:
        self.partitions = InputPartitions(self.consumer, self.metrics)
        self.topics = Topics(
            self.settings.output_topic,
            self.settings.dlq_topic,
            self.settings.watermark_topic,
            self.settings.search_topic,
        )
        key = self.settings.search_key
        self.terms_of = partial(event_terms, key.get_secret_value().encode()) if key else None
        self.search = SearchIndex(self.allocator.client, self.allocator.keys) if key else None

    # ---------------------------------------------------------------- lifecycle
    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; raises FencedError when a newer instance took over,
        ConfigError when the number formats conflict with ones already in use."""
        # First: a predecessor with our transactional.id that died mid-batch left its
        # transaction open, and every read_committed read below would wait for it.
        self.transaction.init()
        self.metrics.kafka_up.set(1)
        if not self._record_renderings(stop):
            return
        if not self._adopt(stop, lambda: self.recovery.ensure(None)):
            return
        self.partitions.subscribe(
            [self.settings.input_topic, self.settings.erasure_topic, self.settings.merge_topic]
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
                batch = self.partitions.poll_batch(
                    self.settings.batch_size, self.settings.batch_wait_ms / 1000
                )
                if batch:
                    self._process_with_retries(batch, stop)
        finally:
            self.metrics.ready.set(0)

    def _record_renderings(self, stop: threading.Event) -> bool:
        """Check and record this configuration's number formats (consumer/renderings.py).
        An earlier transaction still open in the watermark partition (an instance paused or
        killed mid-batch) holds the check: abort ours well inside its own timeout, wait, try
        again. False if stopped first."""
        while not stop.is_set():
            try:
                with kafka_errors():
                    guard_renderings(self.settings, self.transaction, self.claims)
                self._failures = 0
                return True
            except (ClaimsBehindError, RetryBatchError) as exc:
                log.warning("waiting_for_open_transactions", error=str(exc)[:300])
                self._backoff(stop)
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
            TemporaryError,
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
        stages = StageClock()
        decoded = decode_batch(
            batch,
            self.input_codec,
            self.settings.router,
            self.erasure_codec,
            self.settings.erasure_topic,
            SideTopic(self.settings.merge_topic, self.merge_codec),
        )
        self.transaction.begin()
        stages.lap("decode")
        numbers: BatchNumbers | None = None
        search: dict[str, str | None] = {}
        duplicates: dict[str, list[str]] = {}
        # Read before any customer is: a merge applied after this, anywhere, refuses our fence.
        merge_generation = self.allocator.merge_generation()
        if decoded.good:
            assert self.epoch is not None
            self._learn_floors()
            numbers = assign_numbers(
                [(e, s) for _, e, s in decoded.good], self.allocator, self.epoch, self.floors
            )
            self.metrics.lock_wait.observe(stages.lap("allocate"))
            search.update(self._index(decoded, numbers, duplicates))
        # After the batch's assignments: of a creation and an erasure in one batch, the
        # erasure wins unless the creation is newer (their order across topics is not known).
        removed: dict[str, int] = {}
        for message, erasure in decoded.erasures:
            forgotten = self._forget(message, erasure)
            removed[erasure.customer_key] = forgotten.removed
            search[erasure.customer_key] = forgotten.value
        merged = MergeOutcome()
        extra: dict[str, set[int]] = {}
        if decoded.merges:
            assert self.epoch is not None
            merged = apply_merges(decoded.merges, self.allocator, self.epoch)
            merge_generation = merged.generation or merge_generation
            self._read_all_claims()  # what is known committed decides what the merge claims
            extra = merge_claims(merged.changes, self.claims.known)
        dead = dead_letters(decoded, numbers) + merged.refused
        claims = (
            batch_claims(numbers, self.claims.known, extra) if numbers is not None or extra else {}
        )
        for r in (
            batch_records(
                dead,
                numbers,
                self.topics,
                self.output_codec,
                self.settings.transactional_id,
                now_utc(),
                claims=claims,
                floors=self.floors,
                duplicates=duplicates,
            )
            + merge_records(merged.changes, self.topics.output, self.output_codec, now_utc())
            + search_records(search, self.topics.search)
        ):
            self.transaction.produce(
                r.topic, key=r.key, value=r.value, headers=r.headers, track=r.track, claim=r.claim
            )
        stages.lap("encode")
        if numbers is not None or search or merged.changes:
            self.transaction.flush()
            stages.lap("flush")
            self._fence(claims, merge_generation)
            stages.lap("fence")
            failpoints.reached("before_commit")
        self.transaction.commit(next_offsets(batch), self.consumer.consumer_group_metadata())
        stages.lap("commit")
        self.metrics.kafka_up.set(1)
        self.claims.own_committed(claims)
        for counter, ranges in claims.items():
            self.floors[counter] = max(self.floors.get(counter, 0), ranges[-1][1])
        account_batch(self.metrics, batch, dead, numbers, stages)
        for change in merged.changes:
            log.info(
                "customer_merge_applied",
                customer=change.customer_key,
                action=change.cause.action,
                merged_into=change.assignment.merged_into,
                number=change.assignment.number,
                event_id=change.cause.event_id,
            )
        for _, erasure in decoded.erasures:
            log.info(
                "customer_forgotten",
                customer=erasure.customer_key,
                requested_by=erasure.requested_by,
                event_id=erasure.event_id,
                search_entries_removed=removed[erasure.customer_key],
            )

    def _index(
        self, good: Decoded, numbers: BatchNumbers, duplicates: dict[str, list[str]]
    ) -> dict[str, str | None]:
        """Find each assigned customer under the digests of all its events in the batch, each
        digest with the time its newest event was sent (an erasure sent later covers it); per
        customer all it is found under now, for the search topic. Written on every attempt:
        a retry after an abort must write its own record, whatever the first left in Redis."""
        if self.terms_of is None:
            return {}
        found: dict[str, dict[str, int]] = {}
        for (message, _, _), outcome in zip(good.good, numbers.outcomes, strict=True):
            if not isinstance(outcome, Assigned):
                continue
            sent = sent_ms(message)
            digests = found.setdefault(outcome.event.customer_key, {})
            for digest in self.terms_of(outcome.event):
                digests[digest] = max(digests.get(digest, 0), sent)
        entries = {key: TermsUpdate(d) for key, d in found.items() if d}
        duplicates.update(self._possible_duplicates(found, numbers))
        assert self.epoch is not None
        values = self.terms.update(self.epoch, entries) if entries else {}
        return {key: value or None for key, value in values.items()}

    def _possible_duplicates(
        self, found: Mapping[str, Mapping[str, int]], numbers: BatchNumbers
    ) -> dict[str, list[str]]:
        """Per customer of the batch, the numbers of the other customers found under one of
        its email or phone digests (already indexed, or in this batch): possible duplicates,
        shown as numbers only. Customers merged together share a number and are left out."""
        by_digest: dict[str, set[str]] = {}
        for key, digests in found.items():
            for digest in digests:
                by_digest.setdefault(digest, set()).add(key)
        assert self.search is not None  # with terms_of
        indexed = self.search.find_each({key: set(d) for key, d in found.items()})
        others = {
            key: (indexed.get(key, set()) | {k for d in digests for k in by_digest[d]}) - {key}
            for key, digests in found.items()
        }
        wanted = sorted(set().union(*others.values())) if others else []
        if not wanted:
            return {}
        stored = self.allocator.lookup(wanted)
        own = {item.event.customer_key: item.assignment.number for item in numbers.assigned}
        own.update({k: v.number for k, v in stored.items()})
        return {
            # Bounded: a digest many share (a switchboard's phone) must not swell the record.
            key: sorted({own[o] for o in found_keys if o in own} - {own.get(key)})[:MAX_SHOWN]
            for key, found_keys in others.items()
            if found_keys
        }

    def _forget(self, message: Message, erasure: CustomerErasureRequested) -> Forgotten:
        """What the customer was found under before the erasure was sent goes (its number
        stays: README, "Personal data")."""
        assert self.epoch is not None
        return self.terms.forget(self.epoch, erasure.customer_key, sent_ms(message))

    def _learn_floors(self) -> None:
        """What every instance committed, as far as the claims reader has it without waiting:
        a counter below it is caught before it allocates (the claim check is the proof)."""
        self.claims.catch_up()
        for counter, value in self.claims.floors.items():
            if value > self.floors.get(counter, 0):
                self.floors[counter] = value

    def _read_all_claims(self) -> None:
        """The claims log read to its end (a merge batch is rare: the wait is worth it)."""
        wait_s = float(self.settings.kafka_call_timeout_s)
        self.claims.read_until(self.claims.end_offset(wait_s), wait_s)

    def _fence(self, claims: Mapping[str, Ranges], merge_generation: int | None = None) -> None:
        """DESIGN §5.4: our records are on the broker, holding back read_committed readers.
        If Redis is no longer the state we allocated against (lost, rebuilt, restarted from
        older data, failed over), a recovery may not have seen them: abort. If any number we
        claim was committed by a batch before ours (§5.6: Redis went back where none of the
        checks above can see it), abort. Otherwise record how far the output partitions are
        covered, and wait for the replicas (§5.1)."""
        assert self.epoch is not None
        delivered = self.transaction.delivered
        replicas = self.allocator.fence(
            self.epoch,
            {checkpoint_field(t, p): o for (t, p), o in delivered.items()},
            merge_generation,
        )
        if claims:
            if self.transaction.claimed is None:
                raise RetryBatchError("the batch's claim record was not delivered")
            waited = time.monotonic()
            # Well inside our own transaction's timeout: past it the broker aborts ours.
            wait_s = min(
                self.settings.kafka_call_timeout_s, self.settings.transaction_timeout_ms / 2000
            )
            self.claims.check_claims(claims, self.transaction.claimed, wait_s)
            self.metrics.claims_wait.observe(time.monotonic() - waited)
        wanted = self.settings.redis_replica_acks
        if wanted is None:  # auto: one acknowledgement whenever the primary has a replica
            wanted = min(1, replicas)
        self.allocator.wait_for_replicas(wanted, self.settings.redis_wait_ms)

    # ---------------------------------------------------------------- abort and rewind
    def _abort_and_rewind(self, batch: list[Message], reason: str, error: Exception) -> None:
        self.metrics.aborts.labels(reason=reason).inc()
        log.warning("batch_aborted", reason=reason, error=str(error)[:300], records=len(batch))
        self.transaction.abort()
        self.partitions.rewind(batch)

    # ---------------------------------------------------------------- waiting
    def _backoff(self, stop: threading.Event) -> None:
        self._failures += 1
        stop.wait(min(MAX_BACKOFF_S, 0.05 * 2**self._failures))

    def _wait_for_redis(self, stop: threading.Event) -> None:
        """Pause consumption and poll Redis with backoff; resume when it answers."""
        self.metrics.redis_up.set(0)
        self.metrics.ready.set(0)
        log.error("redis_unavailable_pausing", partitions=self.partitions.pause())
        waited = 0
        while not stop.is_set():
            self.partitions.serve_group_while_paused()
            self._backoff(stop)
            try:
                self.redis_ping()
                break
            except redis.RedisError:
                waited += 1
        self._failures = 0
        self.partitions.resume()
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
