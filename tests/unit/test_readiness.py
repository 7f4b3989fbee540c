"""/readyz says why an instance is not ready: waiting for a lock holder or a recovery."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from consumer.metrics import ServiceMetrics, readiness, waiting_reporter
from customer_ids.adapters.health import HealthServer


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served() -> Iterator[tuple[ServiceMetrics, int]]:
    metrics = ServiceMetrics()
    server = HealthServer(metrics.registry, 0, readiness(metrics))
    server.start()
    yield metrics, server.port
    server.stop()


def test_readyz_names_what_the_instance_waits_for(served: tuple[ServiceMetrics, int]) -> None:
    metrics, port = served
    metrics.ready.set(1)
    assert readyz(port) == (200, "ready\n")
    report = waiting_reporter(metrics)
    report("waiting for cid:lock:recovery held by svc-a (pid 7 on host-1)")
    assert readyz(port) == (
        503,
        "not ready: waiting for cid:lock:recovery held by svc-a (pid 7 on host-1)\n",
    )
    report(None)
    assert readyz(port) == (200, "ready\n")


def test_watermark_keys_name_their_counter_whatever_the_transactional_id() -> None:
    from consumer.claims import watermark_counter  # noqa: PLC0415

    assert watermark_counter(b"P:2024@svc@prod-w1") == "P:2024"
    assert watermark_counter(b"CU") == "CU"
