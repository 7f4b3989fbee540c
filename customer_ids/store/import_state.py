"""The Redis steps of `customer-ids import` (customer_ids/tools/importing.py), each one script:

- `raise_counters`: under the sequence locks, in the state the caller validated, each counter
  raised to the highest imported value, and where it stood before kept in the same step (a
  retry must not take its own raise for the service's numbering);
- `begin`: the state marked `rebuilding:<token>` (no instance allocates or passes its fence)
  only if it is still the caller's epoch on the server it was validated on;
- `fence`: after the chunk's records reached the broker and before its commit, the marker is
  still this chunk's on the same server (nobody recovered past it meanwhile);
- `adopt`: after the commit, the chunk's pairs into the map, each bucket checked against the
  ledger first and counted in it by what was added (a bucket that lost entries meanwhile is
  not blessed), the reverse index too.

The end is the recovery's own `complete_rebuild` (a new epoch, the checkpoint raised).
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from customer_ids.adapters.redis_keys import customer_field
from customer_ids.store.ports import GENERATION, StoredAssignment
from customer_ids.store.redis_store import CHECK_STATE, RedisNumberStore, script_error

# KEYS: epoch, identity, ledger, generation, below hash, counters...
# ARGV: epoch, then (name, highest) per counter. Returns {generation, below per counter}.
_RAISE = (
    CHECK_STATE
    + """
local bad = state_error(ARGV[1])
if bad then return redis.error_reply(bad) end
local ledger, generation, below = KEYS[3], KEYS[4], KEYS[5]
local gen = redis.call('GET', generation) or '0'
if gen ~= (redis.call('HGET', ledger, generation) or '0') then
  return redis.error_reply('LEDGER ' .. generation .. ' at ' .. gen .. ', not as recorded')
end
local out = {}
for i = 6, #KEYS do
  local key, name = KEYS[i], ARGV[2 * (i - 5)]
  local highest = tonumber(ARGV[2 * (i - 5) + 1])
  local current = redis.call('GET', key) or '0'
  if current ~= (redis.call('HGET', ledger, key) or '0') then
    return redis.error_reply('LEDGER ' .. key .. ' at ' .. current .. ', not as recorded')
  end
  redis.call('HSETNX', below, name, current)
  if tonumber(current) < highest then
    redis.call('SET', key, ARGV[2 * (i - 5) + 1])
    redis.call('HSET', ledger, key, ARGV[2 * (i - 5) + 1])
  end
  out[#out + 1] = redis.call('HGET', below, name)
end
gen = redis.call('INCR', generation)
redis.call('HSET', ledger, generation, gen)
table.insert(out, 1, gen)
return out
"""
)

# KEYS: epoch, identity, rebuild identity. ARGV: the epoch seen, token.
_BEGIN = (
    CHECK_STATE
    + """
local bad = state_error(ARGV[1])
if bad then return redis.error_reply(bad) end
redis.call('SET', KEYS[1], 'rebuilding:' .. ARGV[2])
redis.call('SET', KEYS[3], identity())
return 1
"""
)

# The marker is still this chunk's (ARGV[1] its token), on the server it was set on.
# KEYS[1] the epoch, KEYS[3] the rebuild identity.
OWN_MARKER = (
    CHECK_STATE
    + """
local function marker_error()
  if redis.call('GET', KEYS[1]) ~= 'rebuilding:' .. ARGV[1] then
    return 'SUPERSEDED: the state is not this import chunk\\'s any more'
  end
  if redis.call('GET', KEYS[3]) ~= identity() then
    return 'STATE server changed during the import chunk'
  end
  return nil
end
local lost = marker_error()
if lost then return redis.error_reply(lost) end
"""
)

# KEYS: epoch, identity, rebuild identity. ARGV: token.
_FENCE = OWN_MARKER + "return 1\n"

# KEYS: epoch, identity, rebuild identity, ledger, then per pair its bucket (and its number's
# bucket when `reverse`). ARGV: token, reverse (0/1), then per pair field, stored (and number,
# customer key). Returns the pairs added.
_ADOPT = (
    OWN_MARKER
    + """
local ledger, reverse = KEYS[4], ARGV[2] == '1'
local held, added, order = {}, {}, {}
local k, a = 5, 3
while k <= #KEYS do
  local bucket = KEYS[k]
  if not held[bucket] then
    local want = tonumber(redis.call('HGET', ledger, bucket) or '0')
    if redis.call('HLEN', bucket) ~= want then
      return redis.error_reply('LEDGER ' .. bucket .. ' does not hold what the ledger counts')
    end
    held[bucket], added[bucket] = want, 0
    order[#order + 1] = bucket
  end
  if redis.call('HSETNX', bucket, ARGV[a], ARGV[a + 1]) == 1 then
    added[bucket] = added[bucket] + 1
  elseif redis.call('HGET', bucket, ARGV[a]) ~= ARGV[a + 1] then
    return redis.error_reply('CLASH a customer of the chunk holds another number now')
  end
  k, a = k + 1, a + 2
  if reverse then
    redis.call('HSETNX', KEYS[k], ARGV[a], ARGV[a + 1])
    k, a = k + 1, a + 2
  end
end
local total = 0
for _, bucket in ipairs(order) do
  redis.call('HSET', ledger, bucket, held[bucket] + added[bucket])
  total = total + added[bucket]
end
return total
"""
)


class ImportState:
    """The import's steps on the store the service uses (its keys, reverse index, leases)."""

    def __init__(self, store: RedisNumberStore) -> None:
        self.store = store
        client = store.client
        self._raise = client.register_script(_RAISE)
        self._begin = client.register_script(_BEGIN)
        self._fence = client.register_script(_FENCE)
        self._adopt = client.register_script(_ADOPT)

    def _marker_keys(self) -> list[str]:
        keys = self.store.keys
        return [keys.epoch, keys.identity, keys.rebuild_identity]

    def raise_counters(
        self, epoch: str, import_id: str, highest: Mapping[str, int]
    ) -> tuple[int, dict[str, int]]:
        """The generation this step took and, per counter, where it stood before the import
        first raised it. Hold the counters' sequence locks around it."""
        keys = self.store.keys
        names = sorted(highest)
        args: list[str | int] = [epoch]
        for name in names:
            args += [name, highest[name]]
        try:
            reply = self._raise(
                keys=[
                    keys.epoch,
                    keys.identity,
                    keys.ledger,
                    keys.counter(GENERATION),
                    keys.import_below(import_id),
                    *map(keys.counter, names),
                ],
                args=args,
            )
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
        return int(reply[0]), {name: int(v) for name, v in zip(names, reply[1:], strict=True)}

    def begin(self, epoch: str, token: str) -> None:
        try:
            self._begin(keys=self._marker_keys(), args=[epoch, token])
        except redis.ResponseError as exc:
            raise script_error(exc) from exc

    def fence(self, token: str) -> None:
        try:
            self._fence(keys=self._marker_keys(), args=[token])
        except redis.ResponseError as exc:
            raise script_error(exc) from exc

    def adopt(self, token: str, pairs: Mapping[str, StoredAssignment]) -> int:
        keys = self.store.keys
        reverse = self.store.reverse_index
        names: list[str] = [*self._marker_keys(), keys.ledger]
        args: list[str | bytes | int] = [token, int(reverse)]
        for customer, stored in pairs.items():
            field = customer_field(customer)
            names.append(keys.assignments(field))
            args += [field, stored.encode()]
            if reverse:
                names.append(keys.numbers(stored.number))
                args += [stored.number, customer]
        try:
            return int(self._adopt(keys=names, args=args))
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
