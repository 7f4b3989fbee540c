"""Load for fault tests: sizes for CI and for the full run, events sent while faults land, and
reading the services' logs for when work resumed."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime

from customer_ids.domain.events import CustomerCreated
from producer.emitter import CustomerEventProducer
from tests.helpers.service import Scenario

FULL = os.environ.get("CUSTOMER_IDS_FULL_FAULTS") == "1"


def sized(small: int, full: int) -> int:
    return full if FULL else small


def send_slowly(
    scenario: Scenario, events: list[CustomerCreated], seconds: float
) -> threading.Thread:
    """Send events spread over `seconds` from a thread, so faults land while events flow."""

    def run() -> None:
        with CustomerEventProducer(scenario.endpoints.bootstrap, scenario.input_topic) as out:
            started = time.monotonic()
            for i, event in enumerate(events):
                out.emit_event(event)
                delay = started + seconds * i / len(events) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def log_events(text: str, event: str) -> list[dict[str, object]]:
    """The JSON log lines of one event name."""
    out = []
    for line in text.splitlines():
        if f'"{event}"' in line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def recovered_after(text: str, wall_time: float) -> list[str]:
    """The reasons of the recoveries started after `wall_time`: a changed server, a counter
    below a committed value, a lost epoch (either sign may be seen first)."""
    return [
        str(line["reason"])
        for line in log_events(text, "redis_recovery_started")
        if _stamp(line) > wall_time
    ]


def _stamp(line: dict[str, object]) -> float:
    return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()


def first_commit_after(text: str, wall_time: float) -> float | None:
    """Seconds from a fault at `wall_time` (time.time()) to the first batch committed after
    the recovery it caused (or after the fault, when there was none): the time to resume. A
    batch that was already past its fence when the fault came does not count."""
    rebuilt = [
        _stamp(line)
        for line in log_events(text, "redis_state_rebuilt_from_kafka")
        if _stamp(line) > wall_time
    ]
    since = min(rebuilt) if rebuilt else wall_time
    stamps = [_stamp(line) for line in log_events(text, "batch_committed")]
    later = [s for s in stamps if s > since]
    return min(later) - wall_time if later else None


def returning(events: list[CustomerCreated], count: int, tag: str) -> list[CustomerCreated]:
    """The same customers coming back with new events: they must get their old numbers."""
    import dataclasses  # noqa: PLC0415

    return [dataclasses.replace(e, event_id=e.event_id[: -len(tag)] + tag) for e in events[:count]]
