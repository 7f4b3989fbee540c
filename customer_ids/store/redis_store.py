"""The Redis number store: counters, the customer -> number map, and the checks that keep a
Redis that went back in time from handing out a number twice (DESIGN §3, §5).

Uniqueness comes from INCRBY on one counter key. Every write that allocates first checks, in
the same Lua step, that the state is the one the caller validated: the epoch (a uuid; missing
after a wipe, `rebuilding:<token>` during a recovery) and the server's identity (run_id and
master_replid, which change on every restart and failover; a restored snapshot, a lost AOF
tail and a promoted replica that lagged all come with one). The identity the state was last
validated on is stored beside it, so any server that comes back with older data is noticed
before it allocates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.commands.core import Script

from customer_ids.adapters import failpoints
from customer_ids.adapters.redis_keys import RedisKeys, customer_field
from customer_ids.domain.errors import CustomerIdsError
from customer_ids.store.leases import Lease, Leases
from customer_ids.store.ports import (
    GENERATION,
    MERGE_SEPARATOR,
    AllocationConflictError,
    StateBehindLogError,
    StateChangedError,
    StoredAssignment,
    StoreStatus,
)

# Shared by the scripts that must refuse a state that is not the caller's. KEYS[1] is the
# epoch key, KEYS[2] the stored identity.
CHECK_STATE = """
local function identity()
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
  if not run or not replid then
    -- Two servers that both hid these would look alike: refuse rather than guess.
    error('IDENTITY unreadable: INFO shows no run_id or master_replid')
  end
  return run .. '/' .. replid
end
-- Raise-only: each (field, offset) pair of ARGV from `first` on, into the hash `key`.
local function raise_fields(key, first)
  for i = first, #ARGV, 2 do
    local current = tonumber(redis.call('HGET', key, ARGV[i]) or '0')
    if current < tonumber(ARGV[i + 1]) then redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
  end
end
local function state_error(epoch)
  if redis.call('GET', KEYS[1]) ~= epoch then return 'STATE epoch changed' end
  if redis.call('GET', KEYS[2]) ~= identity() then return 'STATE server changed' end
  return nil
end
"""

# Existing assignments of a batch's customers in one command, each bucket checked against the
# ledger first: a bucket deleted, evicted or restored to older content holds fewer entries than
# the ledger counts, and its missing customers would look new (a second number). KEYS: the
# ledger, then a bucket per customer; ARGV: the field digests. One array reply, '' where a
# customer has none.
_LOOKUP = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('LEDGER missing: the map cannot be trusted')
end
local out = {}
for first = 2, #KEYS, 1000 do
  local last = math.min(first + 999, #KEYS)
  local wants = redis.call('HMGET', KEYS[1], unpack(KEYS, first, last))
  for i = first, last do
    local want = tonumber(wants[i - first + 1] or '0')
    local held = redis.call('HLEN', KEYS[i])
    if held ~= want then
      local why = ' holds ' .. held .. ' entries, not ' .. want
      return redis.error_reply('LEDGER ' .. KEYS[i] .. why)
    end
    out[i - 1] = redis.call('HGET', KEYS[i], ARGV[i - 1]) or ''
  end
end
return out
"""

