"""The serialization point for "these numbers are free" (DESIGN §5.6): the watermark topic's one
partition, read in offset order by every instance alike.

Every batch that hands out numbers writes, inside its transaction and before anything else in
that partition, one *claim* record: per counter the ranges of values it commits that were not
known to be committed already (its new numbers, and re-issued ones that no committed claim
holds yet), plus one value of the allocation generation, a counter every allocation step
advances whatever sequence it serves. After the batch's records reached the broker and before
it commits, the batch reads this partition read_committed up to its own claim. A
read_committed reader cannot pass an open transaction, so by then every claim before ours has
committed or aborted, and we have seen exactly the committed ones. If any claimed value is
already committed (or below the floor known when this reader started), the batch aborts:
Redis handed out a number twice, so it went back. Committed claims are therefore disjoint, in
one total order that Kafka keeps: Redis only proposes values, and nothing Redis forgets or
restores can make two committed claims share one. The generation catches a Redis put back as a
whole even when the next batch's counters were not touched: its generation was committed.
Configuration changes are ordered the same way (`config/` records).
"""

from __future__ import annotations

import bisect
import json
import time
import uuid
from collections.abc import Iterable, Mapping

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from customer_ids.adapters.kafka_io import client_config
from customer_ids.adapters.logs import get_logger
from customer_ids.domain.errors import TemporaryError
from customer_ids.domain.number_spaces import LEGACY_COUNTER, Rendering
from customer_ids.store.ports import StateBehindLogError

log = get_logger(__name__)
CONFIG_PREFIX = b"config/"
CLAIM_PREFIX = b"claim/"
# The shapes of imported legacy numbers (customer_ids/domain/imports.py): no template that
# could produce one may be used. Value: the shape.
LEGACY_PREFIX = b"config/legacy/"
# One record per import (customer_ids/tools/importing.py): per counter the value it had when
# the import began (below it the service may have handed numbers out) and the highest imported.
IMPORT_PREFIX = b"import/"

Ranges = list[tuple[int, int]]  # inclusive, sorted, disjoint


class ClaimsBehindError(TemporaryError):
    """The claims before ours did not resolve in time (an open transaction of another
    instance): abort and try the batch again."""


ImportRecord = dict[str, dict[str, int]]  # "below" and "highest": counter -> value


def import_record(value: bytes | None) -> ImportRecord:
    """An `import/<id>` record (tools/importing.py): per counter where it stood when the import
    began and the highest value imported. ValueError when it is not one."""
    try:
        record = json.loads(value or b"{}")
        return {
            part: {str(c): int(v) for c, v in record[part].items()} for part in ("below", "highest")
        }
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"not an import record: {exc}") from exc


def watermark_counter(key: bytes | None) -> str:
    """Watermark keys are `counter@transactional_id` (older ones just `counter`)."""
    return (key or b"").decode(errors="replace").split("@", 1)[0]  # counters hold no '@'


def ranges_of(values: Iterable[int]) -> Ranges:
    """Sorted values as inclusive ranges: 1, 2, 3, 7 -> (1, 3), (7, 7)."""
    out: Ranges = []
    for value in sorted(set(values)):
        if out and out[-1][1] == value - 1:
            out[-1] = (out[-1][0], value)
        else:
            out.append((value, value))
    return out


def claim_value(claims: Mapping[str, Ranges]) -> bytes:
    return json.dumps({c: [list(r) for r in rs] for c, rs in sorted(claims.items())}).encode()


def claim_record_key(transactional_id: str) -> bytes:
    """One key per instance: compaction keeps each instance's last claim."""
    return CLAIM_PREFIX + transactional_id.encode()


class Committed:
    """The values committed of one counter: all up to `floor` (what compaction may have folded
    away before this reader started), and exact ranges above it."""

    def __init__(self, floor: int = 0) -> None:
        self.floor = floor
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, low: int, high: int) -> None:
        """Merge [low, high] in; neighbours and overlaps become one range."""
        i = bisect.bisect_left(self._ends, low - 1)
        j = i
        while j < len(self._starts) and self._starts[j] <= high + 1:
            low, high = min(low, self._starts[j]), max(high, self._ends[j])
            j += 1
        self._starts[i:j], self._ends[i:j] = [low], [high]

    def holds_any(self, low: int, high: int) -> bool:
        if low <= self.floor:
            return True
        i = bisect.bisect_left(self._ends, low)
        return i < len(self._starts) and self._starts[i] <= high

    def holds(self, value: int) -> bool:
        return self.holds_any(value, value)

    def holds_exactly(self, low: int, high: int) -> bool:
        """As holds_any, by the claims read only: not all up to the floor. For an import's
        values, below floors that service commits above them raised (tools/importing.py)."""
        i = bisect.bisect_left(self._ends, low)
        return i < len(self._starts) and self._starts[i] <= high


class ClaimsLog:
    """A read_committed follower of the watermark partition: what is committed per counter,
    the highest committed value per counter (floors) and every recorded rendering, as far as
    it has read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.floors: dict[str, int] = {}
        self.committed: dict[str, Committed] = {}
        self.renderings: list[Rendering] = []
        self.legacy_shapes: set[str] = set()
        self.imports: dict[str, ImportRecord] = {}
        # Until the first read_until() returns, everything read is history: compaction may
        # have removed claims, so all up to each counter's highest value counts as committed.
        self._history = True
        # Every committed record below this offset has been read (a record, or the end the
        # broker reported: a read_committed end never passes an open transaction).
        self.reached = 0
        self._consumer = Consumer(
            client_config(
                bootstrap,
                {
                    "group.id": f"customer-ids-claims-{uuid.uuid4()}",  # assign() only
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                    # The fence waits for this reader: ask the broker often when at the end.
                    "fetch.wait.max.ms": 5,
                    "fetch.error.backoff.ms": 50,
                },
            )
        )
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def close(self) -> None:
        self._consumer.close()

    # ------------------------------------------------------------------ reading
    def catch_up(self) -> None:
        """Take in what has already arrived, without waiting."""
        while (message := self._consumer.poll(0)) is not None:
            self._take(message)

    def read_until(self, offset: int, timeout_s: float) -> None:
        """Read every committed record below `offset`; ClaimsBehindError after `timeout_s`
        (a transaction before `offset` still open)."""
        deadline = time.monotonic() + timeout_s
        while self.reached < offset:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClaimsBehindError(
                    f"{self.topic} not readable up to offset {offset} within {timeout_s:.0f}s "
                    f"(read to {self.reached}): a transaction before ours is still open"
                )
            message = self._consumer.poll(min(remaining, 0.2))
            if message is not None:
                self._take(message)
        self.end_history()

    def end_history(self) -> None:
        """Everything read so far is history: all up to each counter's highest value counts as
        committed (compaction may have removed its claims)."""
        if self._history:
            self._history = False
            for counter, highest in self.floors.items():
                self._of(counter).floor = max(self._of(counter).floor, highest)

    def end_offset(self, timeout_s: float) -> int:
        """The partition's end now (0 when the topic does not exist yet)."""
        try:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, 0), timeout=timeout_s
            )
        except KafkaException:
            return 0
        return int(high)

    def _of(self, counter: str) -> Committed:
        if counter not in self.committed:
            self.committed[counter] = Committed()
        return self.committed[counter]

    def _floor(self, counter: str, value: int) -> None:
        if value > self.floors.get(counter, 0):
            self.floors[counter] = value

    def _take(self, message: Message) -> None:
        error = message.error()
        offset = message.offset()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF and offset is not None:
                self.reached = max(self.reached, offset)
            else:
                log.warning("claims_read_error", error=error.str()[:200])
            return
        assert offset is not None
        self.reached = max(self.reached, offset + 1)
        key, value = message.key() or b"", message.value()
        if key.startswith(LEGACY_PREFIX):
            self.legacy_shapes.add((value or b"").decode(errors="replace"))
        elif key.startswith(IMPORT_PREFIX):
            self._take_import(key, value)
        elif key.startswith(CONFIG_PREFIX):
            self._take_rendering(key, value)
        elif key.startswith(CLAIM_PREFIX):
            self._take_claim(key, value)
        else:
            try:
                self._floor(watermark_counter(key), int(value or 0))
            except ValueError:
                log.warning("watermark_unreadable", key=key.decode(errors="replace"))

    def _take_rendering(self, key: bytes, value: bytes | None) -> None:
        if value:
            try:
                self.renderings.append(Rendering.from_json(value.decode()))
            except (ValueError, TypeError):
                log.warning("rendering_record_unreadable", key=key.decode(errors="replace"))

    def _take_import(self, key: bytes, value: bytes | None) -> None:
        try:
            record = import_record(value)
        except ValueError:
            log.warning("import_record_unreadable", key=key.decode(errors="replace"))
            return
        self.imports[key[len(IMPORT_PREFIX) :].decode()] = record
        # The import raised these counters: one below them went back (the claims of the
        # values imported there are checked exactly, not against this floor).
        for counter, highest in record["highest"].items():
            self._floor(counter, highest)

    def _take_claim(self, key: bytes, value: bytes | None) -> None:
        try:
            for counter, ranges in json.loads(value or b"{}").items():
                for low, high in ranges:
                    self._of(counter).add(int(low), int(high))
                    self._floor(counter, int(high))
        except (ValueError, TypeError, AttributeError):
            log.warning("claim_unreadable", key=key.decode(errors="replace"))

    def own_committed(self, claims: Mapping[str, Ranges]) -> None:
        """Our batch's claims, committed just now: known from this moment, before this reader
        gets to the record. A customer's next event comes in the next batch of this same
        instance (its input key decides the partition), and its number, re-issued, must not
        be claimed again as if an attempt had left it unclaimed: the check would find our
        own committed claim and take it for Redis gone back (a full rebuild for nothing)."""
        for counter, ranges in claims.items():
            for low, high in ranges:
                self._of(counter).add(low, high)
                self._floor(counter, high)

    # ------------------------------------------------------------------ the check
    def known(self, counter: str, value: int) -> bool:
        """Whether `value` of `counter` is known to be committed (by anyone). An imported
        number always is once Redis holds it: an import writes Redis only after its commit,
        and no instance numbers within the ranges imports raised counters over (a legacy
        number's counter is the imports' alone)."""
        if counter == LEGACY_COUNTER or self._imported(counter, value):
            return True
        committed = self.committed.get(counter)
        return committed is not None and committed.holds(value)

    def _imported(self, counter: str, value: int) -> bool:
        return any(
            record["below"].get(counter, 0) < value <= record["highest"].get(counter, 0)
            for record in self.imports.values()
        )

    def check_claims(self, claims: Mapping[str, Ranges], own_offset: int, timeout_s: float) -> None:
        """Our batch's claims, its claim record at `own_offset`: no value may be committed
        before us, else StateBehindLogError (Redis handed out a number another batch had
        already committed: it went back)."""
        self.read_until(own_offset, timeout_s)
        refuse_taken(claims, self.committed)


def refuse_taken(
    claims: Mapping[str, Ranges], committed: Mapping[str, Committed], exact: bool = False
) -> None:
    """StateBehindLogError naming each counter where a claimed value is already committed
    (`exact`: by the claims read, not counting all up to the floor)."""
    taken = [
        f"{counter} {low}-{high}"
        for counter, ranges in sorted(claims.items())
        for low, high in ranges
        if counter in committed
        and (
            committed[counter].holds_exactly(low, high)
            if exact
            else committed[counter].holds_any(low, high)
        )
    ]
    if taken:
        raise StateBehindLogError(
            "numbers already committed by a batch before ours: " + ", ".join(taken[:5])
        )
