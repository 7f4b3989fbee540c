"""Numbers for one batch of decoded events: reuse the number a customer has, give the rest
the next values of their counters. The Redis work is three round trips under the locks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consumer.store import NumberStore, StateBehindLogError, StoredAssignment
from customer_ids.errors import CustomerIdsError
from customer_ids.events import CustomerCreated
from customer_ids.sequences import Router, Sequence


class SequenceExhaustedError(CustomerIdsError):
    """A bounded sequence has no values left; its events go to the dead-letter topic."""

    def __init__(self, sequence: str, capacity: int) -> None:
        super().__init__(
            f"sequence {sequence} has issued all {capacity:,} numbers its template can show; "
            "widen {seq:N:scrambled} for new customers (existing numbers stay valid)"
        )
        self.sequence = sequence


@dataclass(frozen=True, slots=True)
class Assigned:
    event: CustomerCreated
    assignment: StoredAssignment
    duplicate: bool  # the customer had this number already (redelivery or a repeated event)


@dataclass(frozen=True)
class BatchNumbers:
    assigned: list[Assigned | SequenceExhaustedError]  # aligned with the events given
    watermarks: dict[str, int]  # counter -> highest value it has handed out
    new_count: int
    usage: dict[str, float]  # counter -> share of its range used, for bounded (scrambled) ones


def assign_numbers(
    events: list[tuple[CustomerCreated, Sequence]],
    allocator: NumberStore,
    epoch: str,
    floors: Mapping[str, int] | None = None,
) -> BatchNumbers:
    """Give every event its customer's number. Call with events already routed.

    `floors` are the highest values known to be committed per counter (this instance's own
    commits, the watermark topic): a counter below its floor means Redis went back in time,
    and nothing may be allocated from it (StateChangedError)."""
    first: dict[str, tuple[CustomerCreated, Sequence]] = {}
    for event, sequence in events:
        first.setdefault(event.customer_key, (event, sequence))
    with allocator.locked([seq.name for _, seq in first.values()]):
        existing = allocator.lookup(list(first))
        new_by_counter: dict[str, list[tuple[str, CustomerCreated, Sequence]]] = {}
        exhausted: dict[str, SequenceExhaustedError] = {}
        for key, (event, sequence) in first.items():
            if key not in existing:
                counter = sequence.counter_name(event.occurred_at)
                new_by_counter.setdefault(counter, []).append((key, event, sequence))
        current = allocator.counters(list(new_by_counter)) if new_by_counter else {}
        behind = {c: v for c, v in current.items() if v < (floors or {}).get(c, 0)}
        if behind:
            raise StateBehindLogError(
                "counters below values already committed: "
                + ", ".join(f"{c} at {v} < {(floors or {})[c]}" for c, v in sorted(behind.items()))
            )
        expected: dict[str, tuple[int, int, int]] = {}
        new: dict[str, StoredAssignment] = {}
        watermarks: dict[str, int] = {}
        usage: dict[str, float] = {}
        for counter, waiting in new_by_counter.items():
            sequence = waiting[0][2]
            floor = sequence.start - 1
            base = max(current[counter], floor)
            customers = waiting
            capacity = sequence.template.capacity
            if capacity is not None:
                room = max(0, capacity - base)
                customers = waiting[:room]
                for key, _, _ in waiting[room:]:
                    exhausted[key] = SequenceExhaustedError(sequence.name, capacity)
                usage[counter] = (base + len(customers)) / capacity
                if not customers:
                    continue
            expected[counter] = (current[counter], floor, len(customers))
            for offset, (key, event, _) in enumerate(customers, start=1):
                value = base + offset
                new[key] = StoredAssignment(counter, value, sequence.render(value, event))
            watermarks[counter] = base + len(customers)
        if new:
            allocator.allocate(epoch, expected, new)
    seen_in_batch: set[str] = set()
    assigned: list[Assigned | SequenceExhaustedError] = []
    for event, _ in events:
        key = event.customer_key
        if key in exhausted:
            assigned.append(exhausted[key])
            continue
        duplicate = key in existing or key in seen_in_batch
        seen_in_batch.add(key)
        assigned.append(Assigned(event, existing.get(key) or new[key], duplicate))
    return BatchNumbers(assigned, watermarks, len(new), usage)


def routed(events: list[CustomerCreated], router: Router) -> list[tuple[CustomerCreated, Sequence]]:
    return [(event, router.route(event)) for event in events]