# One atomic step per batch, run while holding the sequence locks:
#   1. the state must be the one this batch started with (epoch and server identity);
#   2. each counter must still hold the value the batch read under the lock (compare-and-set)
#      and the value the ledger recorded (a counter restored, deleted or evicted differs);
#   3. raise it to start-1 if below, INCRBY the block size, note the result in the ledger;
#   4. HSETNX every new assignment, counting it in the ledger (and, if enabled, its reverse
#      entry number -> customer);
#   5. advance the allocation generation (consumer/claims.py), checked against the ledger too.
# KEYS: epoch, identity, ledger, generation, counters..., then a bucket per new customer (and
#       a number bucket). Returns {clashes, generation}.
# ARGV: epoch, counter count, reverse (0/1), (expected, floor, n) per counter, then (field,
#       value) per customer, plus (number, customer key) if reverse.
_ALLOCATE = (
    CHECK_STATE
    + """
local bad = state_error(ARGV[1])
if bad then return redis.error_reply(bad) end
local ledger, generation = KEYS[3], KEYS[4]
local c = tonumber(ARGV[2])
local reverse = ARGV[3] == '1'
local gen = redis.call('GET', generation) or '0'
if gen ~= (redis.call('HGET', ledger, generation) or '0') then
  return redis.error_reply('LEDGER ' .. generation .. ' at ' .. gen .. ', not as recorded')
end
for i = 1, c do
  local key = KEYS[4 + i]
  local current = redis.call('GET', key) or '0'
  if current ~= ARGV[1 + 3 * i] then
    return redis.error_reply('COUNTER moved: ' .. key)
  end
  if current ~= (redis.call('HGET', ledger, key) or '0') then
    return redis.error_reply('LEDGER ' .. key .. ' at ' .. current .. ', not as recorded')
  end
end
for i = 1, c do
  local key = KEYS[4 + i]
  local floor = tonumber(ARGV[2 + 3 * i])
  if tonumber(redis.call('GET', key) or '0') < floor then
    redis.call('SET', key, ARGV[2 + 3 * i])
  end
  redis.call('HSET', ledger, key, redis.call('INCRBY', key, ARGV[3 + 3 * i]))
end
local k, a = 5 + c, 4 + 3 * c
local clashes = 0
local added, buckets = {}, {}
while k <= #KEYS do
  local recorded = redis.call('HSETNX', KEYS[k], ARGV[a], ARGV[a + 1]) == 1
  if not recorded then
    clashes = clashes + 1
  else
    local bucket = KEYS[k]
    if not added[bucket] then
      added[bucket] = 0
      buckets[#buckets + 1] = bucket
    end
    added[bucket] = added[bucket] + 1
  end
  k, a = k + 1, a + 2
  if reverse then
    -- Only for a customer recorded now: a clash's number was never its to own.
    if recorded then
      redis.call('HSETNX', KEYS[k], ARGV[a], ARGV[a + 1])
    end
    k, a = k + 1, a + 2
  end
end
-- The ledger counts what was added, a thousand buckets a command.
for first = 1, #buckets, 1000 do
  local last = math.min(first + 999, #buckets)
  local had = redis.call('HMGET', ledger, unpack(buckets, first, last))
  local pairs_ = {}
  for i = first, last do
    pairs_[#pairs_ + 1] = buckets[i]
    pairs_[#pairs_ + 1] = tonumber(had[i - first + 1] or '0') + added[buckets[i]]
  end
  redis.call('HSET', ledger, unpack(pairs_))
end
gen = redis.call('INCR', generation)
redis.call('HSET', ledger, generation, gen)
return {clashes, gen}
"""
)

# The fence after a batch's records reached the broker: the state must still be the batch's;
# then raise the checkpoint of each output partition to the end of what the batch wrote there.
# Returns the number of connected replicas (for WAIT). KEYS: epoch, identity, checkpoint.
# ARGV: epoch, then (field, offset) pairs.
_FENCE = (
    CHECK_STATE
    + """
local bad = state_error(ARGV[1])
if bad then return redis.error_reply(bad) end
if ARGV[2] ~= '' and (redis.call('GET', KEYS[4]) or '0') ~= ARGV[2] then
  return redis.error_reply('MERGES moved: a merge changed customers since this batch read them')
end
raise_fields(KEYS[3], 3)
local r = redis.call('INFO', 'replication')
return tonumber(string.match(r, 'connected_slaves:(%d+)') or '0')
"""
)

# {epoch or false, stored identity or false, live identity}. KEYS: epoch, identity.
_STATUS = (
    CHECK_STATE
    + """
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), identity()}
"""
)

# The start of a recovery, in one step on one server: only from the epoch the caller saw
# (another recovery may have finished meanwhile), mark the state rebuilding, note which server
# the rebuild runs on, and return the checkpoint to read from (none when the rebuild is full).
# A full rebuild says so in its marker (`rebuilding:full-<token>`): one that dies half way is
# followed by another full one, never by one that trusts the checkpoint.
# KEYS: epoch, identity, checkpoint, rebuild identity. ARGV: token, the epoch seen ('' = none),
# full (0/1). Returns {full (0/1), field, offset, field, offset, ...}.
_BEGIN = (
    CHECK_STATE
    + """
local seen = redis.call('GET', KEYS[1]) or ''
if seen ~= ARGV[2] then return redis.error_reply('SUPERSEDED: the state changed meanwhile') end
local full = seen == '' or ARGV[3] == '1' or string.sub(seen, 1, 16) == 'rebuilding:full-'
if full then redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[1], 'rebuilding:' .. (full and 'full-' or '') .. ARGV[1])
redis.call('SET', KEYS[4], identity())
local out = {full and 1 or 0}
for _, v in ipairs(redis.call('HGETALL', KEYS[3])) do out[#out + 1] = v end
return out
"""
)

# The end of a recovery: only the recovery that set `rebuilding:<token>` may declare the state
# valid (one that lost its lease and was taken over cannot), and only on the server it began
# on: a server that restarted or failed over meanwhile may lack what the recovery wrote.
# KEYS: epoch, identity, checkpoint, rebuild identity. ARGV: token, new epoch, (field, offset)s.
_COMPLETE = (
    CHECK_STATE
    + """
local marker = redis.call('GET', KEYS[1])
if marker ~= 'rebuilding:' .. ARGV[1] and marker ~= 'rebuilding:full-' .. ARGV[1] then
  return redis.error_reply('SUPERSEDED by another recovery')
end
if redis.call('GET', KEYS[4]) ~= identity() then
  return redis.error_reply('STATE server changed during the recovery')
end
raise_fields(KEYS[3], 3)
redis.call('SET', KEYS[2], identity())
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
)

# A checkpoint rebuild that found keys lost turns full, in Redis, before it wipes anything: a
# successor must not trust the checkpoint. KEYS: epoch, identity, checkpoint, rebuild identity.
# ARGV: token.
_ESCALATE = """
if redis.call('GET', KEYS[1]) ~= 'rebuilding:' .. ARGV[1] then
  return redis.error_reply('SUPERSEDED by another recovery')
end
redis.call('SET', KEYS[1], 'rebuilding:full-' .. ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"""

# Raise-only, in one step: a counter never moves backwards (a recoverer that paused cannot
# set one below what allocations reached meanwhile). KEYS: counters; ARGV: floors.
_RAISE = """
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') < tonumber(ARGV[i]) then
    redis.call('SET', KEYS[i], ARGV[i])
  end
end
return #KEYS
"""

# The ledger (KEYS[1]) made to say what the keys after it hold now: run by a recovery on
# what it has validated. A counter's entry is its value, a bucket's its number of entries.
# ARGV[i] is 'c' for a counter, 'b' for a bucket.
_RECORD = """
for i = 2, #KEYS do
  if ARGV[i - 1] == 'c' then
    redis.call('HSET', KEYS[1], KEYS[i], redis.call('GET', KEYS[i]) or '0')
  else
    redis.call('HSET', KEYS[1], KEYS[i], redis.call('HLEN', KEYS[i]))
  end
end
return #KEYS - 1
"""


# Restore one chunk of assignments read back from the log: for each bucket, HSET its entries
# and count them in the ledger. One call per chunk: a pipeline of one HSET per bucket cost the
# rebuild more in redis-py's packing of tens of thousands of commands than Redis spent on them.
# KEYS: ledger, then each bucket once. ARGV: per bucket its entry count n, then n field/value.
_RESTORE = """
local a = 1
for i = 2, #KEYS do
  local n = tonumber(ARGV[a])
  local args = {}
  for j = 1, 2 * n do args[j] = ARGV[a + j] end
  redis.call('HSET', KEYS[i], unpack(args))
  redis.call('HSET', KEYS[1], KEYS[i], redis.call('HLEN', KEYS[i]))
  a = a + 2 * n + 1
end
return #KEYS - 1
"""


# Merges and unmerges (consumer/merges.py), in one step on the state the batch started from:
# each customer's entry replaced (it must exist: a merge never adds a customer, so the ledger's
# counts stay), and the sets of customers merged into each survivor updated.
# Compare-and-set: only from the merge generation the batch read its view at (a holder that
# lost its lock while paused writes nothing), and each entry only from the value it read.
# KEYS: epoch, identity, generation, a bucket per entry, then a set per set change.
# ARGV: epoch, generation read, entry count, (field, old, new) per entry, then ('+' or '-',
#       member) per set change. Returns the new generation.
_MERGE = (
    CHECK_STATE
    + """
local bad = state_error(ARGV[1])
if bad then return redis.error_reply(bad) end
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[2] then
  return redis.error_reply('MERGES moved: another merge applied since this view was read')
end
local n = tonumber(ARGV[3])
for i = 1, n do
  local held = redis.call('HGET', KEYS[3 + i], ARGV[1 + 3 * i])
  if not held then
    return redis.error_reply('LEDGER ' .. KEYS[3 + i] .. ' lacks a merged customer')
  end
  if held ~= ARGV[2 + 3 * i] then
    return redis.error_reply('MERGES moved: a customer changed since this view was read')
  end
end
for i = 1, n do
  redis.call('HSET', KEYS[3 + i], ARGV[1 + 3 * i], ARGV[3 + 3 * i])
end
local a = 4 + 3 * n
for k = 4 + n, #KEYS do
  if ARGV[a] == '+' then
    redis.call('SADD', KEYS[k], ARGV[a + 1])
  else
    redis.call('SREM', KEYS[k], ARGV[a + 1])
  end
  a = a + 2
end
return redis.call('INCR', KEYS[3])
"""
)

RESTORE_BUCKETS = 4096  # buckets per restore call: Redis is busy a few milliseconds at a time


class RecoverySupersededError(StateChangedError):
    """Another recovery took over this one (its lease expired); its result is void."""


class ReplicasBehindError(CustomerIdsError):
    """Fewer replicas than required acknowledged the batch's allocation in time."""


class RedisNumberStore:
    """The NumberStore on Redis: a thin typed layer over redis-py with the scripts above."""

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        leases: Leases,
        lock_wait_s: float,
        reverse_index: bool = False,
    ) -> None:
        self._redis = client
        self.keys = keys
        self.leases = leases
        self.reverse_index = reverse_index
        self._lock_wait_s = lock_wait_s
        self._lookup = client.register_script(_LOOKUP)
        self._allocate = client.register_script(_ALLOCATE)
        self._fence = client.register_script(_FENCE)
        self._status = client.register_script(_STATUS)
        self._begin = client.register_script(_BEGIN)
        self._complete = client.register_script(_COMPLETE)
        self._record = client.register_script(_RECORD)
        self._escalate = client.register_script(_ESCALATE)
        self._raise = client.register_script(_RAISE)
        self._restore = client.register_script(_RESTORE)
        self._merge = client.register_script(_MERGE)
        # The field digest and bucket of each customer of the last lookup: a batch looks its
        # customers up, then allocates the new ones, and need not hash them twice.
        self._placed: dict[str, tuple[bytes, str]] = {}

    @property
    def client(self) -> redis.Redis:
        """The connection, for the stores kept beside this one (customer_ids/store/terms.py)."""
        return self._redis

    # ------------------------------------------------------------ allocation
    @contextmanager
    def locked(self, sequence_names: Sequence[str]) -> Iterator[Lease]:
        with self.leases.hold(
            [self.keys.lock(n) for n in sequence_names], wait_s=self._lock_wait_s
        ) as lease:
            yield lease

    def lookup(self, customer_keys: Sequence[str]) -> dict[str, StoredAssignment]:
        """Existing assignments of these customers, in one command."""
        if not customer_keys:
            return {}
        fields = [customer_field(key) for key in customer_keys]
        buckets = [self.keys.assignments(f) for f in fields]
        self._placed = dict(zip(customer_keys, zip(fields, buckets, strict=True), strict=True))
        try:
            values = self._read_only(self._lookup, [self.keys.ledger, *buckets], fields)
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
        return {
            key: StoredAssignment.decode(raw.decode())
            for key, raw in zip(customer_keys, values, strict=True)
            if raw
        }

    def _read_only(self, script: Script, keys: list[str], args: Sequence[str | bytes] = ()) -> Any:
        """A script that writes nothing, run as EVALSHA_RO: a read-only Redis user (the API's,
        its keys granted %R~) may run it where EVALSHA, which may write its keys, is refused.
        A server that lost its script cache gets it again, as redis-py's Script does."""
        try:
            return self._redis.evalsha_ro(script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            script.sha = self._redis.script_load(script.script)
            return self._redis.evalsha_ro(script.sha, len(keys), *keys, *args)

    def merged_into(self, customer_keys: Sequence[str]) -> dict[str, set[str]]:
        """The customers recorded as merged directly into each of these (a hint: check each
        one's own entry)."""
        pipe = self._redis.pipeline(transaction=False)
        for key in customer_keys:
            pipe.smembers(self.keys.merged_into(key))
        found = pipe.execute()
        return {
            key: {_text(m) or "" for m in members}
            for key, members in zip(customer_keys, found, strict=True)
        }

    def merge_generation(self) -> int:
        """How many merge steps were applied (0 on a new or rebuilt state)."""
        return int(self._redis.get(self.keys.merge_generation) or 0)

    def apply_merges(
        self,
        epoch: str,
        generation: int,
        entries: Mapping[str, tuple[StoredAssignment, StoredAssignment]],
        links: Sequence[tuple[str, str, bool]],
    ) -> int:
        """Replace these customers' entries (old, new) and add (True) or drop (False) each
        (survivor, merged) link, on the state `epoch` and from merge `generation` only
        (StateChangedError, AllocationConflictError otherwise). Returns the new generation."""
        keys: list[str] = [self.keys.epoch, self.keys.identity, self.keys.merge_generation]
        args: list[str | bytes | int] = [epoch, generation, len(entries)]
        for customer, (old, new) in entries.items():
            field, bucket = self._place(customer)
            keys.append(bucket)
            args += [field, old.encode(), new.encode()]
        for survivor, merged, add in links:
            keys.append(self.keys.merged_into(survivor))
            args += ["+" if add else "-", merged]
        try:
            return int(self._merge(keys=keys, args=args))
        except redis.ResponseError as exc:
            raise script_error(exc) from exc

    def counters(self, counter_names: Sequence[str]) -> dict[str, int]:
        """Current values of these counters (0 when new), read under the lock."""
        values = self._redis.mget([self.keys.counter(name) for name in counter_names])
        return {name: int(v or 0) for name, v in zip(counter_names, values, strict=True)}

    def allocate(
        self,
        epoch: str,
        expected: Mapping[str, tuple[int, int, int]],
        new: Mapping[str, StoredAssignment],
    ) -> int:
        """`expected` maps counter -> (value read under the lock, floor = start - 1, block).
        Returns the allocation generation this step took (consumer/claims.py)."""
        failpoints.reached("before_allocate")
        counters = sorted(expected)
        keys: list[str] = [
            self.keys.epoch,
            self.keys.identity,
            self.keys.ledger,
            self.keys.counter(GENERATION),
            *map(self.keys.counter, counters),
        ]
        args: list[str | int | bytes] = [epoch, len(counters), int(self.reverse_index)]
        for counter in counters:
            args += list(expected[counter])
        for customer, assignment in new.items():
            field, bucket = self._placed.get(customer) or self._place(customer)
            keys.append(bucket)
            args += [field, assignment.encode()]
            if self.reverse_index:
                keys.append(self.keys.numbers(assignment.number))
                args += [assignment.number, customer]
        try:
            clashes, generation = self._allocate(keys=keys, args=args)
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
        if clashes:
            # Only possible when a lock lease expired under a paused holder: abort and retry.
            raise AllocationConflictError(f"{clashes} customer(s) were recorded concurrently")
        return int(generation)

    def _place(self, customer: str) -> tuple[bytes, str]:
        field = customer_field(customer)
        return field, self.keys.assignments(field)

    # ------------------------------------------------------------ the fence and durability
    def fence(
        self, epoch: str, checkpoint: Mapping[str, int], merge_generation: int | None = None
    ) -> int:
        """Refuse (StateChangedError) unless the state is still `epoch` on the same server,
        and (AllocationConflictError) unless no merge applied since `merge_generation`; record
        how far each output partition is covered. Returns the connected replicas."""
        args: list[str | int] = [epoch, "" if merge_generation is None else merge_generation]
        for field, offset in checkpoint.items():
            args += [field, offset]
        keys = [self.keys.epoch, self.keys.identity, self.keys.checkpoint]
        try:
            replicas = self._fence(keys=[*keys, self.keys.merge_generation], args=args)
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
        return int(replicas)

    def wait_for_replicas(self, replicas: int, timeout_ms: int) -> None:
        """WAIT until `replicas` acknowledged every write so far (DESIGN §5.1)."""
        if replicas <= 0:
            return
        # WAIT counts the writes of its own connection, and a pooled connection may have made
        # none: one small write first, on the same connection (a pipeline), so the replicas'
        # acknowledgement covers it and, the replication stream being ordered, all before it.
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(self.keys.wait_marker)
        pipe.execute_command("WAIT", replicas, timeout_ms)  # type: ignore[no-untyped-call]
        acked = int(pipe.execute()[1])
        if acked < replicas:
            raise ReplicasBehindError(
                f"{acked} of {replicas} Redis replica(s) acknowledged within {timeout_ms} ms"
            )

    # ------------------------------------------------------------ recovery
    def status(self) -> StoreStatus:
        epoch, stored, live = self._read_only(self._status, [self.keys.epoch, self.keys.identity])
        return StoreStatus(_text(epoch), _text(stored), _text(live) or "")

    @property
    def _rebuild_keys(self) -> list[str]:
        k = self.keys
        return [k.epoch, k.identity, k.checkpoint, k.rebuild_identity]

    def begin_rebuild(
        self, token: str, seen_epoch: str | None, full: bool = False
    ) -> tuple[bool, dict[str, int]]:
        """From now on nobody allocates or commits against this state until complete().
        Only from the epoch `seen_epoch` (RecoverySupersededError otherwise). Returns whether
        the rebuild is full (the state was lost, `full`, or an unfinished full rebuild is
        taken over) and the checkpoint to read from."""
        try:
            reply = self._begin(keys=self._rebuild_keys, args=[token, seen_epoch or "", int(full)])
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
        full = int(reply[0]) == 1
        pairs = [_text(v) or "" for v in reply[1:]]
        checkpoint = {pairs[i]: int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        return full, {} if full else checkpoint

    def complete_rebuild(self, token: str, epoch: str, checkpoint: Mapping[str, int]) -> None:
        args: list[str | int] = [token, epoch]
        for field, offset in checkpoint.items():
            args += [field, offset]
        try:
            self._complete(keys=self._rebuild_keys, args=args)
        except redis.ResponseError as exc:
            raise script_error(exc) from exc

    def _scan(self, kind: str) -> list[str]:
        """Every key of one kind under our prefix (`map`, `num`, `seq`, `search`, ...)."""
        pattern = f"{self.keys.prefix}{kind}:*"
        return [_text(k) or "" for k in self._redis.scan_iter(match=pattern, count=5000)]

    def wipe_map(self) -> None:
        """A full rebuild starts from nothing: the map, the reverse index, the counters, the
        search index and the ledger go, so no reservation of a batch that never committed
        survives it (the log's floors raise the counters again), nor an erased customer's
        search entries that an older Redis brought back (the search topic has them right)."""
        kinds = ("map", "num", "seq", "search", "terms", "erased")
        keys = [*(k for kind in kinds for k in self._scan(kind)), self.keys.ledger]
        for i in range(0, len(keys), 1000):
            self._redis.unlink(*keys[i : i + 1000])

    def ledger_problems(self) -> list[str]:
        """Where the map or a counter disagrees with the ledger (a key deleted, evicted or
        restored to older content on the same server): what a checkpoint cannot repair."""
        ledger = {
            (_text(k) or ""): int(v) for k, v in self._redis.hgetall(self.keys.ledger).items()
        }
        if not ledger:
            return ["the ledger is missing"]
        counters, buckets = self._scan("seq"), self._scan("map")
        keys = sorted({*counters, *buckets, *(k for k in ledger if k != "#")})
        pipe = self._redis.pipeline(transaction=False)
        buckets_start = f"{self.keys.prefix}map:"
        for key in keys:
            if key.startswith(buckets_start):
                pipe.hlen(key)
            else:
                pipe.get(key)
        held = [int(v or 0) for v in pipe.execute()]
        return [
            f"{key} holds {have}, the ledger says {ledger.get(key, 0)}"
            for key, have in zip(keys, held, strict=True)
            if have != ledger.get(key, 0)
        ][:5]

    def record_ledger(self) -> None:
        """The ledger made to match every counter and bucket, as a recovery has validated them."""
        entries = [(k, "c") for k in self._scan("seq")] + [(k, "b") for k in self._scan("map")]
        self._redis.hset(self.keys.ledger, "#", 1)
        for i in range(0, len(entries), 2000):
            chunk = entries[i : i + 2000]
            self._record(
                keys=[self.keys.ledger, *(k for k, _ in chunk)], args=[t for _, t in chunk]
            )

    def raise_counters(self, floors: Mapping[str, int]) -> None:
        """Raise-only: a counter never moves backwards (the ledger follows in record_ledger)."""
        if floors:
            names = sorted(floors)
            self._raise(keys=[self.keys.counter(n) for n in names], args=[floors[n] for n in names])

    def escalate_rebuild(self, token: str) -> None:
        """The running rebuild `token` turns full, in Redis (RecoverySupersededError if it is
        not the running one any more)."""
        try:
            self._escalate(keys=self._rebuild_keys, args=[token])
        except redis.ResponseError as exc:
            raise script_error(exc) from exc

    def restore(self, assignments: Mapping[str, str]) -> None:
        """Write assignments read back from the output topic (the record of truth), in their
        stored form, one HSET per bucket. Overwrites: the log is right where Redis differs."""
        buckets: dict[str, list[bytes | str]] = {}
        numbers: dict[str, dict[str, str]] = {}
        links: dict[str, list[str]] = {}
        for customer, stored in assignments.items():
            field, bucket = self._place(customer)
            entries = buckets.setdefault(bucket, [])
            entries += (field, stored)
            merged = StoredAssignment.decode(stored) if MERGE_SEPARATOR in stored else None
            if merged is not None:
                links.setdefault(merged.merged_into or "", []).append(customer)
            if self.reverse_index:
                # A merged customer's own number stays its own (retired, an alias).
                number = merged.own_assignment.number if merged else stored.split("|", 2)[2]
                numbers.setdefault(self.keys.numbers(number), {})[number] = customer
        if numbers or links:
            pipe = self._redis.pipeline(transaction=False)
            for key, mapping in numbers.items():
                pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            for survivor, merged_customers in links.items():
                pipe.sadd(self.keys.merged_into(survivor), *merged_customers)
            pipe.execute()
        names = list(buckets)
        for i in range(0, len(names), RESTORE_BUCKETS):
            chunk = names[i : i + RESTORE_BUCKETS]
            args: list[bytes | str | int] = []
            for name in chunk:
                entries = buckets[name]
                args.append(len(entries) // 2)
                args += entries
            self._restore(keys=[self.keys.ledger, *chunk], args=args)

    def mark_valid_for_tests(self, epoch: str) -> None:
        """Declare an empty state valid on this server (tests and the bench start from it)."""
        token = "setup"
        self.begin_rebuild(token, self.status().epoch)
        self.record_ledger()
        self.complete_rebuild(token, epoch, {})

    def customer_of(self, number: str) -> str | None:
        """number -> customer key, from the reverse index (None when it is off or unknown)."""
        return _text(self._redis.hget(self.keys.numbers(number), number))


def _text(raw: object) -> str | None:
    """redis-py returns bytes unless decode_responses is set; accept both."""
    if raw is None or raw is False:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def script_error(exc: redis.ResponseError) -> Exception:
    text = str(exc)
    if "SUPERSEDED" in text:
        return RecoverySupersededError(text)
    if "LEDGER" in text:
        return StateBehindLogError(f"Redis lost or restored keys on the same server ({text})")
    if "STATE" in text or "IDENTITY" in text:
        return StateChangedError(f"Redis is not the state this batch started from ({text})")
    if "COUNTER moved" in text or "MERGES moved" in text:
        return AllocationConflictError(text)
    return exc
