"""Fakes behind the loop's interfaces: a consumer, a transaction session, a store and a
recovery, each recording what the loop asked of it and failing when told to."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka import TopicPartition

from consumer.claims import Committed, Ranges, refuse_taken
from consumer.recovery import Valid
from customer_ids.store.ports import (
    AllocationConflictError,
    Forgotten,
    StateChangedError,
    StoredAssignment,
    Terms,
    TermsUpdate,
)


class FakeMessage:
    """A consumed record: topic, partition, offset, bytes."""

    def __init__(self, value: bytes | None, offset: int, partition: int = 0) -> None:
        self._value, self._offset, self._partition = value, offset, partition

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return b"k"

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_000_000 + self._offset)  # CreateTime, in send order

    def headers(self) -> list[tuple[str, bytes]]:
        return []


class FakeConsumer:
    def __init__(self, partitions: Sequence[int] = (0,)) -> None:
        self.assigned = [TopicPartition("in", p) for p in partitions]
        self.seeks: list[tuple[int, int]] = []
        self.paused: list[int] = []
        self.resumed: list[int] = []

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, tp.offset))

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused += [tp.partition for tp in partitions]

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resumed += [tp.partition for tp in partitions]

    def consume(self, num_messages: int = 1, timeout: float = 0) -> list[Any]:
        return []

    def consumer_group_metadata(self) -> object:
        return object()


class FakeTransaction:
    """The transaction session: begin, produce, flush, commit, abort; `fail` raises once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.produced: list[tuple[str, bytes | None]] = []
        self.committed: list[list[TopicPartition]] = []
        self.delivered: dict[tuple[str, int], int] = {}
        self.claimed: int | None = None
        self.fail: dict[str, BaseException] = {}
        # The claim records of committed transactions, as the watermark partition holds them.
        self.committed_claims: list[dict[str, Ranges]] = []
        self._claim: dict[str, Ranges] | None = None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail.pop(name)

    def init(self) -> None:
        self._call("init")

    def begin(self) -> None:
        self._call("begin")
        self.claimed = None
        self._claim = None

    def produce(
        self, topic: str, *, key: bytes | None, value: bytes | None, claim: bool = False, **_: Any
    ) -> None:
        self._call("produce")
        if claim and self.claimed is None:
            self.claimed = len(self.produced)
            raw = json.loads(value or b"{}")
            self._claim = {c: [(low, high) for low, high in r] for c, r in raw.items()}
        self.produced.append((topic, value))
        if topic in ("out", "search"):
            self.delivered[(topic, 0)] = self.delivered.get((topic, 0), 0) + 1

    def flush(self) -> None:
        self._call("flush")

    def commit(self, offsets: list[TopicPartition], group_metadata: object) -> None:
        self._call("commit")
        self.committed.append(offsets)
        if self._claim is not None:
            self.committed_claims.append(self._claim)

    def commit_records(self) -> None:
        self._call("commit")

    def abort(self) -> None:
        self._call("abort")


class FakeStore:
    """The number store in memory (the NumberStore contract: the epoch check, compare-and-set
    and a clash of a customer recorded meanwhile, as the Redis script makes them), with the
    fence and WAIT the loop calls."""

    def __init__(self, epoch: str = "e") -> None:
        self.epoch = epoch  # what a recovery made valid; allocate refuses any other
        self.counters_: dict[str, int] = {}
        self.assignments: dict[str, StoredAssignment] = {}
        self.locks_taken: list[list[str]] = []
        self.fail: dict[str, BaseException] = {}
        self.fences = 0
        self.generation = 0

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise self.fail.pop(name)

    @contextmanager
    def locked(self, names: Sequence[str]) -> Iterator[None]:
        self._maybe_fail("locked")
        self.locks_taken.append(sorted(set(names)))
        yield

    def lookup(self, keys: Sequence[str]) -> dict[str, StoredAssignment]:
        self._maybe_fail("lookup")
        return {k: self.assignments[k] for k in keys if k in self.assignments}

    def counters(self, names: Sequence[str]) -> dict[str, int]:
        return {n: self.counters_.get(n, 0) for n in names}

    def allocate(
        self,
        epoch: str,
        expected: Mapping[str, tuple[int, int, int]],
        new: Mapping[str, StoredAssignment],
    ) -> int:
        self._maybe_fail("allocate")
        if epoch != self.epoch:
            raise StateChangedError(f"Redis is not the state this batch started from ({epoch})")
        for counter, (seen, _, _) in expected.items():
            if self.counters_.get(counter, 0) != seen:
                raise AllocationConflictError(f"COUNTER moved: {counter}")
        for counter, (seen, floor, n) in expected.items():
            self.counters_[counter] = max(seen, floor) + n
        clashes = 0
        for key, value in new.items():
            if key in self.assignments:
                clashes += 1
            else:
                self.assignments[key] = value
        if clashes:
            raise AllocationConflictError(f"{clashes} customer(s) were recorded concurrently")
        self.generation += 1
        return self.generation

    def merge_generation(self) -> int:
        return 0

    def fence(
        self, epoch: str, checkpoint: Mapping[str, int], merge_generation: int | None = None
    ) -> int:
        self._maybe_fail("fence")
        self.fences += 1
        return 0

    def wait_for_replicas(self, replicas: int, timeout_ms: int) -> None:
        pass


