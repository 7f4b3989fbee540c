"""Merges, links and unmerges (README, "Merges and links"): the number as the stable golden id.

A merge of M into S makes M (and every customer merged into M before) answer with S's number;
M's own number is retired: it stays M's, is never issued again (no number is) and comes back
with an unmerge. Each change is an output record of the customer it changes, written in the
batch's transaction like an assignment, so a rebuild of Redis from the output topic restores
it (the stored form in the record's header carries the merge).

Requests of one batch are applied in order under one lock (`~merges`), each seeing the ones
before it; each refusal is that record's failure alone (the dead-letter topic, with why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import Message

from customer_ids.domain.errors import ValidationError
from customer_ids.domain.events import MERGE, CustomerMergeRequested
from customer_ids.store.ports import StoredAssignment
from customer_ids.store.redis_store import RedisNumberStore

MERGE_LOCK = "~merges"  # not a sequence name: sequence names are identifiers


class MergeRefusedError(ValidationError):
    """A merge or unmerge that would make the numbers lie; it changes nothing."""


@dataclass(frozen=True)
class MergeChange:
    """One customer's new state, caused by one request: one output record."""

    customer_key: str
    assignment: StoredAssignment
    cause: CustomerMergeRequested


@dataclass
class MergeOutcome:
    changes: list[MergeChange] = field(default_factory=list)
    refused: list[tuple[Message, Exception]] = field(default_factory=list)
    generation: int | None = None  # the merge generation after this batch's step


@dataclass
class _Merges:
    """The batch's view of the store: read once per customer, changed in memory in order."""

    store: RedisNumberStore
    state: dict[str, StoredAssignment | None] = field(default_factory=dict)
    read: dict[str, StoredAssignment | None] = field(default_factory=dict)  # as first read
    changed: dict[str, StoredAssignment] = field(default_factory=dict)
    links: list[tuple[str, str, bool]] = field(default_factory=list)

    def of(self, key: str) -> StoredAssignment | None:
        if key not in self.state:
            self.state[key] = self.read[key] = self.store.lookup([key]).get(key)
        return self.state[key]

    def set(self, key: str, assignment: StoredAssignment) -> None:
        self.state[key] = assignment
        self.changed[key] = assignment

    def writes(self) -> dict[str, tuple[StoredAssignment, StoredAssignment]]:
        """(as read, as now) of every customer changed: compare-and-set in Redis."""
        out = {}
        for key, new in self.changed.items():
            old = self.read[key]
            assert old is not None  # only customers with a number change
            out[key] = (old, new)
        return out

    def descendants(self, key: str) -> Iterator[str]:
        """Every customer merged into `key`, directly or through others (checked against
        each one's entry: the sets are hints)."""
        todo, seen = [key], {key}
        while todo:
            parent = todo.pop()
            recorded = self.store.merged_into([parent])[parent]
            pending = {merged for survivor, merged, add in self.links if survivor == parent and add}
            for child in sorted(recorded | pending):  # this batch's merges count too
                current = self.of(child)
                if child in seen or current is None or current.merged_into != parent:
                    continue
                seen.add(child)
                todo.append(child)
                yield child


def apply_merges(
    requests: list[tuple[Message, CustomerMergeRequested]],
    store: RedisNumberStore,
    epoch: str,
) -> MergeOutcome:
    """Apply the batch's requests in order and write them to Redis in one step; the records
    to write and the requests refused."""
    outcome = MergeOutcome()
    if not requests:
        return outcome
    with store.locked([MERGE_LOCK]) as lease:
        generation = store.merge_generation()
        view = _Merges(store)
        for message, request in requests:
            try:
                outcome.changes += _apply(view, request)
            except MergeRefusedError as exc:
                outcome.refused.append((message, exc))
        lease.check()
        # Always a step, even when nothing changed (repeats): the fence of a batch that read
        # these customers before, on any instance, then refuses to commit after ours.
        outcome.generation = store.apply_merges(epoch, generation, view.writes(), view.links)
    return outcome


def _apply(view: _Merges, request: CustomerMergeRequested) -> list[MergeChange]:
    merged = request.merged_key
    current = view.of(merged)
    if current is None:
        raise MergeRefusedError(f"customer {merged} has no number: nothing to merge")
    if request.action != MERGE:
        return _unmerge(view, request, current)
    survivor = request.survivor_key
    assert survivor is not None  # validated when decoded
    if current.merged_into == survivor:
        # A repeat (a redelivery, or the retry of an aborted batch whose step Redis kept):
        # every record again, as the state is now, so none of them is left unwritten.
        return [MergeChange(merged, current, request), *_follow(view, merged, request)]
    if survivor == merged:
        raise MergeRefusedError(f"customer {merged} cannot be merged into itself")
    root = view.of(survivor)
    if root is None:
        raise MergeRefusedError(f"survivor {survivor} has no number: create it first")
    if root.merged_into is not None:
        raise MergeRefusedError(
            f"survivor {survivor} is itself merged into {root.merged_into}: merge into "
            f"{root.merged_into} instead"
        )
    if current.merged_into is not None:
        raise MergeRefusedError(
            f"customer {merged} is already merged into {current.merged_into}: unmerge it first"
        )
    view.set(merged, current.merged(survivor, root))
    view.links.append((survivor, merged, True))
    return [MergeChange(merged, view.changed[merged], request), *_follow(view, merged, request)]


def _unmerge(
    view: _Merges, request: CustomerMergeRequested, current: StoredAssignment
) -> list[MergeChange]:
    merged = request.merged_key
    if current.merged_into is None:  # not merged (a repeat): every record as it is
        return [MergeChange(merged, current, request), *_follow(view, merged, request)]
    view.links.append((current.merged_into, merged, False))
    view.set(merged, current.own_assignment)
    return [MergeChange(merged, view.changed[merged], request), *_follow(view, merged, request)]


def _follow(view: _Merges, key: str, request: CustomerMergeRequested) -> list[MergeChange]:
    """Everyone merged into `key` answers with `key`'s number now (a chain resolves)."""
    top = view.of(key)
    assert top is not None
    changes = []
    for child in list(view.descendants(key)):
        current = view.of(child)
        assert current is not None and current.merged_into is not None
        moved = StoredAssignment(
            top.counter, top.value, top.number, current.merged_into, current.own
        )
        if moved != current:
            view.set(child, moved)
        changes.append(MergeChange(child, moved, request))
    return changes


def merge_claims(
    changes: list[MergeChange], known: Callable[[str, int], bool]
) -> dict[str, set[int]]:
    """The values a batch's merge records commit to customers that no committed claim is
    known to hold (an assignment whose batch has not committed, a claim compacted away):
    claimed with the batch, as a re-issue claims them (consumer/claims.py), so no value a
    merged customer answers with or owns is ever free for another."""
    values: dict[str, set[int]] = {}
    for change in changes:
        for counter, value in held_values(change.assignment):
            if not known(counter, value):
                values.setdefault(counter, set()).add(value)
    return values


def held_values(assignment: StoredAssignment) -> set[tuple[str, int]]:
    """(counter, value) of the number a customer answers with and of its own: one pair, or
    two while it is merged."""
    own = assignment.own_assignment
    return {(assignment.counter, assignment.value), (own.counter, own.value)}
