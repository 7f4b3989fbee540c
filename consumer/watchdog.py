"""A stall guard for client calls that can hang past their own timeout.

librdkafka's send_offsets_to_transaction() can block forever when the group coordinator goes
away (confluentinc/librdkafka#5456 and #5511, open as of 2.16). A hung worker holds its
partitions and commits nothing, so the guard ends the worker instead; the supervisor starts a
fresh one, which fences the stuck transaction. Ending is safe: every invariant already holds
across a crash at any point.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from consumer.exit_codes import EXIT_TEMPFAIL
from customer_ids.adapters.logs import get_logger

log = get_logger(__name__)


def _expire(call: str, seconds: float) -> None:
    log.critical(
        "client_call_stalled_restarting_worker",
        call=call,
        seconds=seconds,
        hint="librdkafka#5456: a transactional call overran its timeout; a fresh worker takes over",
    )
    os._exit(EXIT_TEMPFAIL)  # the supervisor restarts a worker that exits with it


@contextmanager
def stall_guard(call: str, seconds: float) -> Iterator[None]:
    """End the process if the block takes longer than `seconds`."""
    timer = threading.Timer(seconds, _expire, args=(call, seconds))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
