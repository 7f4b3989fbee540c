"""Numbers for one batch of decoded events: reuse the number a customer has, give the rest
the next values of their counters. The Redis work is three round trips under the locks."""

from __future__ import annotations

from dataclasses import dataclass

from consumer.allocator import SequenceAllocator, StoredAssignment
from customer_ids.events import CustomerCreated
from customer_ids.sequences import Router, Sequence


@dataclass(frozen=True, slots=True)
class Assigned:
    event: CustomerCreated
    assignment: StoredAssignment
    duplicate: bool  # the customer had this number already (redelivery or a repeated event)


@dataclass(frozen=True)
class BatchNumbers:
    assigned: list[Assigned]
    watermarks: dict[str, int]  # counter -> highest value it has handed out
    new_count: int


def assign_numbers(
    events: list[tuple[CustomerCreated, Sequence]],
    allocator: SequenceAllocator,
    epoch: str,
) -> BatchNumbers:
    """Give every event its customer's number. Call with events already routed."""
    first: dict[str, tuple[CustomerCreated, Sequence]] = {}
    for event, sequence in events:
        first.setdefault(event.customer_key, (event, sequence))
    with allocator.locked([seq.name for _, seq in first.values()]):
        existing = allocator.lookup(list(first))
        new_by_counter: dict[str, list[tuple[str, CustomerCreated, Sequence]]] = {}
        for key, (event, sequence) in first.items():
            if key not in existing:
                counter = sequence.counter_name(event.occurred_at)
                new_by_counter.setdefault(counter, []).append((key, event, sequence))
        current = allocator.counters(list(new_by_counter)) if new_by_counter else {}
        expected: dict[str, tuple[int, int, int]] = {}
        new: dict[str, StoredAssignment] = {}
        watermarks: dict[str, int] = {}
        for counter, customers in new_by_counter.items():
            floor = customers[0][2].start - 1
            base = max(current[counter], floor)
            expected[counter] = (current[counter], floor, len(customers))
            for offset, (key, event, sequence) in enumerate(customers, start=1):
                value = base + offset
                new[key] = StoredAssignment(counter, value, sequence.render(value, event))
            watermarks[counter] = base + len(customers)
        if new:
            allocator.allocate(epoch, expected, new)
    seen_in_batch: set[str] = set()
    assigned = []
    for event, _ in events:
        key = event.customer_key
        duplicate = key in existing or key in seen_in_batch
        seen_in_batch.add(key)
        assigned.append(Assigned(event, existing.get(key) or new[key], duplicate))
    return BatchNumbers(assigned=assigned, watermarks=watermarks, new_count=len(new))


def routed(events: list[CustomerCreated], router: Router) -> list[tuple[CustomerCreated, Sequence]]:
    return [(event, router.route(event)) for event in events]
