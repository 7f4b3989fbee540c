"""Building the store from settings: one place for the service and the tools."""

from __future__ import annotations

from collections.abc import Callable

import redis

from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.config.settings import Settings
from customer_ids.store.connection import connect_redis
from customer_ids.store.leases import Leases, owner_name
from customer_ids.store.redis_store import RedisNumberStore


def redis_client(settings: Settings) -> redis.Redis:
    """The primary named by REDIS_URL, or found (and followed) through REDIS_SENTINELS."""
    return connect_redis(settings)


def build_allocator(
    settings: Settings,
    client: redis.Redis | None = None,
    on_wait: Callable[[str | None], None] | None = None,
) -> RedisNumberStore:
    """The store as the service uses it: its leases, lock wait and reverse index from settings."""
    return number_store(
        client or redis_client(settings),
        settings.redis_prefix,
        lease_s=settings.lock_timeout_ms / 1000,
        lock_wait_s=settings.lock_wait_ms / 1000,
        owner=owner_name(settings.transactional_id),
        reverse_index=settings.reverse_index,
        on_wait=on_wait,
    )


def number_store(
    client: redis.Redis,
    prefix: str,
    *,
    lease_s: float = 6.0,
    lock_wait_s: float = 5.0,
    owner: str = "tool",
    reverse_index: bool = False,
    on_wait: Callable[[str | None], None] | None = None,
) -> RedisNumberStore:
    """The Redis store under `prefix`, its locks leased and renewed."""
    leases = Leases(client, lease_s, owner, on_wait)
    return RedisNumberStore(client, RedisKeys(prefix), leases, lock_wait_s, reverse_index)
