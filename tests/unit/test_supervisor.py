"""Which worker exits the supervisor restarts, how fast, and what a worker exits with when
start-up fails: a timed-out wait is temporary, a misconfiguration is final."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from consumer.exit_codes import EXIT_CONFIG, EXIT_CRASH, EXIT_STOPPED, EXIT_TEMPFAIL, should_restart
from consumer.main import metrics_port_message, startup_exit_code
from consumer.startup import (
    StartupError,
    StartupTimeoutError,
    StoppedWhileWaitingError,
    wait_for_redis,
)
from consumer.supervisor import HEALTHY_RUN_S, MAX_BACKOFF_S, restart_backoff
from customer_ids.config.settings import Settings


def test_stopped_fenced_and_misconfigured_workers_are_not_restarted() -> None:
    assert not should_restart(EXIT_STOPPED)
    assert not should_restart(EXIT_CONFIG)


@pytest.mark.parametrize("code", [EXIT_CRASH, EXIT_TEMPFAIL, 3, 120, 130, 255])
def test_every_other_exit_is_restarted(code: int) -> None:
    assert should_restart(code)


@pytest.mark.parametrize(
    "sig", [signal.SIGABRT, signal.SIGBUS, signal.SIGSEGV, signal.SIGKILL, signal.SIGTERM]
)
def test_a_worker_killed_by_a_signal_is_a_crash_and_restarted(sig: signal.Signals) -> None:
    assert should_restart(-sig)  # Popen.returncode of a process a signal ended


def test_backoff_grows_to_its_bound() -> None:
    restarts, delays = 0, []
    for _ in range(10):
        restarts, delay = restart_backoff(restarts, ran_for_s=1.0)
        delays.append(delay)
    assert delays == sorted(delays)
    assert delays[-1] == MAX_BACKOFF_S


def test_backoff_resets_after_a_healthy_run() -> None:
    restarts = 0
    for _ in range(10):
        restarts, _ = restart_backoff(restarts, ran_for_s=1.0)
    first = restart_backoff(0, ran_for_s=1.0)
    assert restart_backoff(restarts, ran_for_s=HEALTHY_RUN_S) == first


class _Refusing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def ping(self) -> bool:
        raise self.error


def test_a_timed_out_wait_is_temporary() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(StartupTimeoutError) as caught:
        wait_for_redis(settings, _Refusing(redis.ConnectionError("refused")), timeout_s=0)  # type: ignore[arg-type]
    assert startup_exit_code(caught.value) == EXIT_TEMPFAIL
    assert should_restart(startup_exit_code(caught.value))


def test_refused_credentials_are_a_configuration_error() -> None:
    settings = Settings(redis_url="redis://app:wrong@127.0.0.1:1/0")
    error = redis.AuthenticationError("invalid username-password pair")
    with pytest.raises(StartupError) as caught:
        wait_for_redis(settings, _Refusing(error), timeout_s=0)  # type: ignore[arg-type]
    assert not isinstance(caught.value, StartupTimeoutError)
    assert startup_exit_code(caught.value) == EXIT_CONFIG
    assert not should_restart(startup_exit_code(caught.value))


def test_a_stop_while_waiting_for_redis_ends_the_wait_at_once() -> None:
    # Before, a SIGTERM during the start-up wait went unheard until the wait ran out (or the
    # supervisor killed the worker after its shutdown timeout).
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    with pytest.raises(StoppedWhileWaitingError):
        wait_for_redis(settings, _Refusing(redis.ConnectionError("refused")), 60, stop)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1


def test_the_port_message_names_the_setting_and_the_worker_offset() -> None:
    error = OSError(98, "Address already in use")
    one = metrics_port_message(9400, error, worker=0, workers=1)
    assert "9400" in one
    assert "CUSTOMER_IDS_METRICS_PORT" in one
    several = metrics_port_message(9402, error, worker=2, workers=3)
    assert "worker 2" in several
    assert "CUSTOMER_IDS_METRICS_PORT+n" in several
    assert "9400" in several  # the base port the operator set


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("customer-ids")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "customer_ids.cli", "serve"]


def test_a_taken_metrics_port_stops_serve_with_a_clear_message_and_no_restart() -> None:
    """The health server binds before the Kafka and Redis waits, so a taken port fails fast
    (here both are unreachable: a worker that waited first would time out instead)."""
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {
            **os.environ,
            "CUSTOMER_IDS_METRICS_PORT": str(port),
            "CUSTOMER_IDS_WORKERS": "1",
            "CUSTOMER_IDS_CONFIG": "",
            "CUSTOMER_IDS_LOG_FORMAT": "json",
            "CUSTOMER_IDS_STARTUP_TIMEOUT_S": "1",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port()}",
            "REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0",
        }
        done = subprocess.run(
            _serve_command(), env=env, capture_output=True, text=True, timeout=120, check=False
        )
    events = []
    for line in done.stderr.splitlines():
        try:
            events.append(json.loads(line).get("event"))
        except ValueError:
            continue
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert events.count("worker_started") == 1, done.stderr
    assert f"metrics port {port}" in done.stderr
    assert "CUSTOMER_IDS_METRICS_PORT" in done.stderr
    assert "already in use" in done.stderr
