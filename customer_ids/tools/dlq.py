"""`customer-ids dlq list|replay`: look at dead-lettered records and send them back in.

Replay re-publishes a record's original key and bytes to the input topic, with audit headers
naming where it came from, when, and why it was dead-lettered. Replaying is safe to repeat: a
customer's number never changes, so a second replay yields the same number again (and a
second output event with it), never a second number.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message, Producer

from customer_ids.adapters.kafka_io import producer_config
from customer_ids.adapters.log_reader import read_to_end
from customer_ids.adapters.schema_registry import FramedCodec, framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import CustomerIdsError
from customer_ids.tools.forget import erased_customers


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @property
    def reason(self) -> str:
        return self.headers.get("error.class", b"?").decode(errors="replace")

    def summary(self) -> dict[str, Any]:
        """What an operator needs to decide; never the value (it may hold personal data)."""
        h = {k: v.decode(errors="replace") for k, v in self.headers.items()}
        return {
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
            "dead_lettered_at": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(),
            "error_class": h.get("error.class"),
            "error_message": h.get("error.message"),
            "source": f"{h.get('source.topic')}/{h.get('source.partition')}@"
            f"{h.get('source.offset')}",
            "value_bytes": len(self.value or b""),
            "replayed_before": "replay.source" in h,
        }


@dataclass
class DeadLetters:
    letters: list[DeadLetter]
    erased: int  # left out: records of customers whose data was erased (`forget`)


def read_dead_letters(
    settings: Settings, since: datetime | None = None, reason: str | None = None
) -> DeadLetters:
    """The dead letters asked for, except those of erased customers: their raw records hold
    personal data that must not be shown or sent back in (README, "Personal data")."""
    found: list[DeadLetter] = []
    erased = erased_customers(settings)
    # Input records are keyed by customer_id alone: an undecodable one is left out when any
    # erased customer has its id (leaving out too much is the safe side).
    erased_ids = {key.partition("/")[2] for key in erased}
    codec = framed_codec(settings.registry(), settings.input_topic, "CustomerCreated")
    hidden = 0

    def keep(message: Message) -> None:
        raw: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        headers = {name: value for name, value in raw if isinstance(value, bytes)}
        letter = DeadLetter(
            message.partition() or 0,
            message.offset() or 0,
            message.timestamp()[1],
            message.key(),
            message.value(),
            headers,
        )
        if since and letter.timestamp_ms < since.timestamp() * 1000:
            return
        if reason and letter.reason != reason:
            return
        if erased and _of_erased(letter, codec, erased, erased_ids):
            nonlocal hidden
            hidden += 1
            return
        found.append(letter)

    read_to_end(settings.bootstrap_servers, settings.dlq_topic, keep)
    codec.close()
    return DeadLetters(found, hidden)


def _of_erased(letter: DeadLetter, codec: FramedCodec, erased: set[str], ids: set[str]) -> bool:
    try:
        record = codec.decode(letter.value)
        return f"{record['source_system']}/{record['customer_id']}" in erased
    except Exception:
        return (letter.key or b"").decode(errors="replace") in ids


def replay(settings: Settings, letters: list[DeadLetter]) -> int:
    """Publish each record back to the input topic; returns how many were sent."""
    failures: list[str] = []

    def on_delivery(error: object, message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer(
        producer_config(settings.bootstrap_servers, {"enable.idempotence": True, "linger.ms": 20})
    )
    now = datetime.now(UTC).isoformat().encode()
    for letter in letters:
        audit: list[tuple[str, str | bytes | None]] = [
            ("replay.source", f"{settings.dlq_topic}/{letter.partition}@{letter.offset}".encode()),
            ("replay.at", now),
            ("replay.by", socket.gethostname().encode()),
            ("replay.reason", letter.headers.get("error.message", b"")[:500]),
        ]
        # An erasure request goes back where it came from; everything else to the input.
        source = letter.headers.get("source.topic", b"").decode(errors="replace")
        target = (
            settings.erasure_topic if source == settings.erasure_topic else settings.input_topic
        )
        producer.produce(
            target,
            key=letter.key,
            value=letter.value,
            headers=audit,
            on_delivery=on_delivery,
        )
        producer.poll(0)
    if producer.flush(60) or failures:
        raise CustomerIdsError(f"replay incomplete: {len(failures)} refused, e.g. {failures[:1]}")
    return len(letters)
