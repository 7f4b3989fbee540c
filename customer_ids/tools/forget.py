"""`customer-ids forget SRC/ID...`: erase what customer-ids holds of customers' personal data.

The command does not touch Redis itself: it records a CustomerErasureRequested per customer on
the erasure topic, exactly as a CRM's delete hook would, and the service applies it in its own
transactions (README, "Personal data"). So an erasure is ordered with the service's writes,
survives a Redis rebuild, and is on record (ids, time, who asked) for as long as the topic is.
By default the command then waits until the service has applied it: until the service's
consumer group has committed past each request.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from customer_ids.adapters.kafka_io import client_config, producer_config
from customer_ids.adapters.log_reader import read_to_end
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import (
    ConfigError,
    CustomerIdsError,
    UnavailableError,
    ValidationError,
)
from customer_ids.domain.events import CustomerErasureRequested, now_utc


class NotAppliedError(UnavailableError):
    """The requests are recorded, the service has not applied them in time."""


@dataclass(frozen=True)
class Requested:
    customer_key: str
    partition: int
    offset: int


def parse_customer(text: str, requested_by: str) -> CustomerErasureRequested:
    """`SRC/ID` as an erasure request; ConfigError saying what is wrong."""
    source, slash, customer = text.partition("/")
    if not slash or not source or not customer:
        raise ConfigError(f"{text!r}: name a customer as SOURCE_SYSTEM/CUSTOMER_ID, e.g. crm/42")
    try:
        return CustomerErasureRequested.from_record(
            {
                "event_id": str(uuid.uuid4()),
                "source_system": source,
                "customer_id": customer,
                "requested_at": now_utc(),
                "requested_by": requested_by,
            }
        )
    except ValidationError as exc:
        raise ConfigError(f"{text!r}: {exc}") from None


def request_erasure(
    settings: Settings, requests: list[CustomerErasureRequested]
) -> list[Requested]:
    """Record each request on the erasure topic (keyed by customer); where each landed."""
    codec = framed_codec(
        settings.registry(), settings.erasure_topic, "CustomerErasureRequested", register=True
    )
    try:
        return produce_requests(
            settings,
            settings.erasure_topic,
            [(r.customer_key, codec.encode(r.to_record())) for r in requests],
            "erasure request",
        )
    finally:
        codec.close()


def produce_requests(
    settings: Settings, topic: str, records: list[tuple[str, bytes]], what: str
) -> list[Requested]:
    """Write (customer key, value) records to `topic` idempotently; where each landed.
    CustomerIdsError when Kafka did not take them all (repeating is safe)."""
    landed: list[Requested] = []
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(error.str())
            return
        key = (message.key() or b"").decode()
        landed.append(Requested(key, message.partition() or 0, message.offset() or 0))

    producer = Producer(producer_config(settings.bootstrap_servers, {"enable.idempotence": True}))
    for key, value in records:
        producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
    left = producer.flush(settings.connect_timeout_s * 3)
    if left or failures:
        raise CustomerIdsError(
            f"Kafka did not take {left + len(failures)} {what}(s)"
            + (f": {failures[0]}" if failures else "")
            + "; nothing was changed. Run the command again (it is safe to repeat)."
        )
    return landed


def wait_until_applied(
    settings: Settings, topic: str, landed: list[Requested], timeout_s: float
) -> None:
    """Until the service's group has committed past every request on `topic`;
    NotAppliedError after `timeout_s` (the requests stay recorded: the service applies them
    when it runs)."""
    consumer = Consumer(client_config(settings.bootstrap_servers, {"group.id": settings.group_id}))
    deadline = time.monotonic() + timeout_s
    try:
        wanted = {(topic, r.partition): r.offset for r in landed}
        while True:
            asked = [TopicPartition(t, p) for t, p in wanted]
            done = consumer.committed(asked, timeout=10)
            behind = [tp for tp in done if tp.offset <= wanted[(tp.topic, tp.partition)]]
            if not behind:
                return
            if time.monotonic() >= deadline:
                raise NotAppliedError(
                    f"{len(landed)} request(s) recorded on {topic}, but the service (group "
                    f"{settings.group_id}) has not applied them within {timeout_s:.0f}s: is "
                    "it running? It applies them when it runs; repeating the command is safe."
                )
            time.sleep(0.5)
    finally:
        consumer.close()


def erased_customers(settings: Settings) -> set[str]:
    """Every customer key with an erasure on record (the compacted erasure topic)."""
    keys: set[str] = set()

    def take(message: Message) -> None:
        if message.key():
            keys.add((message.key() or b"").decode(errors="replace"))

    read_to_end(settings.bootstrap_servers, settings.erasure_topic, take)
    return keys
