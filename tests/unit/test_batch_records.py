"""The batch as records, without Kafka: what is dead-lettered is decided once, and an output
record carries its assignment last (recovery reads it without decoding Avro)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumer.assign import Assigned, BatchNumbers, SequenceExhaustedError
from consumer.outputs import (
    OUTPUT_EVENT_NAMESPACE,
    Decoded,
    Topics,
    batch_claims,
    batch_records,
    dead_letters,
    decode_batch,
    output_event_id,
    output_record,
)
from customer_ids.domain.errors import DecodeError, ValidationError
from customer_ids.domain.events import CustomerCreated, CustomerIdAssigned
from customer_ids.domain.numbers import NumberTemplate
from customer_ids.domain.sequences import Router, Sequence
from customer_ids.store.ports import GENERATION, StoredAssignment
from customer_ids.wire.codec import customer_created_codec, customer_id_assigned_codec
from customer_ids.wire.headers import ASSIGNMENT_HEADER


class FakeMessage:
    def __init__(self, value: bytes | None, offset: int = 0) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes | None:
        return self._value

    def offset(self) -> int:
        return self._offset


def event(customer: str, kind: str = "BUSINESS") -> CustomerCreated:
    return CustomerCreated(
        str(uuid.uuid4()), customer, "crm", kind, "DE", datetime(2024, 5, 1, tzinfo=UTC)
    )


ROUTER = Router(
    (Sequence("B", NumberTemplate.parse("B{seq:4}"), customer_types=frozenset({"BUSINESS"})),)
)


def test_decoding_sorts_records_into_events_and_reasons() -> None:
    codec = customer_created_codec()
    good = FakeMessage(codec.encode(event("a").to_record()))
    unrouted = FakeMessage(codec.encode(event("b", kind="INDIVIDUAL").to_record()))
    garbage = FakeMessage(b"\x00not avro")
    decoded = decode_batch([good, unrouted, garbage], codec, ROUTER)  # type: ignore[list-item]
    assert [m for m, _, _ in decoded.good] == [good]  # type: ignore[comparison-overlap]
    reasons: dict[Any, type] = {m: type(e) for m, e in decoded.bad}
    assert reasons == {unrouted: ValidationError, garbage: DecodeError}


def test_dead_letters_are_the_bad_records_and_the_failed_outcomes_once() -> None:
    bad, full, fine = FakeMessage(b"x", 0), FakeMessage(b"y", 1), FakeMessage(b"z", 2)
    a, b = event("a"), event("b")
    decoded = Decoded(
        good=[(full, a, ROUTER.sequences[0]), (fine, b, ROUTER.sequences[0])],  # type: ignore[list-item]
        bad=[(bad, DecodeError("garbage"))],  # type: ignore[list-item]
    )
    exhausted = SequenceExhaustedError(ROUTER.sequences[0])
    assigned = Assigned(b, StoredAssignment("B", 1, "B0001"), duplicate=False)
    numbers = BatchNumbers([exhausted, assigned], 1, 1, {})
    dead: list[Any] = dead_letters(decoded, numbers)
    assert [(m, type(e)) for m, e in dead] == [(bad, DecodeError), (full, SequenceExhaustedError)]


def test_an_output_record_carries_its_assignment_last_and_decodes() -> None:
    item = Assigned(event("a"), StoredAssignment("B", 7, "B0007"), duplicate=False)
    codec = customer_id_assigned_codec()
    record = output_record(item, codec, datetime(2024, 5, 1, tzinfo=UTC))
    assert record.key == b"crm/a"
    assert record.headers[-1] == (ASSIGNMENT_HEADER, b"B|7|B0007")
    decoded = codec.decode(record.value)
    assert (decoded["customer_number"], decoded["sequence"]) == ("B0007", 7)


def test_an_output_record_is_the_customer_id_assigned_event_of_its_assignment() -> None:
    source = event("a")
    item = Assigned(source, StoredAssignment("B", 7, "B0007"), duplicate=False)
    codec = customer_id_assigned_codec()
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    record = output_record(item, codec, at)
    expected = CustomerIdAssigned(
        event_id=str(uuid.uuid5(OUTPUT_EVENT_NAMESPACE, source.event_id)),
        causation_id=source.event_id,
        customer_id="a",
        source_system="crm",
        customer_number="B0007",
        sequence_name="B",
        sequence=7,
        assigned_at=at,
    )
    assert CustomerIdAssigned.from_record(codec.decode(record.value)) == expected
    # Ids only: every subscriber reads it (issue 25: no digests to link customers by).
    assert {name for name, _ in record.headers} == {"causation_id", ASSIGNMENT_HEADER}


@given(st.text(max_size=80))
def test_the_output_event_id_is_uuid5_of_the_input_event_id(input_id: str) -> None:
    assert output_event_id(input_id) == str(uuid.uuid5(OUTPUT_EVENT_NAMESPACE, input_id))


def test_a_batch_span_names_each_partition_s_first_and_last_offset() -> None:
    from consumer.outputs import batch_span  # noqa: PLC0415

    class Msg(FakeMessage):
        def __init__(self, partition: int, offset: int) -> None:
            super().__init__(b"", offset)
            self._partition = partition

        def topic(self) -> str:
            return "in"

        def partition(self) -> int:
            return self._partition

    batch = [Msg(3, 90), Msg(0, 120), Msg(3, 88), Msg(0, 2619)]
    assert batch_span(batch) == "0:120-2619,3:88-90"  # type: ignore[arg-type]


class InputMessage(FakeMessage):
    """A consumed record with the coordinates a dead letter cites."""

    def key(self) -> bytes:
        return b"k"

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return 3

    def headers(self) -> list[tuple[str, bytes]]:
        return []


def test_a_batch_writes_dead_letters_outputs_its_claim_then_one_floor_per_counter() -> None:
    bad = InputMessage(b"garbage", offset=41)
    a, b = event("a"), event("b")
    numbers = BatchNumbers(
        [
            Assigned(a, StoredAssignment("B", 7, "B0007"), duplicate=False),
            Assigned(b, StoredAssignment("B", 8, "B0008"), duplicate=False),
        ],
        3,
        2,
        {},
    )
    topics = Topics(output="out", dead_letter="dlq", watermark="marks")
    claims = batch_claims(numbers, lambda counter, value: False)
    assert claims == {"B": [(7, 8)], GENERATION: [(3, 3)]}
    records = batch_records(
        [(bad, DecodeError("garbage"))],  # type: ignore[list-item]
        numbers,
        topics,
        customer_id_assigned_codec(),
        "tx-1",
        datetime(2024, 5, 1, tzinfo=UTC),
        claims=claims,
        floors={"B": 5, GENERATION: 9},
    )
    assert [(r.topic, r.key, r.track, r.claim) for r in records] == [
        ("dlq", b"k", False, False),
        ("out", b"crm/a", True, False),
        ("out", b"crm/b", True, False),
        ("marks", b"claim/tx-1", False, True),  # first in the partition: the batch's place
        ("marks", b"#allocations@tx-1", False, False),
        ("marks", b"B@tx-1", False, False),
    ]
    assert json.loads(records[3].value or b"") == {"B": [[7, 8]], GENERATION: [[3, 3]]}
    assert records[-1].value == b"8"
    assert records[-2].value == b"9", "a floor never goes below what is known committed"
    assert dict(records[0].headers)["source.offset"] == b"41"


def test_a_re_issued_number_is_claimed_only_when_no_committed_claim_holds_it() -> None:
    a, b = event("a"), event("b")
    numbers = BatchNumbers(
        [
            Assigned(a, StoredAssignment("B", 4, "B0004"), duplicate=True),
            Assigned(b, StoredAssignment("B", 9, "B0009"), duplicate=True),
        ],
        None,
        0,
        {},
    )
    assert batch_claims(numbers, lambda counter, value: value < 5) == {"B": [(9, 9)]}


def test_a_batch_of_only_bad_records_writes_only_dead_letters() -> None:
    records = batch_records(
        [(InputMessage(b"x"), DecodeError("x"))],  # type: ignore[list-item]
        None,
        Topics("out", "dlq", "marks"),
        customer_id_assigned_codec(),
        "tx-1",
        datetime(2024, 5, 1, tzinfo=UTC),
    )
    assert [r.topic for r in records] == ["dlq"]


class _Failing:
    """A codec whose decode fails the way a registry deserializer does on bad UTF-8."""

    def decode(self, data: bytes | None) -> dict[str, Any]:
        raise UnicodeDecodeError("utf-8", b"jane.doe@example.com\xff", 20, 21, "invalid start byte")

    def encode(self, record: dict[str, Any]) -> bytes:
        raise NotImplementedError


def test_a_decode_failure_names_the_problem_never_the_raw_bytes() -> None:
    decoded = decode_batch([FakeMessage(b"x")], _Failing(), ROUTER)  # type: ignore[list-item]
    [(_, error)] = decoded.bad
    # Before: repr() of the error went into the dead letter's headers and the log line, with
    # the bytes it failed on (here an email).
    assert "jane.doe" not in str(error)
    assert "UnicodeDecodeError: utf-8 cannot decode byte 20: invalid start byte" in str(error)
