"""`customer-ids tail`: a downstream subscriber that prints CustomerIdAssigned as JSON lines."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO

from confluent_kafka import Consumer

from customer_ids.adapters.kafka_io import client_config
from customer_ids.adapters.logs import get_logger
from customer_ids.domain.errors import DecodeError
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.wire.codec import RecordCodec, customer_id_assigned_codec

log = get_logger(__name__)


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
    codec = codec or customer_id_assigned_codec()
    printed = 0
    last_seen = time.monotonic()
    try:
        while not stop.is_set():
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is not None:
                    log.warning("consumer_error", error=str(message.error()))
                    continue
                try:
                    event = CustomerIdAssigned.from_record(codec.decode(message.value()))
                except DecodeError as exc:
                    log.warning("undecodable_record", offset=message.offset(), error=str(exc))
                    continue
                record = event.to_record()
                record["assigned_at"] = event.assigned_at.isoformat()
                out.write(json.dumps(record) + "\n")
                printed += 1
                last_seen = time.monotonic()
                if max_events and printed >= max_events:
                    return printed
            out.flush()
            if idle_seconds and time.monotonic() - last_seen > idle_seconds:
                return printed
        return printed
    finally:
        consumer.close()
