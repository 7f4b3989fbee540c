"""One worker of `customer-ids serve`: run the service until SIGTERM, Ctrl-C or the end of
its supervisor, then stop cleanly."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from confluent_kafka import KafkaException

from consumer.bootstrap import build_service, redis_client
from consumer.metrics import HealthServer, ServiceMetrics
from consumer.startup import StartupError, wait_for_kafka, wait_for_redis
from customer_ids.errors import FencedError
from customer_ids.logs import get_logger
from customer_ids.settings import Settings

log = get_logger("customer_ids.serve")
EXIT_STARTUP = 2  # not restarted by the supervisor: waiting longer would not help


def _watch_parent(stop: threading.Event) -> None:
    """Stop when the supervisor is gone (SIGKILLed), rather than run on unsupervised."""
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("supervisor_gone_stopping")
            stop.set()


def serve_worker(settings: Settings) -> int:
    stop = threading.Event()
    threading.Thread(target=_watch_parent, args=(stop,), daemon=True).start()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        wait_for_kafka(settings, settings.startup_timeout_s)
        wait_for_redis(settings, redis_client(settings), settings.startup_timeout_s)
    except StartupError as exc:
        log.error("startup_failed", error=str(exc))
        print(f"customer-ids: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    metrics = ServiceMetrics()
    health = HealthServer(metrics, settings.metrics_port) if settings.metrics_port else None
    if health:
        health.start()
    service = build_service(settings, metrics)
    code = 0
    try:
        service.run(stop)
    except FencedError as exc:
        log.error(
            "fenced_shutting_down",
            transactional_id=settings.transactional_id,
            reason="a newer instance with the same transactional.id took over",
            detail=str(exc)[:200],
        )
    except KafkaException as exc:
        log.error(
            "kafka_fatal_error_shutting_down",
            error=str(exc.args[0])[:300],
            hint="the producer or consumer cannot go on; restart the service",
        )
        code = 1
    finally:
        service.consumer.close()
        if health:
            health.stop()
        log.info("service_stopped")
    return code
