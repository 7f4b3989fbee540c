"""What allocation and recovery need from the store of counters and assignments.

Redis implements it (customer_ids/store/redis_store.py); unit tests use an in-memory fake.
Keeping the contract here lets the batch rules and the loop be read, and tested, without Redis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from customer_ids.domain.errors import CustomerIdsError

# The allocation generation's counter: every allocation step advances it, whatever sequence it
# serves, and every batch claims its value (consumer/claims.py). No sequence name has a '#'.
GENERATION = "#allocations"


class AllocationConflictError(CustomerIdsError):
    """The store changed under us although we held the lock (an expired lease); retry."""


class StateChangedError(CustomerIdsError):
    """The store is not the state this batch started from: it was wiped, rebuilt, restarted
    from older data or failed over. Nothing may be allocated or committed against it until a
    recovery has made it valid again."""


class StateBehindLogError(StateChangedError):
    """A counter is below a value already committed to Kafka: Redis went back in time on the
    same server (nothing else showed it), so it must be recovered before anything else."""


MERGE_SEPARATOR = "\x1f"  # ASCII unit separator: no template renders a control character


@dataclass(frozen=True, slots=True)
class StoredAssignment:
    """What the store keeps per customer: enough to re-issue the same event byte for byte."""

    counter: str
    value: int
    number: str
    # While merged: the survivor's key, and this customer's own (retired) assignment encoded;
    # counter, value and number are then the survivor's (what the customer answers with).
    merged_into: str | None = None
    own: str | None = None

    def encode(self) -> str:
        base = f"{self.counter}|{self.value}|{self.number}"
        if self.merged_into is None:
            return base
        return f"{base}{MERGE_SEPARATOR}{self.merged_into}{MERGE_SEPARATOR}{self.own}"

    @classmethod
    def decode(cls, raw: str) -> StoredAssignment:
        base, _, merge = raw.partition(MERGE_SEPARATOR)
        counter, value, number = base.split("|", 2)
        if not merge:
            return cls(counter, int(value), number)
        merged_into, _, own = merge.partition(MERGE_SEPARATOR)
        return cls(counter, int(value), number, merged_into, own)

    @property
    def own_assignment(self) -> StoredAssignment:
        """The customer's own assignment: itself unless merged."""
        return StoredAssignment.decode(self.own) if self.own else self

    def merged(self, survivor_key: str, root: StoredAssignment) -> StoredAssignment:
        """This customer merged into `survivor_key`, answering with `root`'s number."""
        own = self.own_assignment
        return StoredAssignment(root.counter, root.value, root.number, survivor_key, own.encode())


@dataclass(frozen=True)
class StoreStatus:
    """The store's own view of its validity, read in one step."""

    epoch: str | None  # a uuid while valid, `rebuilding:<token>` during a recovery, None if lost
    stored_identity: str | None  # the server identity the last recovery validated
    live_identity: str  # the server answering now (run_id/master_replid)

    @property
    def valid(self) -> bool:
        return (
            self.epoch is not None
            and not self.epoch.startswith("rebuilding:")
            and self.stored_identity == self.live_identity
        )


class NumberStore(Protocol):
    """Counters and the customer -> number map, with the checks that keep them honest."""

    def locked(self, sequence_names: Sequence[str]) -> AbstractContextManager[object]:
        """Hold these sequences' locks for one look-up-reserve-record step."""
        ...

    def lookup(self, customer_keys: Sequence[str]) -> dict[str, StoredAssignment]: ...

    def counters(self, counter_names: Sequence[str]) -> dict[str, int]: ...

    def allocate(
        self,
        epoch: str,
        expected: Mapping[str, tuple[int, int, int]],
        new: Mapping[str, StoredAssignment],
    ) -> int:
        """Advance counters and record new assignments in one atomic step, only if the state
        is still `epoch` on the same server and each counter still holds the value read;
        returns the allocation generation the step took."""
        ...


@dataclass(frozen=True)
class Terms:
    """What a customer is found under: each digest with the time (ms, when its newest event
    was sent) that decides whether an erasure covers it. Text form `d1@ms1,d2@ms2`."""

    digests: dict[str, int]

    def encode(self) -> str:
        return ",".join(f"{d}@{at}" for d, at in sorted(self.digests.items()))

    @classmethod
    def decode(cls, value: str) -> Terms:
        found: dict[str, int] = {}
        for item in value.split(","):
            digest, _, at = item.partition("@")
            if digest:
                found[digest] = int(at or 0)  # no time: written before times were kept
        return cls(found)

    def newer_than(self, erased_ms: int) -> Terms:
        """What an erasure at `erased_ms` leaves: the digests of events sent after it."""
        return Terms({d: at for d, at in self.digests.items() if at > erased_ms})


@dataclass(frozen=True)
class TermsUpdate:
    add: Mapping[str, int]  # digest -> when the newest event that carries it was sent (ms)
    remove: Sequence[str] = field(default=())


@dataclass(frozen=True)
class Forgotten:
    removed: int  # search entries removed
    value: str | None  # what the customer is still found under (newer data), None: nothing


class TermsStore(Protocol):
    """Each customer's search digests (never an email or a phone): the search index, per
    customer every digest it is found under, and every erasure (customer_ids/store/terms.py)."""

    def update(self, epoch: str | None, entries: Mapping[str, TermsUpdate]) -> dict[str, str]:
        """Apply these changes, only if the state is still `epoch` (digests sent no later than
        the customer's erasure are left out); per customer found under anything, all it is
        found under now (the search topic's value; '' when nothing is left)."""
        ...

    def forget(self, epoch: str, customer_key: str, requested_ms: int) -> Forgotten:
        """Remove the customer's digests sent no later than `requested_ms` from the index and
        remember the erasure, only if the state is still `epoch`."""
        ...
