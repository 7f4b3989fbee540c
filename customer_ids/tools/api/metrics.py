"""The API's Prometheus metrics, in a registry of its own (not the service's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "customer_ids_api_requests",
            "HTTP requests answered, by route template (never the values in the path)",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "customer_ids_api_request_seconds",
            "Time to answer, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.searches = Counter(
            "customer_ids_api_searches",
            "Searches by personal data, by kind and outcome (ok, invalid, rate_limited, off)",
            ["kind", "outcome"],
            registry=r,
        )
        self.owner_log_reads = Counter(
            "customer_ids_api_owner_log_reads",
            "number -> customer questions answered by reading the output topic",
            registry=r,
        )
        self.owner_cache_hits = Counter(
            "customer_ids_api_owner_cache_hits",
            "number -> customer questions answered from the in-memory cache",
            registry=r,
        )
