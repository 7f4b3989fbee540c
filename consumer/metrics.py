"""Prometheus metrics and the /metrics, /healthz, /readyz endpoints."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest


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


def waiting_reporter(metrics: ServiceMetrics) -> Callable[[str | None], None]:
    """What a wait for a lock or a recovery tells /readyz (None: no longer waiting)."""

    def report(reason: str | None) -> None:
        metrics.not_ready_reason = reason
        metrics.waiting.set(0 if reason is None else 1)

    return report


class HealthServer:
    """Serves /metrics, /healthz (alive) and /readyz (serving) on one port."""

    def __init__(self, metrics: ServiceMetrics, port: int) -> None:
        self.metrics = metrics
        registry = metrics.registry
        ready = metrics.ready
        service_metrics = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    self._send(200, b"ok\n")
                elif self.path == "/readyz":
                    ok = ready._value.get() == 1 and service_metrics.not_ready_reason is None
                    reason = service_metrics.not_ready_reason
                    body = "ready\n" if ok else f"not ready: {reason or 'starting or stopping'}\n"
                    self._send(200 if ok else 503, body.encode())
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
