"""Redis side of allocation: lock, look up, reserve a block with INCRBY, record (DESIGN §3, §5).

Uniqueness comes from INCRBY on one counter key. The lock makes "look up, reserve, record" one
step across instances: without it two instances racing on a customer would both read, and the
loser's compare-and-set would fail and burn its batch. Every write first checks the epoch, so a
wiped Redis is noticed before a reset counter can hand out 1 again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass

import redis
from redis.lock import Lock

from customer_ids.errors import CustomerIdsError, EpochChangedError
from customer_ids.keys import RedisKeys, customer_field

# Existing assignments of a batch's customers in one command. KEYS: a bucket per customer;
# ARGV: the field digests. Returns one string, the stored value or '' for each, joined by
# newlines (templates may not contain control characters): parsing one reply instead of
# thousands is most of the lookup's client-side cost.
_LOOKUP = """
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HGET', KEYS[i], ARGV[i]) or ''
end
return table.concat(out, '\\n')
"""

# One atomic step per batch, run while holding the sequence locks:
#   1. the epoch must be the one this batch started with (else Redis was lost or rebuilt);
#   2. each counter must still hold the value the batch read under the lock (compare-and-set);
#   3. raise it to start-1 if below, INCRBY the block size;
#   4. HSETNX every new assignment (and, if enabled, its reverse entry number -> customer).
# Counter and assignments change together, so a crash never leaves a reserved but unrecorded
# number: a retry finds the assignments and reissues the same numbers, and no gap opens.
# KEYS: epoch, counters..., then a bucket per new customer (and a number bucket if reverse).
# ARGV: epoch, counter count, reverse (0/1), (expected, floor, n) per counter,
#       then (field, value) per customer, plus (number, customer key) if reverse.
_ALLOCATE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('EPOCH changed') end
local c = tonumber(ARGV[2])
local reverse = ARGV[3] == '1'
for i = 1, c do
  local current = redis.call('GET', KEYS[1 + i]) or '0'
  if current ~= ARGV[1 + 3 * i] then
    return redis.error_reply('COUNTER moved: ' .. KEYS[1 + i])
  end
end
for i = 1, c do
  local key = KEYS[1 + i]
  local floor = tonumber(ARGV[2 + 3 * i])
  if tonumber(redis.call('GET', key) or '0') < floor then redis.call('SET', key, floor) end
  redis.call('INCRBY', key, ARGV[3 + 3 * i])
end
local k, a = 2 + c, 4 + 3 * c
local clashes = 0
while k <= #KEYS do
  if redis.call('HSETNX', KEYS[k], ARGV[a], ARGV[a + 1]) == 0 then clashes = clashes + 1 end
  k, a = k + 1, a + 2
  if reverse then
    redis.call('HSETNX', KEYS[k], ARGV[a], ARGV[a + 1])
    k, a = k + 1, a + 2
  end
end
return clashes
"""

# Raise-only: a counter never moves backwards.
_RAISE = """
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current < tonumber(ARGV[i]) then redis.call('SET', KEYS[i], ARGV[i]) end
end
return #KEYS
"""


class AllocationConflictError(CustomerIdsError):
    """Redis changed under us although we held the lock (an expired lease); retry the batch."""


class LockTimeoutError(CustomerIdsError):
    """Another instance held a sequence lock longer than CUSTOMER_IDS_LOCK_WAIT_MS."""


@dataclass(frozen=True, slots=True)
class StoredAssignment:
    """What Redis keeps per customer: enough to re-issue the same event byte for byte."""

    counter: str
    value: int
    number: str

    def encode(self) -> str:
        return f"{self.counter}|{self.value}|{self.number}"

    @classmethod
    def decode(cls, raw: str) -> StoredAssignment:
        counter, value, number = raw.split("|", 2)
        return cls(counter, int(value), number)


