"""Each customer's search digests in Redis, kept by the service (README, "Personal data").

Two structures, written together in one Lua step: the index (`search:<digest>`, a set of
customer keys per keyed digest of an email or phone) and, per customer, every digest it is
found under (`terms:<bucket>`, field = the customer's field digest). The second is what lets
an erasure remove a customer from the index without its email, and lets a later event with
another email add to what the customer is found under instead of replacing it. Both are
rebuilt from the service's own search topic (consumer/recovery.py), never from the output
topic that every subscriber reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from customer_ids.adapters.redis_keys import RedisKeys, customer_field
from customer_ids.store.redis_store import CHECK_STATE, script_error

# KEYS: epoch, identity, then per customer its terms bucket and one search set per digest.
# ARGV: epoch, then per customer: field, customer key, digest count, the digests.
# Returns {customer key, all digests comma-joined} for each customer whose digests grew.
_ADD = (
    CHECK_STATE
    + """
local bad = state_error(ARGV[1])
if bad then return redis.error_reply(bad) end
local out = {}
local k, a = 3, 2
while a <= #ARGV do
  local bucket, field, customer, n = KEYS[k], ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local held = redis.call('HGET', bucket, field) or ''
  local have, all = {}, {}
  for d in string.gmatch(held, '[^,]+') do have[d] = true; all[#all + 1] = d end
  local grew = false
  for i = 1, n do
    local digest = ARGV[a + 2 + i]
    if not have[digest] then
      have[digest] = true
      all[#all + 1] = digest
      redis.call('SADD', KEYS[k + i], customer)
      grew = true
    end
  end
  if grew then
    table.sort(all)
    local joined = table.concat(all, ',')
    redis.call('HSET', bucket, field, joined)
    out[#out + 1] = customer
    out[#out + 1] = joined
  end
  k, a = k + 1 + n, a + 3 + n
end
return out
"""
)

# KEYS: epoch, identity, the customer's terms bucket, one search set per digest it holds.
# ARGV: epoch, field, customer key, the digests as read (comma-joined). Refuses when they
# changed meanwhile (the caller reads again).
_FORGET = (
    CHECK_STATE
    + """
local bad = state_error(ARGV[1])
if bad then return redis.error_reply(bad) end
if (redis.call('HGET', KEYS[3], ARGV[2]) or '') ~= ARGV[4] then
  return redis.error_reply('TERMS changed')
end
for i = 4, #KEYS do redis.call('SREM', KEYS[i], ARGV[3]) end
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
"""
)


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else raw


def split(joined: str) -> list[str]:
    return [d for d in joined.split(",") if d]


class RedisTermsStore:
    """The TermsStore port on Redis."""

    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self.keys = keys
        self._add = client.register_script(_ADD)
        self._forget = client.register_script(_FORGET)

    def add(self, epoch: str, entries: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        keys: list[str] = [self.keys.epoch, self.keys.identity]
        args: list[str | bytes | int] = [epoch]
        for customer, digests in entries.items():
            field = customer_field(customer)
            keys.append(self.keys.terms(field))
            keys += [self.keys.search_term(d) for d in digests]
            args += [field, customer, len(digests), *digests]
        if len(args) == 1:
            return {}
        try:
            reply = self._add(keys=keys, args=args)
        except redis.ResponseError as exc:
            raise script_error(exc) from exc
        return {_text(reply[i]): split(_text(reply[i + 1])) for i in range(0, len(reply), 2)}

    def forget(self, epoch: str, customer_key: str) -> list[str]:
        field = customer_field(customer_key)
        bucket = self.keys.terms(field)
        for _ in range(5):  # a batch of another instance may add a digest meanwhile
            held = _text(self._redis.hget(bucket, field))
            digests = split(held)
            keys = [self.keys.epoch, self.keys.identity, bucket]
            keys += [self.keys.search_term(d) for d in digests]
            try:
                self._forget(keys=keys, args=[epoch, field, customer_key, held])
                return digests
            except redis.ResponseError as exc:
                if "TERMS changed" not in str(exc):
                    raise script_error(exc) from exc
        raise redis.ConnectionError("the customer's search digests kept changing: try again")

    def digests_of(self, customer_key: str) -> list[str]:
        """Every digest the customer is found under (tests and the erasure check)."""
        field = customer_field(customer_key)
        return split(_text(self._redis.hget(self.keys.terms(field), field)))

    def restore(self, entries: Mapping[str, Sequence[str]]) -> None:
        """Make each customer found under exactly these digests (none: an erasure), as the
        search topic says; used by a recovery, while nobody else writes."""
        if not entries:
            return
        customers = list(entries)
        fields = [customer_field(c) for c in customers]
        pipe = self._redis.pipeline(transaction=False)
        for field in fields:
            pipe.hget(self.keys.terms(field), field)
        held = [set(split(_text(v))) for v in pipe.execute()]
        pipe = self._redis.pipeline(transaction=False)
        for customer, field, old in zip(customers, fields, held, strict=True):
            new = set(entries[customer])
            for digest in old - new:
                pipe.srem(self.keys.search_term(digest), customer)
            for digest in new - old:
                pipe.sadd(self.keys.search_term(digest), customer)
            if new:
                pipe.hset(self.keys.terms(field), field, ",".join(sorted(new)))
            elif old:
                pipe.hdel(self.keys.terms(field), field)
        pipe.execute()
