"""Each customer's search digests in Redis, kept by the service (README, "Personal data").

Three structures, written together in Lua steps: the index (`search:<digest>`, a set of
customer keys per keyed digest of an email or phone); per customer every digest it is found
under, each with the time its newest event was sent (`terms:<bucket>`, value
`<digest>@<ms>,...`); and per erased customer the time its erasure was sent (`erased:<bucket>`).
The second lets an erasure remove a customer from the index without its email, and a later
event with another email add to what it is found under. The third keeps an erasure: a digest
of an event sent no later than it is never indexed again, whichever instance, partition or
retry brings that event, while data sent after it (the customer came back) is kept; and a
recovery applies every erasure again (a Redis put back to before an erasure cannot bring it
back, even after the search topic's tombstone is gone). Times are Kafka record timestamps, set
when each record was sent, not times that the event's body claims. The digests are rebuilt from
the service's own search topic (consumer/recovery.py), never from the output topic that every
subscriber reads.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from customer_ids.adapters.redis_keys import RedisKeys, customer_field
from customer_ids.store.ports import Forgotten, Terms, TermsUpdate
from customer_ids.store.redis_store import CHECK_STATE, script_error

# Parses a terms value into `have` (digest -> time, a string) and `order` (digests as held).
_PARSE = """
local function parse(held)
  local have, order = {}, {}
  for item in string.gmatch(held, '[^,]+') do
    local d, at = string.match(item, '^([^@]+)@?(%d*)$')
    if d then
      if at == '' then at = '0' end
      have[d] = at
      order[#order + 1] = d
    end
  end
  return have, order
end
local function joined(have)
  local items = {}
  for d, at in pairs(have) do items[#items + 1] = d .. '@' .. at end
  table.sort(items)
  return table.concat(items, ',')
end
"""

# KEYS: epoch, identity, then per customer: its terms bucket, its erased bucket, one search set
#       per digest to add, one per digest to remove.
# ARGV: epoch ('' : no state check), then per customer: field, customer key, digests to add
#       (count), to remove (count), (digest, time ms) per digest to add, the digests to remove.
# A digest sent no later than the customer's erasure is not added. Times stay strings: Lua
# prints a large number in exponent notation. Returns {customer key, value} per customer that
# is or was found under something: all it is found under now ('' : nothing).
_UPDATE = (
    CHECK_STATE
    + _PARSE
    + """
if ARGV[1] ~= '' then
  local bad = state_error(ARGV[1])
  if bad then return redis.error_reply(bad) end
end
local out = {}
local k, a = 3, 2
while a <= #ARGV do
  local bucket, erased = KEYS[k], KEYS[k + 1]
  local field, customer = ARGV[a], ARGV[a + 1]
  local na, nr = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local gone = tonumber(redis.call('HGET', erased, field) or '-1')
  local held = redis.call('HGET', bucket, field) or ''
  local have = parse(held)
  for i = 1, nr do
    have[ARGV[a + 3 + 2 * na + i]] = nil
    redis.call('SREM', KEYS[k + 1 + na + i], customer)
  end
  for i = 1, na do
    local d, at = ARGV[a + 2 + 2 * i], ARGV[a + 3 + 2 * i]
    if tonumber(at) > gone then
      if not have[d] then
        redis.call('SADD', KEYS[k + 1 + i], customer)
        have[d] = at
      elseif tonumber(at) > tonumber(have[d]) then
        have[d] = at
      end
    end
  end
  local value = joined(have)
  if value == '' then
    if held ~= '' then redis.call('HDEL', bucket, field) end
  elseif value ~= held then
    redis.call('HSET', bucket, field, value)
  end
  if value ~= '' or held ~= '' then
    out[#out + 1] = customer
    out[#out + 1] = value
  end
  k, a = k + 2 + na + nr, a + 4 + 2 * na + nr
end
return out
"""
)

# KEYS: epoch, identity, the customer's terms bucket, its erased bucket, one search set per
#       digest it holds (in the order they are held). ARGV: epoch, field, customer key, its
#       terms value as read, the erasure's time (ms). Refuses when the terms changed meanwhile
#       (the caller reads again). Digests sent after the erasure stay (the customer came
#       back). Returns {search entries removed, what is left ('' : nothing)}.
_FORGET = (
    CHECK_STATE
    + _PARSE
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
local have, order = parse(ARGV[4])
local removed = 0
for i, d in ipairs(order) do
  if tonumber(have[d]) <= tonumber(ARGV[5]) then
    redis.call('SREM', KEYS[4 + i], ARGV[3])
    have[d] = nil
    removed = removed + 1
  end
end
local value = joined(have)
if value == '' then
  redis.call('HDEL', KEYS[3], ARGV[2])
else
  redis.call('HSET', KEYS[3], ARGV[2], value)
end
return {removed, value}
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
        check, for `search-reindex`); per customer found under something, its search topic
        value ('' when nothing is left)."""
        keys: list[str] = [self.keys.epoch, self.keys.identity]
        args: list[str | bytes | int] = [epoch or ""]
        for customer, change in entries.items():
            place = customer_field(customer)
            added = sorted(change.add.items())
            keys += [self.keys.terms(place), self.keys.erased(place)]
            keys += [self.keys.search_term(d) for d, _ in added]
            keys += [self.keys.search_term(d) for d in change.remove]
            args += [place, customer, len(added), len(change.remove)]
            for digest, at in added:
                args += [digest, at]
            args += list(change.remove)
        if len(args) == 1:
            return {}
        try:
            reply = self._update(keys=keys, args=args)
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
        return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply), 2)}

    def forget(self, epoch: str, customer_key: str, requested_ms: int) -> Forgotten:
        """Remove what the customer was found under before `requested_ms` and remember the
        erasure, only if the state is still `epoch`."""
        place = customer_field(customer_key)
        bucket = self.keys.terms(place)
        for _ in range(5):  # a batch of another instance may add a digest meanwhile
            held = _text(self._redis.hget(bucket, place))
            keys = [self.keys.epoch, self.keys.identity, bucket, self.keys.erased(place)]
            keys += [self.keys.search_term(d) for d in Terms.decode(held).digests]
            try:
                removed, value = self._forget(
                    keys=keys, args=[epoch, place, customer_key, held, requested_ms]
                )
                return Forgotten(int(removed), _text(value) or None)
            except redis.ResponseError as exc:
                if "TERMS changed" not in str(exc):
                    raise script_error(exc) from exc
        raise redis.ConnectionError("the customer's search digests kept changing: try again")

    def digests_of(self, customer_key: str) -> list[str]:
        """Every digest the customer is found under (tests and the erasure check)."""
        place = customer_field(customer_key)
        return sorted(Terms.decode(_text(self._redis.hget(self.keys.terms(place), place))).digests)

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
        """Remember every erasure (customer -> its time, ms; a later one is kept) and remove
        what an older Redis still held of those customers from before it; a recovery's last
        step, while nobody else writes. Returns how many customers lost entries."""
        customers = list(erased)
        cleared = 0
        for i in range(0, len(customers), 1000):
            chunk = customers[i : i + 1000]
            places = [customer_field(c) for c in chunk]
            pipe = self._redis.pipeline(transaction=False)
            for place in places:
                pipe.hget(self.keys.erased(place), place)
                pipe.hget(self.keys.terms(place), place)
            replies = pipe.execute()
            pipe = self._redis.pipeline(transaction=False)
            for n, (customer, place) in enumerate(zip(chunk, places, strict=True)):
                known, raw = replies[2 * n], replies[2 * n + 1]
                at = max(erased[customer], int(_text(known) or 0))
                pipe.hset(self.keys.erased(place), place, at)
                held = Terms.decode(_text(raw))
                left = held.newer_than(at)
                if left == held:
                    continue
                for digest in held.digests.keys() - left.digests.keys():
                    pipe.srem(self.keys.search_term(digest), customer)
                if left.digests:
                    pipe.hset(self.keys.terms(place), place, left.encode())
                else:
                    pipe.hdel(self.keys.terms(place), place)
                cleared += 1
            pipe.execute()
        return cleared
