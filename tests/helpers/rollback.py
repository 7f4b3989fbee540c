"""Redis put back on the same server: what a key restored from a backup, a `DEL` by a script or
an eviction leave behind. Same run_id, same replid, same epoch: nothing in Redis shows it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis


@dataclass(frozen=True)
class KeySpace:
    """Every key under one prefix, dumped with DUMP (value and encoding, byte for byte), with
    its time to live (a lock's lease) in milliseconds, 0 for none."""

    dumps: dict[bytes, bytes]
    ttls: dict[bytes, int]
    taken_at: float = field(default_factory=time.monotonic)


def capture(client: redis.Redis, prefix: str) -> KeySpace:
    keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
    pipe = client.pipeline(transaction=True)
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
    replies = pipe.execute()
    dumps, ttls = {}, {}
    for i, key in enumerate(keys):
        dumped, ttl = replies[2 * i], int(replies[2 * i + 1])
        if dumped is not None and ttl != -2:
            dumps[key], ttls[key] = dumped, max(ttl, 0)
    return KeySpace(dumps, ttls)


def put_back(client: redis.Redis, prefix: str, space: KeySpace) -> None:
    """Every key under `prefix` as it was at capture, in one MULTI (the service sees the old
    state at once, never half of it); keys made since are deleted. As in a restored backup,
    a key's expiry stays where it was: a lock whose lease has run out since is gone."""
    elapsed_ms = int((time.monotonic() - space.taken_at) * 1000)
    now = set(client.scan_iter(match=f"{prefix}*", count=5000))
    pipe = client.pipeline(transaction=True)
    for key in now - set(space.dumps):
        pipe.delete(key)
    for key, dumped in space.dumps.items():
        ttl = space.ttls.get(key, 0)
        if ttl and ttl <= elapsed_ms:
            pipe.delete(key)
        else:
            pipe.restore(key, ttl - elapsed_ms if ttl else 0, dumped, replace=True)
    pipe.execute()


def delete_keys(client: redis.Redis, pattern: str, limit: int) -> list[bytes]:
    """Up to `limit` keys matching `pattern` deleted, as a script or an eviction would."""
    keys = list(client.scan_iter(match=pattern, count=5000))[:limit]
    if keys:
        client.delete(*keys)
    return keys
