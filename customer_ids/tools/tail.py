"""`customer-ids tail`: a downstream subscriber that prints CustomerIdAssigned as JSON lines;
and the reader it shares with `watch`: committed assignments, poll by poll."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Generator
from contextlib import closing
from typing import TextIO

from confluent_kafka import Consumer

from customer_ids.adapters.kafka_io import client_config
from customer_ids.adapters.logs import get_logger
from customer_ids.domain.errors import DecodeError
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.wire.codec import RecordCodec, customer_id_assigned_codec

log = get_logger(__name__)


def committed(
    bootstrap: str,
    topic: str,
    group: str,
    codec: RecordCodec,
    stop: threading.Event,
    *,
    idle_seconds: float = 0,
    first_wait_s: float = 0,
    poll_s: float = 0.5,
) -> Generator[list[CustomerIdAssigned | DecodeError], None, None]:
    """The committed assignments of `topic` as a subscriber of group `group` reads them, one
    list a poll (empty when nothing came), each record decoded or the reason it could not be;
    until `stop`, or `idle_seconds` without a record (0: never; before the first record, at
    least `first_wait_s`)."""
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": group,
                "isolation.level": "read_committed",  # never show a number from an aborted batch
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
            },
        )
    )
    consumer.subscribe([topic])
    seen_any = False
    last_seen = time.monotonic()
    try:
        while not stop.is_set():
            batch: list[CustomerIdAssigned | DecodeError] = []
            for message in consumer.consume(num_messages=500, timeout=poll_s):
                if message.error() is not None:
                    log.warning("consumer_error", error=str(message.error()))
                    continue
                try:
                    batch.append(CustomerIdAssigned.from_record(codec.decode(message.value())))
                except DecodeError as exc:
                    log.warning("undecodable_record", offset=message.offset(), error=str(exc))
                    batch.append(exc)
            if batch:
                seen_any, last_seen = True, time.monotonic()
            yield batch
            limit = idle_seconds if seen_any else max(idle_seconds, first_wait_s)
            if idle_seconds and time.monotonic() - last_seen > limit:
                return
    finally:
        consumer.close()


def tail(
    bootstrap: str,
    topic: str,
    group: str,
    stop: threading.Event,
    *,
    out: TextIO = sys.stdout,
    max_events: int = 0,
    idle_seconds: float = 0,
    codec: RecordCodec | None = None,
) -> int:
    """Print each committed assignment; returns how many were printed."""
    codec = codec or customer_id_assigned_codec()
    printed = 0
    reader = committed(bootstrap, topic, group, codec, stop, idle_seconds=idle_seconds)
    with closing(reader):  # the consumer closes however the loop ends
        for batch in reader:
            for event in batch:
                if isinstance(event, DecodeError):
                    continue
                record = event.to_record()
                record["assigned_at"] = event.assigned_at.isoformat()
                out.write(json.dumps(record) + "\n")
                printed += 1
                if max_events and printed >= max_events:
                    return printed
            out.flush()
    return printed
