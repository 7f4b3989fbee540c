"""Rebuild Redis from Kafka (DESIGN §5): the output topic is the record of truth.

At start-up and whenever the epoch is missing: under every sequence lock, write a new epoch,
then read the watermark and output topics to their ends with read_committed (which waits for
transactions still open), raise each counter to the highest number committed, and restore the
customer -> number map. Only then does allocation go on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from confluent_kafka import Message

from consumer.allocator import SequenceAllocator, StoredAssignment
from consumer.metrics import ServiceMetrics
from customer_ids.codec import customer_id_assigned_codec
from customer_ids.constants import ASSIGNMENT_HEADER
from customer_ids.events import CustomerIdAssigned
from customer_ids.log_reader import read_to_end, read_topics_to_end
from customer_ids.logs import get_logger
from customer_ids.settings import Settings

log = get_logger("customer_ids.recovery")
RECOVERY_LEASE_S = 600.0
RESTORE_CHUNK = 50_000  # written while the next is read; larger chunks group buckets better


@dataclass(frozen=True)
class LogState:
    """What the Kafka log says Redis must hold at least."""

    floors: dict[str, int]
    assignments: dict[str, str]  # customer key -> StoredAssignment.encode() form
    records_read: int


def _watermark_reader(floors: dict[str, int]) -> Callable[[Message], None]:
    def on_watermark(message: Message) -> None:
        counter = (message.key() or b"").decode()
        floors[counter] = max(floors.get(counter, 0), int(message.value() or 0))

    return on_watermark


def read_watermarks(settings: Settings) -> tuple[dict[str, int], int]:
    """Highest committed value per counter, from the small compacted watermark topic."""
    floors: dict[str, int] = {}
    read = read_to_end(
        settings.bootstrap_servers, settings.watermark_topic, _watermark_reader(floors)
    )
    return floors, read


def read_log_state(
    settings: Settings, on_chunk: Callable[[dict[str, str]], None] | None = None
) -> LogState:
    """Highest committed value per counter and every committed assignment.

    With `on_chunk`, assignments are also handed over in chunks as they are read, so the
    caller can write them to Redis while the rest is still being read."""
    floors: dict[str, int] = {}
    assignments: dict[str, str] = {}
    chunk: dict[str, str] = {}
    codec = customer_id_assigned_codec()

    def on_assigned(message: Message) -> None:
        # The key is source_system/customer_id; the header repeats the assignment in its
        # stored form, so the common case needs no Avro decode. Older records are decoded.
        headers: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        for name, value in headers:
            if name == ASSIGNMENT_HEADER:
                stored = value.decode()
                customer = (message.key() or b"").decode()
                counter, number, _ = stored.split("|", 2)
                value_ = int(number)
                break
        else:
            event = CustomerIdAssigned.from_record(codec.decode(message.value()))
            # sequence_name is the counter, period included (e.g. D:20231015)
            counter, value_ = event.sequence_name, event.sequence
            stored = StoredAssignment(counter, value_, event.customer_number).encode()
            customer = event.customer_key
        assignments[customer] = stored
        if on_chunk is not None:
            chunk[customer] = stored
            if len(chunk) >= RESTORE_CHUNK:
                on_chunk(chunk.copy())
                chunk.clear()
        if value_ > floors.get(counter, 0):
            floors[counter] = value_

    read = read_topics_to_end(
        settings.bootstrap_servers,
        {settings.watermark_topic: _watermark_reader(floors), settings.output_topic: on_assigned},
    )
    if on_chunk is not None and chunk:
        on_chunk(chunk)
    return LogState(floors, assignments, read)


def rebuild_map(settings: Settings, allocator: SequenceAllocator) -> LogState:
    """Read the log and restore every assignment into Redis, one chunk written while the
    next is read (one writer thread, so chunks land in log order)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore") as writer:
        pending: list[Future[None]] = []
        state = read_log_state(
            settings, lambda c: pending.append(writer.submit(allocator.restore, c))
        )
        for future in pending:
            future.result()  # re-raise a failed write
    return state


class StateRecovery:
    """Keeps Redis at least as far as the Kafka log, rebuilding it when it was lost."""

    def __init__(
        self, allocator: SequenceAllocator, settings: Settings, metrics: ServiceMetrics
    ) -> None:
        self._allocator = allocator
        self._settings = settings
        self._metrics = metrics

    def ensure(self, known_epoch: str | None) -> str:
        """The epoch to allocate under. Rebuilds when Redis has none; adopts a newer one."""
        names = list(self._settings.router.names())
        with self._allocator.locked(names, lease_s=RECOVERY_LEASE_S):
            current = self._allocator.current_epoch()
            if current is not None and current != known_epoch:
                if known_epoch is None:
                    # Start-up: cheap insurance against a Redis that came back older than Kafka
                    # (the watermark topic is small; the output topic is not read).
                    floors, _ = read_watermarks(self._settings)
                    self._allocator.raise_counters(floors)
                return current
            return self._rebuild(reason="start-up" if known_epoch is None else "epoch lost")

    def _rebuild(self, reason: str) -> str:
        started = time.monotonic()
        epoch = uuid.uuid4().hex
        self._allocator.set_epoch(epoch)  # first: a batch that started before now will fail
        state = rebuild_map(self._settings, self._allocator)
        self._allocator.raise_counters(state.floors)
        seconds = time.monotonic() - started
        self._metrics.recoveries.inc()
        self._metrics.recovery_seconds.observe(seconds)
        log.warning(
            "redis_state_rebuilt_from_kafka",
            reason=reason,
            seconds=round(seconds, 3),
            records_read=state.records_read,
            customers_restored=len(state.assignments),
            counters=state.floors,
        )
        return epoch