class SequenceAllocator:
    """A thin typed layer over redis-py: only the calls allocation needs."""

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        lock_timeout_s: float,
        lock_wait_s: float,
        reverse_index: bool = False,
    ) -> None:
        self._redis = client
        self.keys = keys
        self.reverse_index = reverse_index
        self._lock_timeout_s = lock_timeout_s
        self._lock_wait_s = lock_wait_s
        self._lookup = client.register_script(_LOOKUP)
        self._allocate = client.register_script(_ALLOCATE)
        self._raise = client.register_script(_RAISE)

    @contextmanager
    def locked(self, sequence_names: Sequence[str], lease_s: float | None = None) -> Iterator[None]:
        """Hold the locks of these sequences, taken in sorted order so instances never deadlock."""
        with ExitStack() as stack:
            for name in sorted(set(sequence_names)):
                lock: Lock = self._redis.lock(
                    self.keys.lock(name),
                    timeout=lease_s or self._lock_timeout_s,
                    blocking_timeout=self._lock_wait_s,
                )
                if not lock.acquire():
                    raise LockTimeoutError(
                        f"lock {self.keys.lock(name)} not acquired within {self._lock_wait_s}s"
                    )
                stack.callback(_release_quietly, lock)
            yield

    def lookup(self, customer_keys: Sequence[str]) -> dict[str, StoredAssignment]:
        """Existing assignments of these customers, in one command."""
        if not customer_keys:
            return {}
        fields = [customer_field(key) for key in customer_keys]
        joined = self._lookup(keys=[self.keys.assignments(f) for f in fields], args=fields)
        values = joined.decode().split("\n")
        return {
            key: StoredAssignment.decode(raw)
            for key, raw in zip(customer_keys, values, strict=True)
            if raw
        }

    def counters(self, counter_names: Sequence[str]) -> dict[str, int]:
        """Current values of these counters (0 when new), read under the lock."""
        values = self._redis.mget([self.keys.counter(name) for name in counter_names])
        return {name: int(v or 0) for name, v in zip(counter_names, values, strict=True)}

    def allocate(
        self,
        epoch: str,
        expected: dict[str, tuple[int, int, int]],
        new: dict[str, StoredAssignment],
    ) -> None:
        """Advance counters and record new assignments in one atomic, epoch-checked step.

        `expected` maps counter -> (value read under the lock, floor = start - 1, block size).
        """
        counters = sorted(expected)
        keys: list[str] = [self.keys.epoch, *map(self.keys.counter, counters)]
        args: list[str | int | bytes] = [epoch, len(counters), int(self.reverse_index)]
        for counter in counters:
            args += list(expected[counter])
        for customer, assignment in new.items():
            field = customer_field(customer)
            keys.append(self.keys.assignments(field))
            args += [field, assignment.encode()]
            if self.reverse_index:
                keys.append(self.keys.numbers(assignment.number))
                args += [assignment.number, customer]
        try:
            clashes = self._allocate(keys=keys, args=args)
        except redis.ResponseError as exc:
            raise _allocation_error(exc) from exc
        if clashes:
            # Only possible when a lock lease expired under a paused holder: abort and retry.
            raise AllocationConflictError(f"{clashes} customer(s) were recorded concurrently")

    def raise_counters(self, floors: dict[str, int]) -> None:
        if floors:
            names = sorted(floors)
            self._raise(keys=[self.keys.counter(n) for n in names], args=[floors[n] for n in names])

    def epoch_is(self, epoch: str) -> bool:
        """The fence after the batch's records reached the broker (see consumer/service.py)."""
        return self.current_epoch() == epoch

    def set_epoch(self, epoch: str) -> None:
        self._redis.set(self.keys.epoch, epoch)

    def restore(self, assignments: dict[str, str]) -> None:
        """Write assignments read back from the output topic (the record of truth), in their
        stored form, one HSET per bucket."""
        buckets: dict[str, dict[bytes, str]] = {}
        numbers: dict[str, dict[str, str]] = {}
        for customer, stored in assignments.items():
            field = customer_field(customer)
            buckets.setdefault(self.keys.assignments(field), {})[field] = stored
            if self.reverse_index:
                number = stored.split("|", 2)[2]
                numbers.setdefault(self.keys.numbers(number), {})[number] = customer
        pipe = self._redis.pipeline(transaction=False)
        for key, mapping in (*buckets.items(), *numbers.items()):
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
        pipe.execute()

    def current_epoch(self) -> str | None:
        raw = self._redis.get(self.keys.epoch)
        return _text(raw)

    def customer_of(self, number: str) -> str | None:
        """number -> customer key, from the reverse index (None when it is off or unknown)."""
        raw = self._redis.hget(self.keys.numbers(number), number)
        return _text(raw)


def _text(raw: object) -> str | None:
    """redis-py returns bytes unless decode_responses is set; accept both."""
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _allocation_error(exc: redis.ResponseError) -> Exception:
    if "EPOCH" in str(exc):
        return EpochChangedError("Redis state changed since this batch began (lost or rebuilt)")
    if "COUNTER moved" in str(exc):
        return AllocationConflictError(str(exc))
    return exc


def _release_quietly(lock: Lock) -> None:
    """A lease that expired (or a wiped Redis) has nothing to release; that is not an error."""
    with suppress(redis.exceptions.LockError, redis.RedisError):
        lock.release()
