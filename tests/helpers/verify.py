"""An independent verifier: what is committed in Kafka, checked against what was sent."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Message

from customer_ids.adapters.log_reader import read_to_end
from customer_ids.domain.events import CustomerCreated, CustomerIdAssigned
from customer_ids.wire.codec import (
    RecordCodec,
    customer_created_codec,
    customer_id_assigned_codec,
)


@dataclass
class Committed:
    outputs: list[CustomerIdAssigned] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, dict[str, bytes]]] = field(default_factory=list)

    def numbers_by_customer(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for o in self.outputs:
            out[o.customer_key].add(o.customer_number)
        return out

    def customers_by_number(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for o in self.outputs:
            out[o.customer_number].add(o.customer_key)
        return out

    def gaps(self) -> dict[str, int]:
        """Missing values between 1 and the highest issued, per counter."""
        by_counter: dict[str, set[int]] = defaultdict(set)
        for o in self.outputs:
            by_counter[o.sequence_name].add(o.sequence)
        return {c: max(v) - len(v) for c, v in by_counter.items()}


def read_committed(
    bootstrap: str,
    output_topic: str,
    dlq_topic: str | None = None,
    codec: RecordCodec | None = None,
) -> Committed:
    """Every committed output (decoded with `codec`, default single-object) and dead letter."""
    committed = Committed()
    codec = codec or customer_id_assigned_codec()

    def on_output(message: Message) -> None:
        committed.outputs.append(CustomerIdAssigned.from_record(codec.decode(message.value())))

    def on_dlq(message: Message) -> None:
        raw: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        committed.dead_letters.append((message.value(), dict(raw)))

    read_to_end(bootstrap, output_topic, on_output)
    if dlq_topic:
        read_to_end(bootstrap, dlq_topic, on_dlq)
    return committed


def wait_for_outputs(
    bootstrap: str,
    output_topic: str,
    expected: int,
    *,
    timeout: float = 120.0,
    dlq_topic: str | None = None,
    dead_letters: int = 0,
    alive: Callable[[], None] | None = None,
    codec: RecordCodec | None = None,
) -> Committed:
    """Poll until `expected` outputs (and dead letters) are committed, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    committed = Committed()
    while time.monotonic() < deadline:
        committed = read_committed(bootstrap, output_topic, dlq_topic, codec)
        if len(committed.outputs) >= expected and len(committed.dead_letters) >= dead_letters:
            return committed
        if alive is not None:
            alive()
        time.sleep(0.5)
    raise AssertionError(
        f"after {timeout}s: {len(committed.outputs)}/{expected} outputs, "
        f"{len(committed.dead_letters)}/{dead_letters} dead letters"
    )


def input_records(bootstrap: str, input_topic: str) -> Counter[str]:
    """How many records of each event_id the input topic holds. Under a broker fault the
    producer itself can write an event twice (an epoch bump re-sends what was in flight:
    librdkafka#4953), and each record is an input the service must answer."""
    codec = customer_created_codec()
    counts: Counter[str] = Counter()

    def on_input(message: Message) -> None:
        try:
            counts[CustomerCreated.from_record(codec.decode(message.value())).event_id] += 1
        except Exception:  # a hostile record: a dead letter, not an input event
            return

    read_to_end(bootstrap, input_topic, on_input)
    return counts


def assert_invariants(
    sent: list[CustomerCreated],
    committed: Committed,
    allow_gaps: bool = False,
    recorded: Counter[str] | None = None,
) -> None:
    """The four promises, checked against the list of what was sent, and, with `recorded`
    (input_records), against the records the input topic really holds."""
    by_customer = committed.numbers_by_customer()
    two_numbers = {c: n for c, n in by_customer.items() if len(n) > 1}
    assert not two_numbers, f"customers with two numbers: {list(two_numbers.items())[:5]}"
    by_number = committed.customers_by_number()
    shared = {n: c for n, c in by_number.items() if len(c) > 1}
    assert not shared, f"numbers given to two customers: {list(shared.items())[:5]}"
    # One output per input record: an event sent twice (a redelivery upstream) is two records
    # and yields two outputs with the same event_id, which downstream de-duplicates on.
    causes = Counter(o.causation_id for o in committed.outputs)
    sent_counts = Counter(e.event_id for e in sent)
    sent_ids = set(sent_counts)
    if recorded is not None:
        lost = {k: v for k, v in sent_counts.items() if recorded.get(k, 0) < v}
        assert not lost, f"events sent but not in the input topic: {list(lost.items())[:5]}"
        sent_counts = Counter({k: recorded[k] for k in sent_counts})
    doubled = {k: v for k, v in causes.items() if v > sent_counts.get(k, 0)}
    assert not doubled, f"input records with more than one output: {list(doubled.items())[:5]}"
    fewer = {k: v for k, v in sent_counts.items() if recorded is not None and causes[k] < v}
    assert not fewer, f"input records without an output: {list(fewer.items())[:5]}"
    output_ids: dict[str, set[str]] = defaultdict(set)
    for o in committed.outputs:
        output_ids[o.causation_id].add(o.event_id)
    renamed = {k: v for k, v in output_ids.items() if len(v) > 1}
    assert not renamed, f"one input event, outputs with different ids: {list(renamed)[:5]}"
    missing = sent_ids - set(causes)
    assert not missing, f"{len(missing)} input events have no output, e.g. {sorted(missing)[:3]}"
    unknown = set(causes) - sent_ids
    assert not unknown, f"outputs for events never sent: {sorted(unknown)[:3]}"
    assert set(by_customer) == {e.customer_key for e in sent}
    # One line per check, for the fault suite's report (pytest -s shows it).
    print(
        f"\nverified: {len(sent)} records sent, "
        f"{sum(sent_counts.values()) - len(sent)} written twice by the producer, "
        f"{len(committed.outputs)} outputs, "
        f"{len(by_customer)} customers, 0 customers with two numbers, 0 shared numbers, "
        f"gaps {committed.gaps()}"
    )
    if not allow_gaps:
        assert all(g == 0 for g in committed.gaps().values()), f"gaps: {committed.gaps()}"


def wait_for_every_input(
    bootstrap: str, input_topic: str, output_topic: str, *, timeout: float
) -> tuple[Committed, Counter[str]]:
    """After the sender is done: the records the input topic holds (input_records), and the
    committed outputs once there is one per record."""
    recorded = input_records(bootstrap, input_topic)
    committed = wait_for_outputs(bootstrap, output_topic, sum(recorded.values()), timeout=timeout)
    return committed, recorded
