"""A consumed batch as records, with no I/O: events or the errors that dead-letter them, every
record the batch's transaction writes (outputs, dead letters, watermarks), the offsets to
commit."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message, TopicPartition

from consumer.assign import Assigned, BatchNumbers
from consumer.claims import Ranges, claim_record_key, claim_value, ranges_of
from consumer.dead_letter import dead_letter_headers, dead_letter_record
from consumer.merges import MergeChange, held_values
from customer_ids.domain.errors import DecodeError, TemporaryError, ValidationError, reason_of
from customer_ids.domain.events import (
    CustomerCreated,
    CustomerErasureRequested,
    CustomerMergeRequested,
)
from customer_ids.domain.sequences import Router, Sequence
from customer_ids.store.ports import GENERATION, StoredAssignment
from customer_ids.wire.codec import RecordCodec
from customer_ids.wire.headers import ASSIGNMENT_HEADER

OUTPUT_EVENT_NAMESPACE = uuid.UUID("6f1c1c7e-8a51-4f43-9a57-1f0f0c7a3c11")


@dataclass
class Decoded:
    good: list[tuple[Message, CustomerCreated, Sequence]] = field(default_factory=list)
    bad: list[tuple[Message, Exception]] = field(default_factory=list)
    erasures: list[tuple[Message, CustomerErasureRequested]] = field(default_factory=list)
    merges: list[tuple[Message, CustomerMergeRequested]] = field(default_factory=list)


@dataclass(frozen=True)
class SideTopic:
    """A topic the service reads beside the input (erasures, merges), with its codec."""

    name: str
    codec: RecordCodec


def decode_batch(
    batch: list[Message],
    codec: RecordCodec,
    router: Router,
    erasure_codec: RecordCodec | None = None,
    erasure_topic: str | None = None,
    merges: SideTopic | None = None,
) -> Decoded:
    """Each record as an event with its sequence (or an erasure request, from the erasure
    topic, or a merge request), or the reason it cannot be one."""
    decoded = Decoded()
    side = {t for t in (erasure_topic if erasure_codec else None, merges and merges.name) if t}
    for message in batch:
        try:
            if side and message.topic() in side:
                _decode_side(message, decoded, erasure_codec, erasure_topic, merges)
                continue
            event = CustomerCreated.from_record(codec.decode(message.value()))
            sequence = router.route(event)
        except (DecodeError, ValidationError) as exc:
            decoded.bad.append((message, exc))
        except (KeyError, TypeError, AttributeError) as exc:
            decoded.bad.append((message, ValidationError(f"malformed record: {reason_of(exc)}")))
        except TemporaryError:
            raise  # a dependency (the registry) did not answer: the batch is tried again
        except Exception as exc:
            decoded.bad.append((message, DecodeError(f"unreadable record: {reason_of(exc)}")))
        else:
            decoded.good.append((message, event, sequence))
    return decoded


def _decode_side(
    message: Message,
    decoded: Decoded,
    erasure_codec: RecordCodec | None,
    erasure_topic: str | None,
    merges: SideTopic | None,
) -> None:
    """An erasure or a merge request, read beside the input."""
    if erasure_codec is not None and message.topic() == erasure_topic:
        erasure = CustomerErasureRequested.from_record(erasure_codec.decode(message.value()))
        decoded.erasures.append((message, erasure))
    elif merges is not None and message.topic() == merges.name:
        request = CustomerMergeRequested.from_record(merges.codec.decode(message.value()))
        decoded.merges.append((message, request))


def dead_letters(decoded: Decoded, numbers: BatchNumbers | None) -> list[tuple[Message, Exception]]:
    """Every record of the batch that goes to the dead-letter topic, with its reason: decided
    here once, for producing and for counting alike."""
    dead = list(decoded.bad)
    if numbers is not None:
        for (message, _, _), outcome in zip(decoded.good, numbers.outcomes, strict=True):
            if not isinstance(outcome, Assigned):
                dead.append((message, outcome))
    return dead


@dataclass(frozen=True)
class OutputRecord:
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


def output_record(
    item: Assigned, codec: RecordCodec, assigned_at: datetime, duplicates: Seq[str] = ()
) -> OutputRecord:
    """The CustomerIdAssigned record of one assigned number, with ids only: every subscriber
    reads it (search digests go to the service's own topic)."""
    event = item.event
    return assignment_record(
        event.customer_key,
        item.assignment,
        codec,
        assigned_at,
        # Same input event, same output id: downstream can dedupe on it.
        event_id=output_event_id(event.event_id),
        causation_id=event.event_id,
        duplicates=duplicates,
    )


def assignment_record(
    customer_key: str,
    assignment: StoredAssignment,
    codec: RecordCodec,
    assigned_at: datetime,
    *,
    event_id: str,
    causation_id: str,
    duplicates: Seq[str] = (),
) -> OutputRecord:
    """A CustomerIdAssigned record: what a customer answers with now (a merged one, the
    survivor's number, its own retired). Built as the record the codec writes, without making
    an event object per output only to take it apart again."""
    merged_into = assignment.merged_into
    source_system, _, customer_id = customer_key.partition("/")
    record = {
        "event_id": event_id,
        "causation_id": causation_id,
        "customer_id": customer_id,
        "source_system": source_system,
        "customer_number": assignment.number,
        "sequence_name": assignment.counter,
        "sequence": assignment.value,
        "assigned_at": assigned_at,
        "merged_into": merged_into,
        "retired_number": None if merged_into is None else assignment.own_assignment.number,
        "possible_duplicates": list(duplicates),
    }
    return OutputRecord(
        key=customer_key.encode(),
        value=codec.encode(record),
        headers=[
            ("causation_id", causation_id.encode()),
            # The assignment again, last, so a rebuild of Redis need not decode Avro.
            (ASSIGNMENT_HEADER, assignment.encode().encode()),
        ],
    )


def merge_records(
    changes: Seq[MergeChange], topic: str, codec: RecordCodec, at: datetime
) -> list[Produced]:
    """One output record per customer a merge or unmerge changed, in order (the last of a
    key is its state); ids derived from the request's, so a repeat writes the same ids."""
    records = []
    for change in changes:
        out = assignment_record(
            change.customer_key,
            change.assignment,
            codec,
            at,
            event_id=output_event_id(f"{change.cause.event_id}/{change.customer_key}"),
            causation_id=change.cause.event_id,
        )
        records.append(Produced(topic, out.key, out.value, out.headers, track=True))
    return records


_NAMESPACE = OUTPUT_EVENT_NAMESPACE.bytes
# The variant nibble of an RFC 4122 UUID is 10xx: any hex digit's two low bits under 0b10.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def output_event_id(input_event_id: str) -> str:
    """uuid5(OUTPUT_EVENT_NAMESPACE, input_event_id) as text, straight from its SHA-1: the
    same id `uuid.uuid5` gives (RFC 4122 §4.3), without building two UUID objects per output."""
    h = hashlib.sha1(_NAMESPACE + input_event_id.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


@dataclass(frozen=True)
class Topics:
    output: str
    dead_letter: str
    watermark: str
    search: str = "customer-ids.search-terms"


@dataclass(frozen=True)
class Produced:
    """One record the batch's transaction writes; `track`: the fence checkpoints where it lands;
    `claim`: a watermark, checked against every claim committed before it (consumer/claims)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Seq[tuple[str, str | bytes | None]]
    track: bool = False
    claim: bool = False


def batch_claims(
    numbers: BatchNumbers | None,
    known: Callable[[str, int], bool],
    extra: Mapping[str, set[int]] | None = None,
) -> dict[str, Ranges]:
    """What a batch claims (consumer/claims.py): every new number, every re-issued one that no
    committed claim is known to hold (a reservation of an attempt that never committed), a
    merged customer's own number and the one it answers with alike, `extra` (what its merge
    records commit: consumer/merges.merge_claims), and its allocation generation."""
    values: dict[str, set[int]] = {c: set(v) for c, v in (extra or {}).items()}
    for item in numbers.assigned if numbers is not None else ():
        held = item.assignment
        if held.merged_into is None:  # the hot path: its own number alone
            if not item.duplicate or not known(held.counter, held.value):
                values.setdefault(held.counter, set()).add(held.value)
            continue
        for counter, value in held_values(held):
            if not known(counter, value):  # a merged customer is always a re-issue
                values.setdefault(counter, set()).add(value)
    claims = {counter: ranges_of(found) for counter, found in values.items()}
    if numbers is not None and numbers.generation is not None:
        claims[GENERATION] = [(numbers.generation, numbers.generation)]
    return claims


def batch_records(  # noqa: PLR0913 - a batch's parts, named where the loop calls it
    dead: list[tuple[Message, Exception]],
    numbers: BatchNumbers | None,
    topics: Topics,
    codec: RecordCodec,
    transactional_id: str,
    assigned_at: datetime,
    *,
    claims: Mapping[str, Ranges] | None = None,
    floors: Mapping[str, int] | None = None,
    duplicates: Mapping[str, Seq[str]] | None = None,
) -> list[Produced]:
    """Everything one batch writes, in order: dead letters, outputs, then in the watermark
    partition its claim first (its place in the claims' order) and one floor per counter
    claimed (never below `floors`, what is known committed: compaction keeps each key's last
    record, which must stay its highest)."""
    records = []
    for message, error in dead:
        # A record too large to write again with its headers goes as a reference to it.
        key, value, headers = dead_letter_record(
            message.key(), message.value(), dead_letter_headers(message, error)
        )
        records.append(Produced(topics.dead_letter, key, value, headers))
    for item in numbers.assigned if numbers is not None else ():
        found = duplicates.get(item.event.customer_key, ()) if duplicates else ()
        out = output_record(item, codec, assigned_at, found)
        records.append(Produced(topics.output, out.key, out.value, out.headers, track=True))
    if not claims:
        return records
    key = claim_record_key(transactional_id)
    records.append(Produced(topics.watermark, key, claim_value(claims), [], claim=True))
    for counter, ranges in sorted(claims.items()):
        highest = max(ranges[-1][1], (floors or {}).get(counter, 0))
        marker = watermark_key(counter, transactional_id)
        records.append(Produced(topics.watermark, marker, str(highest).encode(), []))
    return records


def search_records(search: Mapping[str, str | None], topic: str) -> list[Produced]:
    """The service's own search topic: per customer indexed all it is found under (the last
    record of a key says everything, customer_ids/store/terms.py), a tombstone per erased one
    (None)."""
    return [
        Produced(topic, customer.encode(), None if value is None else value.encode(), [], True)
        for customer, value in search.items()
    ]


def watermark_key(counter: str, transactional_id: str) -> bytes:
    """One key per counter and instance: an instance's own batches commit in order, so the last
    record of each key is its highest, whatever the others do (DESIGN §5.5)."""
    return f"{counter}@{transactional_id}".encode()


def next_offsets(batch: list[Message]) -> list[TopicPartition]:
    """The offsets to commit: the *next* record to read of each partition in the batch."""
    last: dict[tuple[str, int], int] = {}
    for m in batch:
        topic, partition, offset = position(m)
        last[(topic, partition)] = max(last.get((topic, partition), -1), offset)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]


def batch_span(batch: list[Message]) -> str:
    """partition:first-last offsets of a batch, e.g. "0:120-2619,3:88-90", for log lines;
    records of another topic than the batch's first (erasure requests) name their topic."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for m in batch:
        topic, partition, offset = position(m)
        low, high = spans.get((topic, partition), (offset, offset))
        spans[(topic, partition)] = (min(low, offset), max(high, offset))
    first = position(batch[0])[0] if batch else ""
    return ",".join(
        f"{'' if topic == first else topic + '/'}{p}:{low}-{high}"
        for (topic, p), (low, high) in sorted(spans.items(), key=lambda i: (i[0][0] != first, i[0]))
    )


def sent_ms(message: Message) -> int:
    """When a consumed record was sent (its Kafka timestamp, ms): what orders an erasure and
    the events it covers across topics. A record without one counts as sent now."""
    kind, at = message.timestamp()
    return at if kind != TIMESTAMP_NOT_AVAILABLE and at >= 0 else int(time.time() * 1000)


def position(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed (never a produced) message."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset
