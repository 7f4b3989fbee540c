"""`customer-ids produce`: generated events or a JSON-lines file, with a progress bar."""

from __future__ import annotations

import json
import sys
import time
import uuid
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


REQUIRED = ("customer_id", "source_system", "customer_type", "country_code")
OPTIONAL = ("event_id", "occurred_at", "display_name", "email", "phone", "attributes")
_ALLOWED = (
    f"each line is one JSON object with {', '.join(REQUIRED)} (text) and optionally "
    f"{', '.join(OPTIONAL)} (occurred_at: ISO time or epoch milliseconds; attributes: an "
    "object of text values)"
)


def read_json_lines(path: Path) -> Iterator[CustomerCreated]:
    """Events from a file, read once (a pipe or a process substitution works too). Every line
    is checked before the first is given: a bad line stops the command with its line number
    and what is wrong, and nothing is sent."""
    try:
        with path.open(encoding="utf-8") as source:
            lines = source.readlines()
    except FileNotFoundError:
        raise ConfigError(f"--file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--file {path}: cannot be read as text: {exc}") from None
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(_event(line))
        except (ValueError, TypeError, ValidationError) as exc:
            raise ConfigError(f"--file {path}, line {number}: {exc}") from None
    yield from events


def _event(line: str) -> CustomerCreated:
    """One line as an event; ValueError naming the fields that are missing, unknown or of
    the wrong type, and what a line may hold."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno}); {_ALLOWED}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"a JSON {type(raw).__name__}, not an object; {_ALLOWED}")
    missing = [name for name in REQUIRED if raw.get(name) in (None, "")]
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    wrong = [
        name
        for name in (*REQUIRED, "event_id", "display_name", "email", "phone")
        if raw.get(name) is not None and not isinstance(raw[name], str)
    ]
    attributes = raw.get("attributes")
    if attributes is not None and not (
        isinstance(attributes, dict) and all(isinstance(v, str) for v in attributes.values())
    ):
        wrong.append("attributes")
    problems = [
        *([f"missing {', '.join(missing)}"] if missing else []),
        *([f"unknown field(s) {', '.join(unknown)}"] if unknown else []),
        *([f"not text: {', '.join(wrong)}"] if wrong else []),
    ]
    if problems:
        raise ValueError(f"{'; '.join(problems)}; {_ALLOWED}")
    occurred = raw.get("occurred_at")
    raw["occurred_at"] = (
        datetime.fromisoformat(occurred)
        if isinstance(occurred, str)
        else datetime.fromtimestamp((occurred or time.time() * 1000) / 1000, UTC)
    )
    raw["event_id"] = raw.get("event_id") or str(uuid.uuid4())
    event = CustomerCreated(**raw)
    event.validate()
    return event


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
