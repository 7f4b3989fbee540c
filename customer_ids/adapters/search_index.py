"""The keyed search index in Redis: one SET of customer keys per digest (`{prefix}search:<hex>`).

Only digests (customer_ids.domain.search_terms) reach Redis, never an email or a phone. The
service adds entries in the Lua step that records an assignment; this adapter is for everyone
else: the API's searches, the recovery that restores entries from output headers, and the
re-index after a key rotation.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from customer_ids.adapters.redis_keys import RedisKeys


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class SearchIndex:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys

    def add(self, customer_key: str, digests: Iterable[str]) -> None:
        """Find `customer_key` under each digest from now on (SADD: repeating it is harmless)."""
        self.add_many({customer_key: list(digests)})

    def add_many(self, entries: dict[str, list[str]]) -> None:
        """Several customers' digests in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for customer_key, digests in entries.items():
            for digest in digests:
                pipe.sadd(self._keys.search_term(digest), customer_key)
        pipe.execute()

    def remove_many(self, entries: dict[str, list[str]]) -> None:
        """Forget these (customer, digest) pairs; Redis drops a set once it is empty."""
        pipe = self._redis.pipeline(transaction=False)
        for customer_key, digests in entries.items():
            for digest in digests:
                pipe.srem(self._keys.search_term(digest), customer_key)
        pipe.execute()

    def find(self, digests: Iterable[str]) -> set[str]:
        """Customer keys found under any of these digests (one SUNION)."""
        keys = [self._keys.search_term(d) for d in dict.fromkeys(digests)]
        if not keys:
            return set()
        return {_text(m) for m in self._redis.sunion(keys)}
