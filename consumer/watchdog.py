"""A stall guard for client calls that can hang past their own timeout.

librdkafka's send_offsets_to_transaction() can block forever when the group coordinator goes
away (confluentinc/librdkafka#5456 and #5511, open as of 2.16). A hung worker holds its
partitions and commits nothing, so the guard ends the worker instead; the supervisor starts a
fresh one, which fences the stuck transaction. Ending is safe: every invariant already holds
across a crash at any point.

One watcher thread per process serves every guarded call: a batch makes three of them, and a
thread started per call (a `threading.Timer`) cost each batch three thread starts, each a
wait for the scheduler on a busy machine.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from consumer.exit_codes import EXIT_TEMPFAIL
from customer_ids.adapters.logs import get_logger

log = get_logger(__name__)
TICK_S = 0.5  # how late past its deadline a stall may be noticed; deadlines are tens of seconds


def _expire(call: str, seconds: float) -> None:
    try:
        log.critical(
            "client_call_stalled_restarting_worker",
            call=call,
            seconds=seconds,
            hint="librdkafka#5456: a transactional call overran its timeout; a fresh worker "
            "takes over",
        )
    finally:  # even when the log line cannot be written (a closed stderr)
        os._exit(EXIT_TEMPFAIL)  # the supervisor restarts a worker that exits with it


class StallWatchdog:
    """Deadlines of the guarded calls in progress, and one daemon thread that checks them."""

    def __init__(
        self, expire: Callable[[str, float], None] = _expire, tick_s: float = TICK_S
    ) -> None:
        self._expire = expire
        self._tick_s = tick_s
        self._lock = threading.Lock()
        self._calls: dict[int, tuple[float, str, float]] = {}  # id -> deadline, call, seconds
        self._next_id = 0
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, call: str, seconds: float) -> Iterator[None]:
        """Call `expire(call, seconds)` if the block takes longer than `seconds`."""
        with self._lock:
            self._next_id += 1
            key = self._next_id
            self._calls[key] = (time.monotonic() + seconds, call, seconds)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="stall-watchdog")
                self._thread.daemon = True
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._calls.pop(key, None)

    def _watch(self) -> None:
        while True:
            time.sleep(self._tick_s)
            now = time.monotonic()
            with self._lock:
                overdue = [k for k, (deadline, _, _) in self._calls.items() if now > deadline]
                expired = [self._calls.pop(k)[1:] for k in overdue]
            for call, seconds in expired:
                self._expire(call, seconds)


_WATCHDOG = StallWatchdog()


def stall_guard(call: str, seconds: float) -> AbstractContextManager[None]:
    """End the process if the block takes longer than `seconds`."""
    return _WATCHDOG.guard(call, seconds)
