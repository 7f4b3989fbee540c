"""librdkafka's repeated complaints are told once, then summarised, never once a second."""

from __future__ import annotations

import logging

from customer_ids.adapters.logs import RepeatSummary


def record(text: str) -> logging.LogRecord:
    return logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, text, (), None)


def refused(ms: int) -> logging.LogRecord:
    return record(
        "FAIL [rdkafka#producer-1] [thrd:127.0.0.1:1/bootstrap]: Connect to ipv4#127.0.0.1:1 "
        f"failed: Connection refused (after {ms}ms in state CONNECT)"
    )


def test_a_complaint_repeated_every_second_is_told_once_then_counted() -> None:
    summary = RepeatSummary(interval_s=60)
    shown = [summary.filter(refused(ms)) for ms in range(30)]
    assert shown == [True] + [False] * 29
    assert summary.filter(record("another complaint entirely"))


def test_after_the_interval_the_next_one_says_how_many_were_held_back() -> None:
    held = RepeatSummary(interval_s=3600)
    held.filter(refused(0))
    for ms in range(5):
        held.filter(refused(ms))
    held.interval_s = 0  # the interval has passed
    late = refused(7)
    assert held.filter(late)
    assert "(and 5 more like it in the last" in late.getMessage()
