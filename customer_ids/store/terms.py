"""Each customer's search digests in Redis, kept by the service (README, "Personal data").

Three structures, written together in Lua steps: the index (`search:<digest>`, a set of
customer keys per keyed digest of an email or phone); per customer every digest it is found
under with the time of the newest event that brought one (`terms:<bucket>`, value
`<ms>|<digest>,<digest>`); and per erased customer the time its erasure was asked for
(`erased:<bucket>`). The second lets an erasure remove a customer from the index without its
email, and a later event with another email add to what it is found under. The third keeps an
erasure: digests from events no newer than it are never indexed again, whichever instance,
partition or retry brings them, and a recovery applies every erasure again (so a Redis put back
to before an erasure cannot bring it back, even after the search topic's tombstone is gone).
The digests are rebuilt from the service's own search topic (consumer/recovery.py), never from
the output topic that every subscriber reads.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from customer_ids.adapters.redis_keys import RedisKeys, customer_field
from customer_ids.store.ports import Forgotten, Terms, TermsUpdate
from customer_ids.store.redis_store import CHECK_STATE, script_error

# KEYS: epoch, identity, then per customer: its terms bucket, its erased bucket, one search set
#       per digest to add, one per digest to remove.
# ARGV: epoch ('' : no state check), then per customer: field, customer key, event time (ms),
#       digests to add (count), to remove (count), the digests to add, the digests to remove.
# Returns {customer key, value} for each customer not erased since its event: the value is all
# it is found under now, as the search topic records it.
_UPDATE = (
    CHECK_STATE
    + """
if ARGV[1] ~= '' then
  local bad = state_error(ARGV[1])
  if bad then return redis.error_reply(bad) end
