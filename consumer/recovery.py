"""Make Redis valid again from the Kafka log (DESIGN §5): the output topic is the record of truth.

A recovery runs under one leased, renewed lock and is all or nothing: it first marks the state
`rebuilding`, so nobody allocates or commits against it; only a completed recovery (the one
whose token is still in the marker) declares it valid, with a new epoch, the identity of the
server it ran on, and the checkpoint it reached. A recovery that dies half way leaves the
marker, and the next one starts over.

What is read: the watermark topic (small, compacted) for counter floors, and the output topic
from the checkpoint that the surviving state records. Every batch raises that checkpoint after
its records reached the broker and before it commits, so a Redis that went back to an older
state still holds every assignment below its own checkpoint (a lagging replica, an AOF that
lost its tail and a snapshot are all a prefix of the writes). A failover then costs reading
the last seconds of the log, not all of it; a wiped Redis has no checkpoint and is rebuilt in
full.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

from confluent_kafka import Message

from consumer.claims import (
    CLAIM_PREFIX,
    CONFIG_PREFIX,
    IMPORT_PREFIX,
    import_record,
    watermark_counter,
)
from consumer.metrics import ServiceMetrics
from consumer.outputs import sent_ms
from customer_ids.adapters import failpoints
from customer_ids.adapters.log_reader import end_offsets, read_topics_to_end
from customer_ids.adapters.logs import get_logger
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import DecodeError, ValidationError
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.store.leases import Lease, LockTimeoutError
from customer_ids.store.ports import MERGE_SEPARATOR, StoredAssignment, Terms
from customer_ids.store.redis_store import RedisNumberStore
from customer_ids.store.terms import RedisTermsStore
from customer_ids.wire.headers import ASSIGNMENT_HEADER

log = get_logger(__name__)
LOCK_RECHECK_S = 1.0  # while waiting for the recovery lock, look whether the state is valid
RESTORE_CHUNK = 50_000  # written while the next is read; larger chunks group buckets better


def checkpoint_field(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


@dataclass
class LogState:
    """What the Kafka log says Redis must hold at least, counted as it is read."""

    floors: dict[str, int] = field(default_factory=dict)
    restored: int = 0
    records_read: int = 0
    erasures_applied: int = 0  # customers an older Redis still held search entries of
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> records

    def floor(self, counter: str, value: int) -> None:
        if value > self.floors.get(counter, 0):
            self.floors[counter] = value

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _on_watermark(state: LogState) -> Callable[[Message], None]:
    def handle(message: Message) -> None:
        state.records_read += 1
        key = message.key() or b""
        if key.startswith(IMPORT_PREFIX):  # an import raised these counters
            try:
                for counter, value in import_record(message.value())["highest"].items():
                    state.floor(counter, value)
            except ValueError:
                state.skip("import record unreadable")
            return
        if key.startswith((CONFIG_PREFIX, CLAIM_PREFIX)):
            return  # a rendering or a claim (consumer/claims.py), not a floor
        try:
            state.floor(watermark_counter(message.key()), int(message.value() or 0))
        except ValueError:
            state.skip("watermark not a number")

    return handle


Headers = list[tuple[str, bytes]]


def _assignment_of(
    message: Message, headers: Headers, codec_decode: Callable[[bytes], object]
) -> tuple[str, str]:
    """(customer key, stored form) of one output record; the header spares an Avro decode."""
    if headers and headers[-1][0] == ASSIGNMENT_HEADER:  # where the service puts it
        return (message.key() or b"").decode(), headers[-1][1].decode()
    for name, value in headers:
        if name == ASSIGNMENT_HEADER:
            return (message.key() or b"").decode(), value.decode()
    event = CustomerIdAssigned.from_record(codec_decode(message.value()))  # type: ignore[arg-type]
    if event.merged_into is not None:
        # Without the header the merged customer's own counter and value are not known:
        # restoring it as holding the survivor's number would be wrong, so it is skipped.
        raise ValidationError("a merged customer's record without its assignment header")
    stored = StoredAssignment(event.sequence_name, event.sequence, event.customer_number)
    return event.customer_key, stored.encode()


# Assignments (customer -> stored form), and each customer's search topic value as the topic
# last says it (None: erased).
Chunk = tuple[dict[str, str], dict[str, str | None]]


def read_watermarks(settings: Settings) -> dict[str, int]:
    """Highest committed value per counter, from the small compacted watermark topic.

    Each instance writes its own key per counter, so the last record of every key is that
    instance's highest, and the maximum over keys is a safe floor (DESIGN §5.5)."""
    state = LogState()
    read_topics_to_end(
        settings.bootstrap_servers,
        {settings.watermark_topic: _on_watermark(state)},
        timeout=None,
        must_exist=True,
    )
    return state.floors


def _unless_erased(value: bytes | None, erased_at: int | None) -> str | None:
    """A search topic value, without the digests an erasure covers (None: nothing left)."""
    if value is None:
        return None
    text = value.decode()
    if erased_at is not None:
        text = Terms.decode(text).newer_than(erased_at).encode()
    return text or None


