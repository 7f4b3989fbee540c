"""What allocation and recovery need from the store of counters and assignments.

Redis implements it (customer_ids/store/redis_store.py); unit tests use an in-memory fake.
Keeping the contract here lets the batch rules and the loop be read, and tested, without Redis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class StoredAssignment:
    """What the store keeps per customer: enough to re-issue the same event byte for byte."""

    counter: str
    value: int
    number: str

    def encode(self) -> str:
        return f"{self.counter}|{self.value}|{self.number}"

    @classmethod
    def decode(cls, raw: str) -> StoredAssignment:
        counter, value, number = raw.split("|", 2)
        return cls(counter, int(value), number)


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


class TermsStore(Protocol):
    """Each customer's search digests (never an email or a phone): the search index and, per
    customer, every digest it is found under."""

    def add(self, epoch: str, entries: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """Find each customer under these digests too, only if the state is still `epoch`;
        returns, for the customers whose digests grew, all of their digests now."""
        ...

    def forget(self, epoch: str, customer_key: str) -> list[str]:
        """Remove the customer from the index, only if the state is still `epoch`; returns the
        digests it was found under (none when it had none)."""
        ...
