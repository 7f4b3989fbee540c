"""The stall guard: a call past its deadline is reported once, and guarding starts no thread
per call (a batch makes three guarded calls)."""

from __future__ import annotations

import threading
import time

from consumer.watchdog import StallWatchdog


def test_a_call_past_its_deadline_is_reported_once_and_one_in_time_never() -> None:
    expired: list[tuple[str, float]] = []
    watchdog = StallWatchdog(expire=lambda call, s: expired.append((call, s)), tick_s=0.02)
    with watchdog.guard("flush", 5.0):
        time.sleep(0.1)
    with watchdog.guard("send_offsets_to_transaction", 0.05):
        time.sleep(0.3)
    time.sleep(0.1)
    assert expired == [("send_offsets_to_transaction", 0.05)]


def test_guarded_calls_start_no_thread_of_their_own() -> None:
    watchdog = StallWatchdog(expire=lambda call, s: None, tick_s=0.02)
    with watchdog.guard("init_transactions", 5.0):
        pass
    before = threading.active_count()
    for _ in range(50):
        with watchdog.guard("commit_transaction", 5.0):
            # Before, each guard was a threading.Timer: one more thread while it ran.
            assert threading.active_count() == before
    assert threading.active_count() == before