def _report_progress(handled: int, partitions_left: int) -> None:
    log.info("recovery_progress", records_read=handled, partitions_left=partitions_left)


def read_log_state(
    settings: Settings,
    on_chunk: Callable[[Chunk], None],
    start: dict[tuple[str, int], int] | None = None,
    ends: dict[tuple[str, int], int] | None = None,
    erased: dict[str, int] | None = None,
) -> LogState:
    """Counter floors from the watermark and output topics, every committed assignment and
    every customer's search digests (the service's own search topic) from `start` on, handed
    to `on_chunk` in chunks as they are read (memory stays bounded). Tombstones and records
    that are not ours are counted and skipped, never fatal."""
    state = LogState()
    chunk: dict[str, str] = {}
    search: dict[str, str | None] = {}
    floors = state.floors
    erased = erased or {}
    decode = framed_codec(settings.registry(), settings.output_topic, "CustomerIdAssigned").decode

    # The hot path of every recovery: a few microseconds a record, no objects made.
    def on_assigned(message: Message) -> None:
        state.records_read += 1
        if message.value() is None:
            state.skip("tombstone")
            return
        try:
            headers: Headers = message.headers() or []  # type: ignore[assignment]
            customer, stored = _assignment_of(message, headers, decode)
            counter, value, _ = stored.split("|", 2)
            number = int(value)
        except (DecodeError, ValidationError, ValueError, KeyError, TypeError, AttributeError):
            state.skip("not a CustomerIdAssigned record")
            return
        chunk[customer] = stored
        _raise_floors(floors, counter, number, stored)
        if len(chunk) >= RESTORE_CHUNK:
            hand_over()

    def on_search(message: Message) -> None:
        # The last record of a customer says all it is found under; a tombstone, or a record
        # no newer than the customer's erasure: nothing.
        state.records_read += 1
        customer, value = (message.key() or b"").decode(), message.value()
        search[customer] = _unless_erased(value, erased.get(customer))
        if len(search) >= RESTORE_CHUNK:
            hand_over()

    def hand_over() -> None:
        on_chunk((chunk.copy(), search.copy()))
        state.restored += len(chunk)
        chunk.clear()
        search.clear()

    read_topics_to_end(
        settings.bootstrap_servers,
        {
            settings.watermark_topic: _on_watermark(state),
            settings.output_topic: on_assigned,
            settings.search_topic: on_search,
        },
        timeout=None,
        start=start,
        ends=ends,
        # A transaction left open by a dead instance holds the read until the broker aborts it.
        stall_s=settings.transaction_timeout_ms / 1000 + 120,
        progress=_report_progress,
        must_exist=True,
    )
    if chunk or search:
        hand_over()
    return state


def _raise_floors(floors: dict[str, int], counter: str, value: int, stored: str) -> None:
    """The record's value is taken; a merged customer's own value too (it answers with the
    survivor's number, and its own stays its)."""
    if value > floors.get(counter, 0):
        floors[counter] = value
    if MERGE_SEPARATOR in stored:
        own = StoredAssignment.decode(stored).own_assignment
        if own.value > floors.get(own.counter, 0):
            floors[own.counter] = own.value


def rebuild_map(
    settings: Settings,
    store: RedisNumberStore,
    start: dict[tuple[str, int], int] | None = None,
    ends: dict[tuple[str, int], int] | None = None,
    lease: Lease | None = None,
) -> LogState:
    """Read the log and restore its assignments into Redis, one chunk written while the next
    is read (one writer thread, so chunks land in log order). The reader waits for the write
    before last: at most two chunks are held, however large the topic (memory stays bounded
    when Redis writes slower than Kafka reads, which it does)."""

    terms = RedisTermsStore(store.client, store.keys)

    def write(chunk: Chunk) -> None:
        if lease is not None:
            lease.check()  # a recovery that lost its lease stops writing
        assignments, search = chunk
        store.restore(assignments)
        terms.restore(search)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore") as writer:
        pending: deque[Future[None]] = deque()

        def hand_over(chunk: Chunk) -> None:
            while len(pending) >= 2:
                pending.popleft().result()  # re-raises a failed write
            pending.append(writer.submit(write, chunk))

        # Every erasure, read first: it filters what the search topic restores and is applied
        # again at the end (a Redis put back to before it may hold what the topic no longer
        # shows, once the tombstone is compacted away).
        erased = read_erasures(settings)
        state = read_log_state(settings, hand_over, start, ends, erased)
        while pending:
            pending.popleft().result()
    if lease is not None:
        lease.check()
    state.erasures_applied = terms.apply_erasures(erased)
    return state


def read_erasures(settings: Settings) -> dict[str, int]:
    """customer -> when its latest erasure was sent (the record's Kafka timestamp, ms: the
    time the service compared when it applied it), from the compacted erasure topic."""
    erased: dict[str, int] = {}

    def take(message: Message) -> None:
        key = message.key()
        if key and message.value() is not None:
            customer = key.decode(errors="replace")
            erased[customer] = max(erased.get(customer, 0), sent_ms(message))

    read_topics_to_end(
        settings.bootstrap_servers,
        {settings.erasure_topic: take},
        timeout=None,
        must_exist=True,  # "no erasures" must never be a topic that did not answer
    )
    return erased


