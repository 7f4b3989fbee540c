"""`customer-ids produce`: generated events or a JSON-lines file, with a progress bar."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from customer_ids.adapters.logs import get_logger
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError, ValidationError
from customer_ids.domain.events import CustomerCreated
from producer.emitter import CustomerEventProducer
from producer.generator import generate_events

log = get_logger(__name__)


def read_json_lines(path: Path) -> Iterator[CustomerCreated]:
    """Events from a file; a bad line stops with its line number and what is wrong."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"--file {path}: no such file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            occurred = raw.get("occurred_at")
            raw["occurred_at"] = (
                datetime.fromisoformat(occurred)
                if isinstance(occurred, str)
                else datetime.fromtimestamp((occurred or time.time() * 1000) / 1000, UTC)
            )
            raw.setdefault("event_id", None)
            if raw["event_id"] is None:
                import uuid  # noqa: PLC0415

                raw["event_id"] = str(uuid.uuid4())
            event = CustomerCreated(**raw)
            event.validate()
        except (ValueError, TypeError, ValidationError) as exc:
            raise ConfigError(f"--file {path}, line {number}: {exc}") from None
        yield event


def produce(
    settings: Settings,
    *,
    count: int | None,
    file: Path | None,
    duplicates: float,
    rate: float,
    seed: int | None,
    quiet: bool,
) -> int:
    if not 0 <= duplicates <= 1:
        raise ConfigError(f"--duplicates {duplicates}: use a fraction from 0 to 1")
    if count is not None and count < 0:
        raise ConfigError(f"--count {count}: use 0 or more")
    events = (
        generate_events(count or 0, duplicates, seed) if file is None else read_json_lines(file)
    )
    total = count or 0
    show_bar = sys.stderr.isatty() and not quiet and total > 0
    started = time.monotonic()
    sent = 0
    with CustomerEventProducer(
        settings.bootstrap_servers, settings.input_topic, schema_registry=settings.registry()
    ) as out:
        for event in events:
            out.emit_event(event)
            sent += 1
            if rate:
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if show_bar and sent % 200 == 0:
                _bar(min(sent, total), total)
    seconds = time.monotonic() - started
    if show_bar:
        _bar(total, total)
        sys.stderr.write("\n")
    log.info(
        "events_produced",
        events=sent,
        seconds=round(seconds, 2),
        per_second=round(sent / seconds) if seconds else sent,
        topic=settings.input_topic,
    )
    return 0


def _bar(done: int, total: int, width: int = 40) -> None:
    filled = int(width * done / total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()
