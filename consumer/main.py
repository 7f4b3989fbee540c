"""One worker of `customer-ids serve`: run the service until SIGTERM, Ctrl-C or the end of
its supervisor, then stop cleanly. Its exit code tells the supervisor what to do next
(consumer/exit_codes.py)."""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from contextlib import ExitStack
from types import FrameType

import redis
import structlog
from confluent_kafka import KafkaException

from consumer.bootstrap import build_service
from consumer.exit_codes import EXIT_CONFIG, EXIT_CRASH, EXIT_STOPPED, EXIT_TEMPFAIL
from consumer.instance_claim import hold_transactional_id
from consumer.loop import AssignmentService
from consumer.metrics import ServiceMetrics, readiness
from consumer.startup import (
    StartupError,
    StartupTimeoutError,
    StoppedWhileWaitingError,
    refuse_evicting_redis,
    wait_for_kafka,
    wait_for_redis,
)
from customer_ids.adapters.health import HealthServer
from customer_ids.adapters.logs import get_logger
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError, FencedError, TemporaryError
from customer_ids.store.factory import redis_client
from customer_ids.store.leases import Lease

log = get_logger(__name__)


def startup_exit_code(error: StartupError) -> int:
    """A wait that timed out may succeed on the next start; refused credentials will not."""
    return EXIT_TEMPFAIL if isinstance(error, StartupTimeoutError) else EXIT_CONFIG


def metrics_port_message(port: int, error: OSError, worker: int, workers: int) -> str:
    """What to change when the health server cannot listen, naming the setting."""
    reason = "is already in use" if error.errno == errno.EADDRINUSE else f"failed: {error}"
    message = (
        f"listening on metrics port {port} {reason}; set CUSTOMER_IDS_METRICS_PORT to a "
        "free port, or to 0 to turn /metrics, /healthz and /readyz off"
    )
    if workers > 1:
        message += (
            f". With CUSTOMER_IDS_WORKERS={workers}, worker n listens on "
            f"CUSTOMER_IDS_METRICS_PORT+n: this is worker {worker}, so the base port is "
            f"{port - worker} and ports {port - worker}..{port - worker + workers - 1} "
            "must all be free"
        )
    return message


def _watch_parent(stop: threading.Event) -> None:
    """Stop when the supervisor is gone (SIGKILLed), rather than run on unsupervised."""
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("supervisor_gone_stopping")
            stop.set()


def _fail(event: str, message: str, code: int) -> int:
    log.error(event, error=message, exit_code=code)
    print(f"customer-ids: {message}", file=sys.stderr)
    return code


def serve_worker(settings: Settings, worker: int = 0) -> int:
    # Every line of this worker names it, so the lines of several workers can be told apart.
    structlog.contextvars.bind_contextvars(
        worker=worker, transactional_id=settings.transactional_id
    )
    stop = threading.Event()
    threading.Thread(target=_watch_parent, args=(stop,), daemon=True).start()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics = ServiceMetrics()
    # Bind the port before waiting for Kafka and Redis: a taken port is a configuration
    # error, and it should stop start-up at once, not after a minute of waiting.
    health = None
    if settings.metrics_port:
        try:
            health = HealthServer(metrics.registry, settings.metrics_port, readiness(metrics))
        except OSError as exc:
            message = metrics_port_message(settings.metrics_port, exc, worker, settings.workers)
            return _fail("metrics_port_unavailable", message, EXIT_CONFIG)
        health.start()
    try:
        return _start_and_run(settings, metrics, stop)
    finally:
        if health:
            health.stop()


def _start_and_run(settings: Settings, metrics: ServiceMetrics, stop: threading.Event) -> int:
    with ExitStack() as held:
        try:
            wait_for_kafka(settings, settings.startup_timeout_s, stop)
            client = redis_client(settings)
            wait_for_redis(settings, client, settings.startup_timeout_s, stop)
            refuse_evicting_redis(settings, client)
            # Held until the worker ends: a second live worker with our id is refused.
            claim = held.enter_context(hold_transactional_id(settings, client))
        except StoppedWhileWaitingError as exc:
            log.info("service_stopped", reason=str(exc))
            return EXIT_STOPPED
        except StartupError as exc:
            return _fail("startup_failed", str(exc), startup_exit_code(exc))
        try:
            service = build_service(settings, metrics)
        except ConfigError as exc:  # a topic, number format or schema that would break a promise
            return _fail("configuration_refused", str(exc), EXIT_CONFIG)
        except TemporaryError as exc:  # the registry did not answer: the supervisor tries again
            return _fail("startup_failed", str(exc), EXIT_TEMPFAIL)
        return _run(settings, service, stop, claim)


def _still_ours(claim: Lease) -> bool:
    """Whether no other worker holds this worker's transactional.id now
    (consumer/instance_claim.py). A lease that merely ran out while we were paused is still
    ours to take back; unknown (Redis away) counts as ours too: a restarted worker that finds
    the id taken is refused at start."""
    try:
        # A key that ran out is nobody's; owned() compares tokens however the client decodes.
        return all(lock.redis.get(lock.name) is None or lock.owned() for lock in claim.locks)
    except redis.RedisError:
        return True


def _run(
    settings: Settings, service: AssignmentService, stop: threading.Event, claim: Lease
) -> int:
    code = EXIT_STOPPED
    try:
        service.run(stop)
    except FencedError as exc:
        if _still_ours(claim):
            # librdkafka reports a broker that aborted our transaction for outliving
            # transaction.timeout.ms (an epoch bump) as a fence too. Nobody else holds our
            # id, so a fresh worker (a new epoch) goes on: exit to be restarted.
            log.error(
                "transaction_aborted_by_the_broker_restarting",
                transactional_id=settings.transactional_id,
                detail=str(exc)[:200],
            )
            code = EXIT_TEMPFAIL
        else:
            log.error(
                "fenced_shutting_down",
                transactional_id=settings.transactional_id,
                reason="a newer instance with the same transactional.id took over",
                detail=str(exc)[:200],
            )
    except ConfigError as exc:  # number formats that conflict with ones already used
        code = _fail("configuration_refused", str(exc), EXIT_CONFIG)
    except KafkaException as exc:
        log.error(
            "kafka_fatal_error_shutting_down",
            error=str(exc.args[0])[:300],
            hint="the producer or consumer cannot go on; restart the service",
        )
        code = EXIT_CRASH
    finally:
        service.consumer.close()
        service.claims.close()
        log.info("service_stopped")
    return code
