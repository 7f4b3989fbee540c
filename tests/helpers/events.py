"""Sending test input: good events, duplicates and the bad kinds the service must dead-letter."""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterable

import fastavro

from customer_ids.domain.events import CustomerCreated, now_utc
from customer_ids.wire.codec import MAGIC, customer_created_codec, schema_fingerprint, schemas_dir
from producer.emitter import CustomerEventProducer
from producer.generator import generate_events
from tests.helpers.service import Scenario


def send(scenario: Scenario, events: Iterable[CustomerCreated]) -> list[CustomerCreated]:
    sent = list(events)
    with CustomerEventProducer(scenario.endpoints.bootstrap, scenario.input_topic) as out:
        for event in sent:
            out.emit_event(event)
    return sent


def make_events(count: int, duplicates: float = 0.0, seed: int = 7) -> list[CustomerCreated]:
    return list(generate_events(count, duplicates, seed))


def send_raw(scenario: Scenario, values: Iterable[bytes | None]) -> None:
    with CustomerEventProducer(scenario.endpoints.bootstrap, scenario.input_topic) as out:
        for value in values:
            out.emit_raw(b"bad", value)


def record_missing_country() -> bytes:
    """A record written by a schema without the required country_code: an unknown writer."""
    schema = json.loads((schemas_dir() / "CustomerCreated.avsc").read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "country_code"]
    parsed = fastavro.parse_schema(schema)
    out = io.BytesIO()
    out.write(MAGIC + schema_fingerprint(parsed))
    fastavro.schemaless_writer(
        out,
        parsed,
        {
            "event_id": str(uuid.uuid4()),
            "customer_id": "x",
            "source_system": "crm",
            "customer_type": "INDIVIDUAL",
            "occurred_at": now_utc(),
        },
    )
    return out.getvalue()


def record_with_empty_customer_id() -> bytes:
    event = CustomerCreated(str(uuid.uuid4()), "", "crm", "INDIVIDUAL", "DE", now_utc())
    return customer_created_codec().encode(event.to_record())


def bad_values(seed: int = 1) -> dict[str, bytes | None]:
    good = customer_created_codec().encode(make_events(1, seed=seed)[0].to_record())
    return {
        "garbage": os.urandom(64),
        "truncated": good[:-7],
        "unknown_fingerprint": MAGIC + b"\x00" * 8 + good[10:],
        "missing_field": record_missing_country(),
        "empty_customer_id": record_with_empty_customer_id(),
        "empty_value": None,
        "oversize": b"\xc3\x01" + good[2:10] + b"\xff" * 900_000,
    }
