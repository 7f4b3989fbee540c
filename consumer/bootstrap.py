"""The composition root: build the service from settings with the real Kafka and Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer

from consumer.claims import ClaimsLog
from consumer.kafka_txn import KafkaTransaction
from consumer.loop import AssignmentService
from consumer.metrics import ServiceMetrics, waiting_reporter
from consumer.recovery import StateRecovery
from customer_ids.adapters.kafka_io import client_config, ensure_topics, producer_config
from customer_ids.adapters.logs import get_logger
from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.store.factory import build_allocator, redis_client
from customer_ids.store.terms import RedisTermsStore

log = get_logger(__name__)

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
DAY_MS = 86_400_000
# What erasure cannot rewrite must go in bounded time (README, "Personal data"): a compacted
# topic's superseded records within a week, the dead letters (raw input) within 30 days. The
# input topic keeps the brokers' retention: it must outlast the longest outage of the service
# (events deleted before they are read would never be numbered).
ERASABLE = {"max.compaction.lag.ms": 7 * DAY_MS}
DEAD_LETTER_LIFETIME = {"retention.ms": 30 * DAY_MS}


def _config(limits: dict[str, int]) -> dict[str, str]:
    return {key: str(value) for key, value in limits.items()}


def topic_specs(settings: Settings) -> dict[str, dict[str, Any]]:
    """The topics the service needs; the output and watermarks are compacted records."""
    replicas = settings.replication_factor or -1  # -1: the brokers' default
    # With three replicas or more, a write needs two in sync: one broker lost loses nothing.
    # Unset, the brokers' own min.insync.replicas applies (a cluster sets it with its default).
    durable = {"min.insync.replicas": "2" if replicas >= 3 else "1"} if replicas > 0 else {}
    base = {"partitions": settings.partitions, "replication": replicas, "config": durable}
    compacted = {**durable, **COMPACTED}
    erasable = {**compacted, **_config(ERASABLE)}
    return {
        settings.input_topic: base,
        settings.output_topic: {**base, "config": erasable, "limits": ERASABLE},
        # The service's own: each customer's search digests, read by nobody else.
        settings.search_topic: {**base, "config": erasable, "limits": ERASABLE},
        # The record of every erasure: ids only, kept (compacted, one per customer).
        settings.erasure_topic: {**base, "config": compacted},
        # Merges and unmerges, keyed by the merged customer: its requests stay in order.
        settings.merge_topic: {**base, "config": compacted},
        settings.dlq_topic: {
            **base,
            "partitions": 1,
            "config": {**durable, **_config(DEAD_LETTER_LIFETIME)},
            "limits": DEAD_LETTER_LIFETIME,
        },
        # One partition: the claims' total order (consumer/claims.py). Short segments, so
        # compaction keeps what every start and every fence reads small.
        settings.watermark_topic: {
            **base,
            "partitions": 1,
            "exact_partitions": True,
            "config": {**compacted, "segment.ms": "600000"},
        },
    }


def kafka_error_reporter(metrics: ServiceMetrics) -> Callable[[KafkaError], None]:
    """librdkafka reports losing every broker through error_cb; show it in kafka_up.
    A committed batch sets it back to 1."""
    down = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT}

    def on_error(error: KafkaError) -> None:
        if error.code() in down:
            metrics.kafka_up.set(0)
        log.warning("kafka_client_error", error=error.str()[:300])

    return on_error


def transactional_session(
    settings: Settings,
    transactional_id: str,
    linger_ms: int,
    on_error: Callable[[KafkaError], None] | None = None,
) -> KafkaTransaction:
    """A transactional producer as a session (the service's, the import's): its fatal errors
    kept, so a call that fails with a bare _FATAL or SystemError can tell a fence."""
    fatal: list[KafkaError] = []

    def on_producer_error(error: KafkaError) -> None:
        if error.fatal():
            fatal.append(error)
        if on_error is not None:
            on_error(error)

    producer = Producer(
        producer_config(
            settings.bootstrap_servers,
            {
                "transactional.id": transactional_id,
                "enable.idempotence": True,
                "transaction.timeout.ms": settings.transaction_timeout_ms,
                "linger.ms": linger_ms,
                "compression.type": "lz4",
                "error_cb": on_producer_error,
            },
        )
    )
    return KafkaTransaction(producer, float(settings.kafka_call_timeout_s), fatal_errors=fatal)


def build_service(settings: Settings, metrics: ServiceMetrics | None = None) -> AssignmentService:
    ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    metrics = metrics or ServiceMetrics()
    on_error = kafka_error_reporter(metrics)
    client = redis_client(settings)
    on_wait = waiting_reporter(metrics)
    allocator = build_allocator(settings, client, on_wait)
    consumer = Consumer(
        client_config(
            settings.bootstrap_servers,
            {
                "group.id": settings.group_id,
                # Static membership: a worker restarted after a crash (same transactional.id,
                # refused while another live one holds it) takes its partitions back at once
                # instead of waiting out the dead member's session in a rebalance.
                "group.instance.id": settings.transactional_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",  # customers created before we started need numbers
                "max.poll.interval.ms": 300000,
                "session.timeout.ms": 15000,
                "heartbeat.interval.ms": 3000,
                "fetch.wait.max.ms": 50,
                "error_cb": on_error,
            },
        )
    )
    return AssignmentService(
        settings=settings,
        consumer=consumer,
        transaction=transactional_session(
            settings, settings.transactional_id, settings.linger_ms, on_error
        ),
        allocator=allocator,
        recovery=StateRecovery(allocator, settings, metrics, on_wait),
        metrics=metrics,
        input_codec=framed_codec(settings.registry(), settings.input_topic, "CustomerCreated"),
        # Registered at start: an incompatible schema stops here with a message (exit 2).
        output_codec=framed_codec(
            settings.registry(), settings.output_topic, "CustomerIdAssigned", register=True
        ),
        redis_ping=client.ping,
        claims=ClaimsLog(settings.bootstrap_servers, settings.watermark_topic),
        terms=RedisTermsStore(client, RedisKeys(settings.redis_prefix)),
        erasure_codec=framed_codec(
            settings.registry(), settings.erasure_topic, "CustomerErasureRequested"
        ),
        merge_codec=framed_codec(
            settings.registry(), settings.merge_topic, "CustomerMergeRequested"
        ),
    )
