"""The keyed search index in Redis: one SET of customer keys per digest (`{prefix}search:<hex>`).

Only digests (customer_ids.domain.search_terms) reach Redis, never an email or a phone. The
service writes them (customer_ids/store/terms.py); this adapter reads them, for the API's
searches.
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

    def find(self, digests: Iterable[str]) -> set[str]:
        """Customer keys found under any of these digests (one SUNION)."""
        keys = [self._keys.search_term(d) for d in dict.fromkeys(digests)]
        if not keys:
            return set()
        return {_text(m) for m in self._redis.sunion(keys)}

    def find_each(self, digests_by_key: dict[str, set[str]]) -> dict[str, set[str]]:
        """Per key, the customer keys found under any of its digests (one pipeline)."""
        pipe = self._redis.pipeline(transaction=False)
        asked = [key for key, digests in digests_by_key.items() if digests]
        for key in asked:
            pipe.sunion([self._keys.search_term(d) for d in sorted(digests_by_key[key])])
        found = pipe.execute() if asked else []
        return {key: {_text(m) for m in members} for key, members in zip(asked, found, strict=True)}
