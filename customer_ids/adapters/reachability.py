"""Is Kafka, Redis or the registry there? Asked once, within a bound, by the commands a person
runs, so a stack that is not up gets one plain line and exit 69, not a client that retries
every second until Ctrl-C or a traceback. The service and the API wait instead (they are
meant to outlive a dependency's restart)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from customer_ids.adapters.kafka_io import client_config, refusal
from customer_ids.domain.errors import ConfigError, UnavailableError

START_HINT = "start the local stack with `customer-ids stack up`"


def require_kafka(bootstrap: str, timeout_s: float) -> None:
    """UnavailableError unless a broker answers a metadata request within `timeout_s`;
    ConfigError when it answers but refuses our credentials."""
    seen: list[KafkaError] = []  # a refused SASL login arrives here, not as the call's error
    # log_level 0: this probe's own connection errors are the one line below, not librdkafka's.
    admin = AdminClient(client_config(bootstrap, {"log_level": 0, "error_cb": seen.append}))
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # serves error_cb
        refused = refusal(bootstrap, [*seen, exc.args[0]])
        if refused:
            raise ConfigError(refused) from None
        raise UnavailableError(
            f"Kafka did not answer at {bootstrap} within {timeout_s:g}s "
            f"({exc.args[0].str()}); {START_HINT}, or set KAFKA_BOOTSTRAP_SERVERS to a "
            "running broker"
        ) from None


def require_redis(
    url: str,
    timeout_s: float,
    sentinels: Sequence[tuple[str, int]] = (),
    tls: Mapping[str, str] | None = None,
) -> None:
    """UnavailableError unless Redis (or, with Sentinel, one of the Sentinels) answers PING
    within `timeout_s`; ConfigError when it answers but refuses our user or password. No
    retries: each would add its backoff to the wait. `tls`: REDIS_SSL_* as redis-py options."""
    bounded: dict[str, Any] = {
        "socket_connect_timeout": timeout_s,
        "socket_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        **(tls or {}),
    }
    if sentinels:
        for host, port in sentinels:
            try:
                redis.Redis(host=host, port=port, **bounded).ping()
                return
            except redis.RedisError:
                continue
        shown = ",".join(f"{host}:{port}" for host, port in sentinels)
        raise UnavailableError(
            f"no Redis Sentinel answered at {shown} within {timeout_s:g}s each; "
            f"{START_HINT} --redis-ha, or set REDIS_SENTINELS to running Sentinels"
        )
    try:
        redis.Redis.from_url(url, **bounded).ping()
    except (redis.AuthenticationError, redis.exceptions.AuthorizationError) as exc:
        raise ConfigError(_refused(url, str(exc))) from None
    except redis.ResponseError as exc:
        if "NOAUTH" not in str(exc):
            raise
        raise ConfigError(_refused(url, str(exc))) from None
    except redis.RedisError as exc:
        raise UnavailableError(
            f"Redis did not answer at {shown_url(url)} within {timeout_s:g}s ({exc}); "
            f"{START_HINT}, or set REDIS_URL to a running server"
        ) from None


def _refused(url: str, reason: str) -> str:
    if not urlsplit(url).password:
        return (
            f"Redis at {shown_url(url)} requires a user and password ({reason[:120]}); put "
            "them in REDIS_URL as rediss://user:password@host:port/0"
        )
    return (
        f"Redis at {shown_url(url)} refused us ({reason[:120]}); check the user and password "
        "in REDIS_URL (rediss://user:password@host:port/0)"
    )


def require_registry(url: str, timeout_s: float) -> None:
    """UnavailableError unless the schema registry answers HTTP within `timeout_s` (any
    answer below 500 will do: credentials are checked where they are used)."""
    parts = urlsplit(url)
    # Credentials in the URL are not part of the address urllib connects to.
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    try:
        with urllib.request.urlopen(f"{bare.rstrip('/')}/subjects", timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code < 500:
            return
        reason = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise UnavailableError(
        f"the schema registry did not answer at {shown_url(url)} within {timeout_s:g}s "
        f"({reason}); {START_HINT} --registry, or set SCHEMA_REGISTRY_URL to a running "
        "registry (or unset it to use single-object encoding)"
    )


def shown_url(url: str) -> str:
    """The URL without its password, to be printed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
