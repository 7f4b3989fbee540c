"""Start-up checks: wait for Kafka and Redis with a bound, and fail fast on what waiting
cannot fix (refused credentials), with a message that says what to change.

A wait that ran out is StartupTimeoutError: the service may be back a minute later (a broker
restart, a stall-guard restart racing a failover), so the supervisor starts the worker again.
Any other StartupError is final."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from customer_ids.adapters.kafka_io import client_config, refusal
from customer_ids.adapters.logs import get_logger
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import CustomerIdsError

log = get_logger(__name__)


class StartupError(CustomerIdsError):
    """A service the worker needs refuses us (credentials, permissions); retrying will not
    help."""


class StartupTimeoutError(StartupError):
    """A service the worker needs did not answer within the start-up bound; it may later."""


class StoppedWhileWaitingError(StartupError):
    """Asked to stop (SIGTERM, Ctrl-C) while still waiting for Kafka or Redis: a clean stop."""


WAIT_REPORT_S = 30.0  # after the first line, how often a start-up wait says it still waits


class _WaitReport:
    """One plain line when a wait begins, then one every WAIT_REPORT_S, with how long."""

    def __init__(self, event: str, **fields: str) -> None:
        self.event, self.fields = event, fields
        self.started = time.monotonic()
        self.next = self.started

    def waiting(self, error: str) -> None:
        now = time.monotonic()
        if now >= self.next:
            self.next = now + WAIT_REPORT_S
            log.warning(
                self.event, waited_s=round(now - self.started), error=error[:200], **self.fields
            )


def _redis_where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


def _stop_if_asked(stop: threading.Event | None, what: str) -> None:
    if stop is not None and stop.is_set():
        raise StoppedWhileWaitingError(f"stopped while waiting for {what}")


def wait_for_redis(
    settings: Settings,
    client: redis.Redis,
    timeout_s: float,
    stop: threading.Event | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    report = _WaitReport(
        "waiting_for_redis",
        address=_redis_where(settings.redis_url),
        hint="start Redis (`customer-ids stack up` locally) or correct REDIS_URL",
    )
    while True:
        _stop_if_asked(stop, "Redis")
        try:
            client.ping()
            return
        except redis.AuthenticationError as exc:
            if not urlsplit(settings.redis_url).password:
                raise StartupError(
                    f"Redis at {_redis_where(settings.redis_url)} requires a password: put it "
                    "in REDIS_URL as redis://:password@host:port/0"
                ) from None
            raise StartupError(
                f"Redis at {_redis_where(settings.redis_url)} refused the credentials in "
                f"REDIS_URL ({exc}); set them as redis://user:password@host:port/0"
            ) from None
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise StartupError(
                    f"Redis at {_redis_where(settings.redis_url)} requires a password: put it "
                    "in REDIS_URL as redis://:password@host:port/0"
                ) from None
            raise
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                raise StartupTimeoutError(
                    f"Redis at {_redis_where(settings.redis_url)} did not answer within "
                    f"{timeout_s:.0f}s ({exc}); check REDIS_URL and that Redis runs"
                ) from None
            report.waiting(str(exc))
            if stop is not None:
                stop.wait(1)
            else:
                time.sleep(1)


def wait_for_kafka(
    settings: Settings, timeout_s: float, stop: threading.Event | None = None
) -> None:
    seen: list[KafkaError] = []  # SASL failures arrive here, not as list_topics' error
    admin = AdminClient(client_config(settings.bootstrap_servers, {"error_cb": seen.append}))
    deadline = time.monotonic() + timeout_s
    report = _WaitReport(
        "waiting_for_kafka",
        address=settings.bootstrap_servers,
        hint="start Kafka (`customer-ids stack up` locally) or correct KAFKA_BOOTSTRAP_SERVERS",
    )
    while True:
        _stop_if_asked(stop, "Kafka")
        try:
            # Never wait past the bound: one metadata request waits at most 5 s.
            remaining = deadline - time.monotonic()
            if admin.list_topics(timeout=min(5.0, max(0.5, remaining))).brokers:
                return
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            refused = refusal(settings.bootstrap_servers, [*seen, exc.args[0]])
            if refused:
                raise StartupError(refused) from None
            error = exc.args[0]
            if time.monotonic() > deadline:
                raise StartupTimeoutError(
                    f"Kafka at {settings.bootstrap_servers} did not answer within "
                    f"{timeout_s:.0f}s ({error.str()}); check KAFKA_BOOTSTRAP_SERVERS"
                ) from None
            report.waiting(error.str())


def refuse_evicting_redis(settings: Settings, client: redis.Redis) -> None:
    """An evicting Redis drops counters and map buckets under memory pressure: the ledger
    would notice and rebuild, again and again. Refuse it at start (StartupError, exit 2)."""
    try:
        # INFO, not CONFIG GET: a least-privilege user has INFO (the service needs it) and not
        # CONFIG, which would show every secret in the server's configuration.
        policy = str(client.info("memory").get("maxmemory_policy", ""))
    except redis.ResponseError as exc:  # INFO renamed or denied (a managed Redis)
        log.warning("redis_policy_unknown", error=str(exc)[:200])
        return
    if policy and policy != "noeviction":
        raise StartupError(
            f"Redis at {_redis_where(settings.redis_url)} has maxmemory-policy {policy}: it "
            "may evict counters and assignments. Set maxmemory-policy noeviction (redis.conf, "
            "or CONFIG SET maxmemory-policy noeviction) and give it memory for every customer"
        )
