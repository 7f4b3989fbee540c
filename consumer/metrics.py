"""The service's Prometheus metrics, and what its /readyz says (served by adapters.health)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ServiceMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.consumed = Counter(
            "customer_ids_events_consumed", "Input records consumed", registry=r
        )
        self.assigned = Counter(
            "customer_ids_numbers_assigned", "New numbers issued", ["sequence"], registry=r
        )
        self.duplicates = Counter(
            "customer_ids_duplicates", "Events of customers that already had a number", registry=r
        )
        self.dead_lettered = Counter(
            "customer_ids_dead_lettered", "Records sent to the DLQ", ["reason"], registry=r
        )
        self.recoveries = Counter(
            "customer_ids_recoveries", "Rebuilds of Redis from Kafka", registry=r
        )
        self.recovery_seconds = Histogram(
            "customer_ids_recovery_seconds", "Rebuild duration", registry=r
        )
        self.aborts = Counter(
            "customer_ids_transactions_aborted", "Aborted batches", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "customer_ids_batch_size",
            "Records per batch",
            registry=r,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
        )
        self.batch_seconds = Histogram(
            "customer_ids_batch_seconds",
            "Batch latency",
            registry=r,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.lock_wait = Histogram(
            "customer_ids_lock_wait_seconds",
            "Wait for sequence locks",
            registry=r,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )
        self.claims_wait = Histogram(
            "customer_ids_claims_wait_seconds",
            "Wait for the claims before a batch's own to resolve (the uniqueness check)",
            registry=r,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )
        self.lag = Gauge(
            "customer_ids_consumer_lag", "Records behind the end", ["partition"], registry=r
        )
        self.redis_up = Gauge("customer_ids_redis_up", "1 when Redis answers", registry=r)
        self.kafka_up = Gauge("customer_ids_kafka_up", "1 when the broker answers", registry=r)
        self.ready = Gauge("customer_ids_ready", "1 when serving", registry=r)
        self.waiting = Gauge(
            "customer_ids_waiting", "1 while waiting for a lock or a recovery", registry=r
        )
        self.not_ready_reason: str | None = None  # shown by /readyz
        self.sequence_usage = Gauge(
            "customer_ids_sequence_usage_ratio",
            "Share of a bounded (scrambled) counter's range already issued",
            ["counter"],
            registry=r,
        )


def readiness(metrics: ServiceMetrics) -> Callable[[], str | None]:
    """/readyz of the service: None when serving, else why not."""

    def why_not() -> str | None:
        if metrics.not_ready_reason is not None:
            return metrics.not_ready_reason
        return None if metrics.ready._value.get() == 1 else "starting or stopping"

    return why_not


def waiting_reporter(metrics: ServiceMetrics) -> Callable[[str | None], None]:
    """What a wait for a lock or a recovery tells /readyz (None: no longer waiting)."""

    def report(reason: str | None) -> None:
        metrics.not_ready_reason = reason
        metrics.waiting.set(0 if reason is None else 1)

    return report