@dataclass(frozen=True)
class Valid:
    """A state to allocate under: its epoch and the highest committed value per counter."""

    epoch: str
    floors: dict[str, int]


class StateRecovery:
    """Keeps Redis at least as far as the Kafka log, recovering it when it went back."""

    def __init__(
        self,
        store: RedisNumberStore,
        settings: Settings,
        metrics: ServiceMetrics,
        on_wait: Callable[[str | None], None] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._on_wait = on_wait or (lambda reason: None)

    def ensure(self, known_epoch: str | None, force: str | None = None) -> Valid:
        """A valid state to allocate under. Adopts one that another instance made valid;
        recovers when the state is lost, being rebuilt by nobody, on a server other than the
        one it was validated on, or (`force`, the reason) known to be behind the log."""
        status = self._store.status()
        if status.valid and (force is None or status.epoch != known_epoch):
            assert status.epoch is not None
            return Valid(status.epoch, read_watermarks(self._settings))
        self._on_wait("Redis is behind the Kafka log: recovering")
        try:
            with ExitStack() as held:
                lease = self._recovery_lock(held, known_epoch, force)
                if isinstance(lease, Valid):
                    return lease
                status = self._store.status()  # another instance may have finished meanwhile
                if status.valid and (force is None or status.epoch != known_epoch):
                    assert status.epoch is not None
                    return Valid(status.epoch, read_watermarks(self._settings))
                reason = force or _reason(
                    status.epoch, status.stored_identity, status.live_identity
                )
                # A counter below the log on the same server is not a prefix of its history
                # (eviction, a deleted key): nothing below the checkpoint can be trusted.
                return self._recover(reason, status.epoch, full=force is not None, lease=lease)
        finally:
            self._on_wait(None)

    def _recovery_lock(
        self, held: ExitStack, known_epoch: str | None, force: str | None
    ) -> Lease | Valid:
        """The recovery lock, or the state another holder made valid while we waited (an
        import takes the lock chunk after chunk: waiting for a free moment could take all the
        import long)."""
        while True:
            try:
                return held.enter_context(
                    self._store.leases.hold([self._store.keys.recovery_lock], wait_s=LOCK_RECHECK_S)
                )
            except LockTimeoutError:
                status = self._store.status()
                if status.valid and (force is None or status.epoch != known_epoch):
                    assert status.epoch is not None
                    return Valid(status.epoch, read_watermarks(self._settings))

    def _recover(self, reason: str, seen_epoch: str | None, full: bool, lease: Lease) -> Valid:
        started = time.monotonic()
        token = uuid.uuid4().hex
        store, settings = self._store, self._settings
        full, start_fields = store.begin_rebuild(token, seen_epoch, full)
        if not full and (problems := store.ledger_problems()):
            # Keys lost on the same server: what is below the checkpoint is not all there.
            # Said in Redis before anything is wiped, so a successor rebuilds in full too.
            store.escalate_rebuild(token)
            reason, full, start_fields = f"{reason}; {'; '.join(problems)}", True, {}
        log.warning("redis_recovery_started", reason=reason, full=full)
        failpoints.reached("recovery_started")
        if full:
            lease.check()  # a recovery that lost its lease must not wipe a valid state
            store.wipe_map()
        # The end is sampled after the marker: a batch that appends after it fails its fence.
        ends = {
            tp: high
            for tp, (low, high) in end_offsets(
                settings.bootstrap_servers,
                [settings.output_topic, settings.watermark_topic, settings.search_topic],
                must_exist=True,
            ).items()
            if high > low
        }
        # Where each output and search partition was covered (the fence's checkpoint).
        output_parts = [
            tp for tp in ends if tp[0] in (settings.output_topic, settings.search_topic)
        ]
        start = {
            tp: start_fields[checkpoint_field(*tp)]
            for tp in output_parts
            if checkpoint_field(*tp) in start_fields
        }
        state = rebuild_map(settings, store, start, ends, lease)
        lease.check()
        store.raise_counters(state.floors)
        store.record_ledger()
        lease.check()
        epoch = uuid.uuid4().hex
        store.complete_rebuild(
            token, epoch, {checkpoint_field(*tp): ends[tp] for tp in output_parts}
        )
        seconds = time.monotonic() - started
        self._metrics.recoveries.inc()
        self._metrics.recovery_seconds.observe(seconds)
        log.warning(
            "redis_state_rebuilt_from_kafka",
            reason=reason,
            full=full,
            seconds=round(seconds, 3),
            records_read=state.records_read,
            customers_restored=state.restored,
            erasures_applied=state.erasures_applied,
            skipped=state.skipped,
            counters=state.floors,
        )
        return Valid(epoch, state.floors)


def _reason(epoch: str | None, stored: str | None, live: str) -> str:
    if epoch is None:
        return "epoch lost"
    if epoch.startswith("rebuilding:"):
        return "an earlier recovery did not finish"
    if stored != live:
        return f"server changed (restart, restore or failover): {stored} -> {live}"
    return "state behind the log"
