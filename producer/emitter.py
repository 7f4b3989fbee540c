"""A library call for upstream services: validated, Avro-encoded, keyed, idempotent."""

from __future__ import annotations

import uuid
from datetime import datetime
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from customer_ids.adapters.kafka_io import producer_config
from customer_ids.adapters.schema_registry import RegistryConfig, framed_codec
from customer_ids.domain.errors import CustomerIdsError
from customer_ids.domain.events import CustomerCreated, now_utc


class DeliveryError(CustomerIdsError):
    """The broker did not take an event; the message says which customer and why."""


class CustomerEventProducer:
    """Publishes CustomerCreated events keyed by customer_id, so a customer's events stay in
    order on one partition. Idempotent: librdkafka's retries never write an event twice."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "customer.created",
        *,
        schema_registry: RegistryConfig | None = None,
        **config: Any,
    ) -> None:
        """With `schema_registry`, values go out in the Confluent wire format, the schema
        registered first under `<topic>-value` (ConfigError if the registry refuses it)."""
        self.topic = topic
        self._codec = framed_codec(schema_registry, topic, "CustomerCreated", register=True)
        self._failures: list[str] = []
        self._producer = Producer(
            producer_config(
                bootstrap_servers,
                {
                    "enable.idempotence": True,
                    "linger.ms": 20,
                    "compression.type": "lz4",
                    **config,
                },
            )
        )

    def emit(
        self,
        *,
        customer_id: str,
        source_system: str,
        customer_type: str,
        country_code: str,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
        **optional: Any,
    ) -> CustomerCreated:
        """Validate and queue one event; returns it (with its event_id). Raises on bad input."""
        event = CustomerCreated(
            event_id=event_id or str(uuid.uuid4()),
            customer_id=customer_id,
            source_system=source_system,
            customer_type=customer_type,
            country_code=country_code,
            occurred_at=occurred_at or now_utc(),
            **optional,
        )
        event.validate()
        self.emit_event(event)
        return event

    def emit_event(self, event: CustomerCreated) -> None:
        self.emit_raw(event.customer_id.encode(), self._codec.encode(event.to_record()))

    def emit_raw(self, key: bytes | None, value: bytes | None) -> None:
        """Publish bytes as they are (the load generator uses it to send bad input)."""
        while True:
            try:
                self._producer.produce(
                    self.topic, key=key, value=value, on_delivery=self._on_delivery
                )
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
        self._producer.poll(0)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(f"key={message.key()!r}: {error}")

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued event is on the broker; raise if any was refused."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryError(f"{remaining} events not delivered within {timeout}s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryError(f"{len(failures)} events refused, first: {failures[0]}")

    def __enter__(self) -> CustomerEventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._codec.close()
        if exc_type is None:
            self.flush()
