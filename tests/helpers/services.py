"""Find a real Kafka broker and Redis for the tests, or fail saying how to get them.

Order: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set; else the project's local stack
(`customer-ids stack up`); else testcontainers where a Docker engine answers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import redis
from confluent_kafka.admin import AdminClient

HOW_TO = (
    "Tests need a real Kafka broker and Redis. Either run `customer-ids stack up` (needs java, "
    "mvn and redis-server; see README), or export KAFKA_BOOTSTRAP_SERVERS and REDIS_URL, or "
    "run where a Docker engine answers (testcontainers)."
)


@dataclass(frozen=True)
class Endpoints:
    bootstrap: str
    redis_url: str
    origin: str


def _check(bootstrap: str, redis_url: str) -> None:
    brokers = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15).brokers
    if not brokers:
        raise RuntimeError(f"no broker answers at {bootstrap}")
    redis.Redis.from_url(redis_url, socket_timeout=5).ping()


def find_endpoints() -> Endpoints:
    bootstrap, redis_url = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("REDIS_URL")
    if bootstrap and redis_url:
        try:
            _check(bootstrap, redis_url)
        except Exception as exc:
            pytest.fail(
                f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} / REDIS_URL={redis_url} do not "
                f"answer: {exc}. {HOW_TO}",
                pytrace=False,
            )
        return Endpoints(bootstrap, redis_url, "environment")
    errors = []
    try:
        from customer_ids.stack.local import LocalStack  # noqa: PLC0415

        stack = LocalStack.default()
        stack.up()
        _check(stack.kafka.bootstrap, stack.redis.url)
        return Endpoints(stack.kafka.bootstrap, stack.redis.url, "local stack")
    except Exception as exc:
        errors.append(f"local stack: {exc}")
    try:
        return _testcontainers()
    except Exception as exc:
        errors.append(f"testcontainers: {exc}")
    pytest.fail(f"{HOW_TO}\nTried:\n  " + "\n  ".join(errors), pytrace=False)


def _testcontainers() -> Endpoints:
    from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415
    from testcontainers.community.redis import RedisContainer  # noqa: PLC0415

    kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
    kafka.with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
    kafka.with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    kafka.start()
    cache = RedisContainer("redis:7").start()
    host, port = cache.get_container_host_ip(), cache.get_exposed_port(6379)
    return Endpoints(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "testcontainers")
