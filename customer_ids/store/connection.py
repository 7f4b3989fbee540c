"""The service's Redis client: the server REDIS_URL names, or, with REDIS_SENTINELS, whichever
server Sentinel reports as primary, followed through failovers without a restart."""

from __future__ import annotations

from typing import Any

import redis
from redis.connection import SSLConnection, parse_url
from redis.sentinel import Sentinel

from customer_ids.adapters.logs import get_logger
from customer_ids.config.settings import Settings

log = get_logger(__name__)

# A dead or partitioned primary must surface as an error within seconds, so that the batch
# aborts and the pool asks Sentinel again instead of hanging on the old address.
TIMEOUTS: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 3}
HEALTH_CHECK_INTERVAL_S = 30


def connect_redis(settings: Settings) -> redis.Redis:
    """A client for the primary. With Sentinel, its pool asks the Sentinels for the primary's
    address on every new connection and drops a connection whose server answers READONLY
    (a demoted primary), so after a failover the next call reaches the new primary."""
    if not settings.redis_sentinels:
        return redis.Redis.from_url(
            settings.redis_url,
            health_check_interval=HEALTH_CHECK_INTERVAL_S,
            **TIMEOUTS,
            **settings.redis_tls(),
        )
    options = {**url_options(settings.redis_url), **settings.redis_tls()}
    # Sentinels take the URL's credentials and TLS too (no db: Sentinel has none), so a
    # deployment either protects Sentinels with the data nodes' password or uses no password.
    sentinel_options = {k: v for k, v in options.items() if k != "db"}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.redis_sentinels),
        sentinel_kwargs={**TIMEOUTS, **sentinel_options},
        **TIMEOUTS,
    )
    log.info(
        "redis_via_sentinel",
        sentinels=",".join(f"{host}:{port}" for host, port in settings.redis_sentinels),
        service=settings.redis_sentinel_service,
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_service,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        **options,
    )
    return client


def url_options(url: str) -> dict[str, Any]:
    """What REDIS_URL says besides the address: user, password, db and TLS options."""
    parsed = parse_url(url)  # type: ignore[no-untyped-call]
    options = {
        key: value
        for key, value in parsed.items()
        if key in ("username", "password", "db") or key.startswith("ssl_")
    }
    if parsed.get("connection_class") is SSLConnection:
        options["ssl"] = True
    return options