end
local out = {}
local k, a = 3, 2
while a <= #ARGV do
  local bucket, erased = KEYS[k], KEYS[k + 1]
  local field, customer, at = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local na, nr = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local gone = redis.call('HGET', erased, field)
  if not gone or tonumber(at) > tonumber(gone) then
    local held = redis.call('HGET', bucket, field) or ''
    local held_at, list = string.match(held, '^(%d+)|(.*)$')
    if not held_at then held_at, list = '0', held end
    local have = {}
    for d in string.gmatch(list, '[^,]+') do have[d] = true end
    for i = 1, nr do
      have[ARGV[a + 4 + na + i]] = nil
      redis.call('SREM', KEYS[k + 1 + na + i], customer)
    end
    for i = 1, na do
      local d = ARGV[a + 4 + i]
      if not have[d] then
        have[d] = true
        redis.call('SADD', KEYS[k + 1 + i], customer)
      end
    end
    local all = {}
    for d in pairs(have) do all[#all + 1] = d end
    table.sort(all)
    -- Times stay strings: Lua prints a large number in exponent notation.
    local newest = held_at
    if tonumber(at) > tonumber(held_at) then newest = at end
    local value = newest .. '|' .. table.concat(all, ',')
    if #all == 0 then
      redis.call('HDEL', bucket, field)
    elseif value ~= held then
      redis.call('HSET', bucket, field, value)
    end
    out[#out + 1] = customer
    out[#out + 1] = value
  end
  k, a = k + 2 + na + nr, a + 5 + na + nr
end
return out
"""
)

# KEYS: epoch, identity, the customer's terms bucket, its erased bucket, one search set per
#       digest it holds. ARGV: epoch, field, customer key, its terms value as read, the
#       erasure's time (ms). Refuses when the terms changed meanwhile (the caller reads again).
# Returns {search entries removed, 1 if the search topic gets a tombstone}: digests from an
# event newer than the erasure (the customer came back) are kept.
_FORGET = (
    CHECK_STATE
    + """
local bad = state_error(ARGV[1])
if bad then return redis.error_reply(bad) end
if (redis.call('HGET', KEYS[3], ARGV[2]) or '') ~= ARGV[4] then
  return redis.error_reply('TERMS changed')
end
local gone = redis.call('HGET', KEYS[4], ARGV[2])
if not gone or tonumber(gone) < tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[5])
end
local held_at = string.match(ARGV[4], '^(%d+)|') or '0'
if ARGV[4] ~= '' and tonumber(held_at) > tonumber(ARGV[5]) then return {0, 0} end
for i = 5, #KEYS do redis.call('SREM', KEYS[i], ARGV[3]) end
redis.call('HDEL', KEYS[3], ARGV[2])
return {#KEYS - 4, 1}
"""
)


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else raw


class RedisTermsStore:
    """The TermsStore port on Redis."""

    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self.keys = keys
        self._update = client.register_script(_UPDATE)
        self._forget = client.register_script(_FORGET)

    def update(self, epoch: str | None, entries: Mapping[str, TermsUpdate]) -> dict[str, str]:
        """Apply these changes atomically, only if the state is still `epoch` (None: no state
        check, for `search-reindex`); per customer not erased since, its search topic value."""
        keys: list[str] = [self.keys.epoch, self.keys.identity]
        args: list[str | bytes | int] = [epoch or ""]
        for customer, change in entries.items():
            place = customer_field(customer)
            keys += [self.keys.terms(place), self.keys.erased(place)]
            keys += [self.keys.search_term(d) for d in change.add]
            keys += [self.keys.search_term(d) for d in change.remove]
            args += [place, customer, change.at_ms, len(change.add), len(change.remove)]
            args += [*change.add, *change.remove]
        if len(args) == 1:
            return {}
        try:
            reply = self._update(keys=keys, args=args)
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
        return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply), 2)}

    def forget(self, epoch: str, customer_key: str, requested_ms: int) -> Forgotten:
        """Remove the customer from the index and remember the erasure, only if the state is
        still `epoch`."""
        place = customer_field(customer_key)
        bucket = self.keys.terms(place)
        for _ in range(5):  # a batch of another instance may add a digest meanwhile
            held = _text(self._redis.hget(bucket, place))
            keys = [self.keys.epoch, self.keys.identity, bucket, self.keys.erased(place)]
            keys += [self.keys.search_term(d) for d in Terms.decode(held).digests]
            try:
                removed, tombstone = self._forget(
                    keys=keys, args=[epoch, place, customer_key, held, requested_ms]
                )
                return Forgotten(int(removed), bool(int(tombstone)))
            except redis.ResponseError as exc:
                if "TERMS changed" not in str(exc):
                    raise script_error(exc) from exc
        raise redis.ConnectionError("the customer's search digests kept changing: try again")

    def digests_of(self, customer_key: str) -> list[str]:
        """Every digest the customer is found under (tests and the erasure check)."""
        place = customer_field(customer_key)
        return Terms.decode(_text(self._redis.hget(self.keys.terms(place), place))).digests

    def restore(self, entries: Mapping[str, str | None]) -> None:
        """Make each customer found under exactly what its search topic value says (None, a
        tombstone: nothing); used by a recovery, while nobody else writes."""
        if not entries:
            return
        customers = list(entries)
        places = [customer_field(c) for c in customers]
        pipe = self._redis.pipeline(transaction=False)
        for place in places:
            pipe.hget(self.keys.terms(place), place)
        held = [set(Terms.decode(_text(v)).digests) for v in pipe.execute()]
        pipe = self._redis.pipeline(transaction=False)
        for customer, place, old in zip(customers, places, held, strict=True):
            value = entries[customer]
            new = set(Terms.decode(value).digests) if value else set()
            for digest in old - new:
                pipe.srem(self.keys.search_term(digest), customer)
            for digest in new - old:
                pipe.sadd(self.keys.search_term(digest), customer)
            if new and value:
                pipe.hset(self.keys.terms(place), place, value)
            elif old:
                pipe.hdel(self.keys.terms(place), place)
        pipe.execute()

    def apply_erasures(self, erased: Mapping[str, int]) -> int:
        """Remember every erasure (customer -> its time, ms) and remove what an older Redis
        still held of those customers from before it; a recovery's last step. Returns how
        many customers lost entries."""
        customers = list(erased)
        cleared = 0
        for i in range(0, len(customers), 1000):
            chunk = customers[i : i + 1000]
            places = [customer_field(c) for c in chunk]
            pipe = self._redis.pipeline(transaction=False)
            for customer, place in zip(chunk, places, strict=True):
                pipe.hset(self.keys.erased(place), place, erased[customer])
                pipe.hget(self.keys.terms(place), place)
            replies = pipe.execute()[1::2]
            pipe = self._redis.pipeline(transaction=False)
            for customer, place, raw in zip(chunk, places, replies, strict=True):
                held = Terms.decode(_text(raw)) if raw else None
                if held is None or held.at_ms > erased[customer]:
                    continue
                for digest in held.digests:
                    pipe.srem(self.keys.search_term(digest), customer)
                pipe.hdel(self.keys.terms(place), place)
                cleared += 1
            pipe.execute()
        return cleared
