"""Numbers for one batch of decoded events: reuse the number a customer has, give the rest
the next values of their counters. The store work is three round trips under the locks.

Every event gets one result, in order: `Assigned`, or the error that sends that record (and
only that record) to the dead-letter topic: a time or text that cannot go into a number, a
sequence that is full.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from customer_ids.domain.errors import CustomerIdsError, ValidationError
from customer_ids.domain.events import CustomerCreated
from customer_ids.domain.numbers import BoundNumber
from customer_ids.domain.sequences import Sequence
from customer_ids.store.ports import NumberStore, StateBehindLogError, StoredAssignment


class SequenceExhaustedError(CustomerIdsError):
    """A sequence has no values left; its new customers go to the dead-letter topic."""

    def __init__(self, sequence: Sequence) -> None:
        hint = (
            "widen {seq:N:scrambled} for new customers"
            if sequence.template.capacity is not None
            else "start a new sequence for new customers"
        )
        super().__init__(
            f"sequence {sequence.name} has issued all {sequence.capacity:,} numbers it can "
            f"show; {hint} (existing numbers stay valid)"
        )
        self.sequence = sequence.name


@dataclass(frozen=True, slots=True)
class Assigned:
    event: CustomerCreated
    assignment: StoredAssignment
    duplicate: bool  # the customer had this number already (redelivery or a repeated event)


Outcome = Assigned | CustomerIdsError


@dataclass(frozen=True)
class BatchNumbers:
    outcomes: list[Outcome]  # one per event given, in order
    generation: int | None  # the allocation generation its step took (None: nothing new)
    new_count: int
    usage: dict[str, float]  # counter -> share of its range used, for bounded (scrambled) ones

    @cached_property
    def assigned(self) -> list[Assigned]:
        return [o for o in self.outcomes if isinstance(o, Assigned)]


@dataclass(frozen=True)
class _Pending:
    """A customer without a number yet, with the counter its number will come from and its
    template bound to its event."""

    key: str
    event: CustomerCreated
    sequence: Sequence
    counter: str
    number: BoundNumber


@dataclass
class _Plan:
    """What one batch reserves under the locks: per counter the value read, the floor and the
    block size; the new assignments; the usage of bounded ones."""

    expected: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    new: dict[str, StoredAssignment] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)


def assign_numbers(
    events: list[tuple[CustomerCreated, Sequence]],
    store: NumberStore,
    epoch: str,
    floors: Mapping[str, int] | None = None,
) -> BatchNumbers:
    """Give every event its customer's number, or the error that dead-letters it.

    `floors` are the highest values known to be committed per counter (this instance's own
    commits, the watermark topic): a counter below its floor means Redis went back in time,
    and nothing may be allocated from it (StateBehindLogError)."""
    checked = [_counter_or_error(event, sequence) for event, sequence in events]
    keys = [event.customer_key for event, _ in events]
    customers = dict.fromkeys(keys)  # in order of first appearance
    first: dict[str, _Pending] = {}  # each customer's first event that can be rendered
    for (event, sequence), key, check in zip(events, keys, checked, strict=True):
        if not isinstance(check, ValidationError) and key not in first:
            first[key] = _Pending(key, event, sequence, *check)
    if not customers:
        return BatchNumbers([], None, 0, {})
    failed: dict[str, CustomerIdsError] = {}
    # Every sequence of the batch: a customer's number may come from a later event's sequence
    # than its first event's (that one could not be rendered).
    with store.locked(sorted({sequence.name for _, sequence in events})):
        existing = store.lookup(list(customers))
        pending: dict[str, list[_Pending]] = {}
        for item in first.values():
            if item.key not in existing:
                pending.setdefault(item.counter, []).append(item)
        current = store.counters(list(pending)) if pending else {}
        _refuse_if_behind(current, floors or {})
        plan = _plan(pending, current, failed)
        generation = None
        if plan.new:
            generation = store.allocate(epoch, plan.expected, plan.new)
    outcomes = _outcomes(events, keys, checked, failed, existing, plan.new)
    return BatchNumbers(outcomes, generation, len(plan.new), plan.usage)


def _counter_or_error(
    event: CustomerCreated, sequence: Sequence
) -> tuple[str, BoundNumber] | ValidationError:
    """The event's counter and its template bound to the event, or why its time or text
    cannot go into a number (before the lock): that is this record's failure alone."""
    try:
        return sequence.counter_name(event.occurred_at), sequence.bind(event)
    except ValidationError as exc:
        return exc


def _plan(
    pending: Mapping[str, list[_Pending]],
    current: Mapping[str, int],
    failed: dict[str, CustomerIdsError],
) -> _Plan:
    """The next values of each counter for its waiting customers, as far as the sequence has
    room; those past its capacity fail."""
    plan = _Plan()
    for counter, waiting in pending.items():
        sequence = waiting[0].sequence
        floor = sequence.start - 1
        base = max(current[counter], floor)
        room = max(0, sequence.capacity - base)
        for item in waiting[room:]:
            failed[item.key] = SequenceExhaustedError(sequence)
        taken = waiting[:room]
        if sequence.template.capacity is not None:
            plan.usage[counter] = (base + len(taken)) / sequence.capacity
        if not taken:
            continue
        plan.expected[counter] = (current[counter], floor, len(taken))
        for offset, item in enumerate(taken, start=1):
            value = base + offset
            plan.new[item.key] = StoredAssignment(counter, value, item.number.render(value))
    return plan


def _outcomes(
    events: list[tuple[CustomerCreated, Sequence]],
    keys: list[str],
    checked: list[tuple[str, BoundNumber] | ValidationError],
    failed: Mapping[str, CustomerIdsError],
    existing: Mapping[str, StoredAssignment],
    new: Mapping[str, StoredAssignment],
) -> list[Outcome]:
    """One outcome per event, as if each came in a batch of its own: the customer's number
    when it had one before this event (in Redis, or from an earlier event of this batch),
    else this event's own error, else the customer's, else a new number."""
    seen_in_batch: set[str] = set()
    outcomes: list[Outcome] = []
    for (event, _), key, check in zip(events, keys, checked, strict=True):
        if key in existing:
            outcomes.append(Assigned(event, existing[key], duplicate=True))
        elif key in seen_in_batch:
            # The customer got its number from an earlier event of this batch: as if that
            # event had come in a batch of its own, this one re-issues it, whatever its own
            # time or text (batching never changes an outcome).
            outcomes.append(Assigned(event, new[key], duplicate=True))
        elif isinstance(check, ValidationError):
            outcomes.append(check)
        elif key in failed:
            outcomes.append(failed[key])
        else:
            outcomes.append(Assigned(event, new[key], duplicate=False))
            seen_in_batch.add(key)
    return outcomes


def _refuse_if_behind(current: Mapping[str, int], floors: Mapping[str, int]) -> None:
    behind = {c: v for c, v in current.items() if v < floors.get(c, 0)}
    if behind:
        raise StateBehindLogError(
            "counters below values already committed: "
            + ", ".join(f"{c} at {v} < {floors[c]}" for c, v in sorted(behind.items()))
        )