class FakeTerms:
    """The TermsStore in memory: customer -> digest -> time, and erasures."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store  # its epoch is the state the writes are checked against
        self.held: dict[str, dict[str, int]] = {}
        self.erased: dict[str, int] = {}

    def _check(self, epoch: str | None) -> None:
        if epoch is not None and epoch != self.store.epoch:
            raise StateChangedError(f"Redis is not the state this batch started from ({epoch})")

    def update(self, epoch: str | None, entries: Mapping[str, TermsUpdate]) -> dict[str, str]:
        self._check(epoch)
        values = {}
        for customer, change in entries.items():
            before = dict(self.held.get(customer, {}))
            held = {d: at for d, at in before.items() if d not in change.remove}
            for digest, at in change.add.items():
                if at > self.erased.get(customer, -1):
                    held[digest] = max(at, held.get(digest, 0))
            self.held[customer] = held
            if held or before:
                values[customer] = Terms(held).encode()
        return values

    def forget(self, epoch: str, customer_key: str, requested_ms: int) -> Forgotten:
        self._check(epoch)
        self.erased[customer_key] = max(self.erased.get(customer_key, 0), requested_ms)
        held = Terms(self.held.pop(customer_key, {}))
        left = held.newer_than(requested_ms)
        if left.digests:
            self.held[customer_key] = dict(left.digests)
        return Forgotten(len(held.digests) - len(left.digests), left.encode() or None)


class FakeRecovery:
    """Each ensure() makes a new epoch valid in the store, as a recovery does."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.calls: list[tuple[str | None, str | None]] = []
        self.store = store

    def ensure(self, known_epoch: str | None, force: str | None = None) -> Valid:
        self.calls.append((known_epoch, force))
        epoch = f"epoch-{len(self.calls)}"
        if self.store is not None:
            self.store.epoch = epoch
        return Valid(epoch, {})


class FakeClaims:
    """The claims log in memory: what every instance committed before us."""

    def __init__(self) -> None:
        self.committed: dict[str, Committed] = {}
        self.floors: dict[str, int] = {}
        # Committed by another instance after our allocation, before our fence: seen only by
        # the check, which reads up to our own claim.
        self.meanwhile: dict[str, Ranges] = {}
        self.checks: list[dict[str, Ranges]] = []
        # The claims committed to the watermark partition (the loop's own, through its
        # transaction): read by a check, not by catch_up (the reader lags behind a commit).
        self.broker: list[dict[str, Ranges]] = []

    def catch_up(self) -> None:
        pass

    def known(self, counter: str, value: int) -> bool:
        return counter in self.committed and self.committed[counter].holds(value)

    def commit(self, claims: Mapping[str, Ranges]) -> None:
        for counter, ranges in claims.items():
            for low, high in ranges:
                self.committed.setdefault(counter, Committed()).add(low, high)
                self.floors[counter] = max(self.floors.get(counter, 0), high)

    def check_claims(self, claims: Mapping[str, Ranges], own_offset: int, timeout_s: float) -> None:
        """Reads the partition up to our claim, as the real reader does: every claim committed
        before ours (`broker`, and another instance's `meanwhile`), then refuses."""
        self.checks.append(dict(claims))
        for committed in self.broker:
            self.commit(committed)
        self.commit(self.meanwhile)
        self.meanwhile = {}
        refuse_taken(claims, self.committed)

    def own_committed(self, claims: Mapping[str, Ranges]) -> None:
        self.commit(claims)  # ours, known once the transaction committed

    def close(self) -> None:
        pass
