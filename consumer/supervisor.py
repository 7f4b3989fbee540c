"""`customer-ids serve`: run CUSTOMER_IDS_WORKERS worker processes and keep them running.

Each worker is a full consumer-group member with its own transactional.id, so one host can
use more than one core. A worker that stalls, crashes, is killed by a signal or timed out
waiting for Kafka or Redis at start-up is started again after a backoff; one that was fenced
or stopped (exit 0) or misconfigured (exit 2) is not (consumer/exit_codes.py). SIGTERM is
passed on to every worker, which finishes or aborts its batch and commits; after the shutdown
timeout the rest are killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

from consumer.exit_codes import EXIT_STOPPED, should_restart
from customer_ids.adapters.logs import get_logger
from customer_ids.config.settings import Settings

log = get_logger(__name__)
MAX_BACKOFF_S = 30.0
# A worker that ran this long was healthy: its next crash starts the backoff over, so one
# crash a day never waits the full MAX_BACKOFF_S.
HEALTHY_RUN_S = 60.0


def restart_backoff(restarts: int, ran_for_s: float) -> tuple[int, float]:
    """(restarts so far, seconds to wait) for a worker that just exited unexpectedly after
    running `ran_for_s`, given the `restarts` before it."""
    restarts = 1 if ran_for_s >= HEALTHY_RUN_S else restarts + 1
    return restarts, min(MAX_BACKOFF_S, 0.5 * 2 ** min(restarts, 6))


@dataclass
class Worker:
    index: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    restart_at: float = 0.0
    started_at: float = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "customer_ids.cli", "serve", "--worker", str(self.index)],
            env=self.env,
        )
        log.info(
            "worker_started",
            worker=self.index,
            pid=self.proc.pid,
            transactional_id=self.env["CUSTOMER_IDS_TRANSACTIONAL_ID"],
        )


def worker_env(settings: Settings, index: int, workers: int) -> dict[str, str]:
    env = dict(os.environ)
    if workers > 1:
        env["CUSTOMER_IDS_TRANSACTIONAL_ID"] = f"{settings.transactional_id}-w{index}"
        if settings.metrics_port:
            env["CUSTOMER_IDS_METRICS_PORT"] = str(settings.metrics_port + index)
    else:
        env["CUSTOMER_IDS_TRANSACTIONAL_ID"] = settings.transactional_id
    return env


def supervise(settings: Settings) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers = [
        Worker(i, worker_env(settings, i, settings.workers)) for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    code = EXIT_STOPPED
    while not stop.is_set() and any(w.proc is not None or w.restart_at for w in workers):
        for worker in workers:
            if worker.proc is None:
                if worker.restart_at and time.monotonic() >= worker.restart_at:
                    worker.restart_at = 0.0
                    worker.start()
                continue
            returncode = worker.proc.poll()
            if returncode is None:
                continue
            worker.proc = None
            if should_restart(returncode):
                ran_for_s = time.monotonic() - worker.started_at
                worker.restarts, delay = restart_backoff(worker.restarts, ran_for_s)
                worker.restart_at = time.monotonic() + delay
                log.warning(
                    "worker_exited_restarting",
                    worker=worker.index,
                    code=returncode,
                    signal=_signal_name(returncode),
                    restarts=worker.restarts,
                    in_seconds=delay,
                )
            else:
                log.info("worker_exited", worker=worker.index, code=returncode)
                code = max(code, returncode)  # a configuration error outlives clean stops
        stop.wait(0.2)
    _stop_all(workers, settings.shutdown_timeout_s)
    return code


def _signal_name(returncode: int) -> str | None:
    """The signal that ended a worker (Popen reports it as a negative returncode)."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return str(-returncode)


def _stop_all(workers: list[Worker], timeout_s: float) -> None:
    running = [w.proc for w in workers if w.proc is not None and w.proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker_did_not_stop_in_time_killing", pid=proc.pid, timeout_s=timeout_s)
            proc.kill()
            proc.wait()
