"""A library call for upstream services: validated, Avro-encoded, keyed, idempotent."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from customer_ids.adapters.kafka_io import producer_config
from customer_ids.adapters.schema_registry import RegistryConfig, framed_codec
from customer_ids.domain.errors import CustomerIdsError
from customer_ids.domain.events import CustomerCreated, CustomerIdAssigned, now_utc
from producer.replies import AssignmentFollower, Waiter


class DeliveryError(CustomerIdsError):
    """The broker did not take an event; the message says which customer and why."""


class AssignmentTimeoutError(CustomerIdsError):
    """The event was sent, its number not committed in time; it is numbered once, later."""


def valid_event(  # noqa: PLR0917 - the fields of the event, as the callers name them
    customer_id: str,
    source_system: str,
    customer_type: str,
    country_code: str,
    occurred_at: datetime | None,
    event_id: str | None,
    optional: dict[str, Any],
) -> CustomerCreated:
    """A CustomerCreated with its event_id and time filled in when absent; ValidationError
    naming the field that is wrong."""
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
    return event


class CustomerEventProducer:
    """Publishes CustomerCreated events keyed by customer_id, so a customer's events stay in
    order on one partition. Idempotent, with one exception librdkafka keeps: when a partition
    leader dies with records in flight, an epoch bump re-sends them, and a record the dead
    leader had already replicated is written twice (librdkafka#4953). Both copies carry one
    event_id; the service answers each with the same number and the same output event_id."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "customer.created",
        *,
        schema_registry: RegistryConfig | None = None,
        output_topic: str = "customer.id-assigned",
        **config: Any,
    ) -> None:
        """With `schema_registry`, values go out in the Confluent wire format, the schema
        registered first under `<topic>-value` (ConfigError if the registry refuses it).
        `output_topic`: where `emit_and_wait` reads the committed answer."""
        self.topic = topic
        self.output_topic = output_topic
        self._bootstrap = bootstrap_servers
        self._registry = schema_registry
        self._codec = framed_codec(schema_registry, topic, "CustomerCreated", register=True)
        self._failures: list[str] = []
        self._replies: AssignmentFollower | None = None
        self._replies_lock = threading.Lock()
        self._stopping = threading.Event()
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
        event = valid_event(
            customer_id, source_system, customer_type, country_code, occurred_at, event_id, optional
        )
        self.emit_event(event)
        return event

    def emit_and_wait(
        self,
        *,
        customer_id: str,
        source_system: str,
        customer_type: str,
        country_code: str,
        timeout_s: float = 10.0,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
        **optional: Any,
    ) -> CustomerIdAssigned:
        """Emit one event and return the customer's committed assignment (a new number, or
        the one it had). AssignmentTimeoutError when it is not committed within `timeout_s`:
        the event was sent and will be numbered once; asking again is safe."""
        event = valid_event(
            customer_id, source_system, customer_type, country_code, occurred_at, event_id, optional
        )
        return self.emit_event_and_wait(event, timeout_s)

    def emit_event_and_wait(self, event: CustomerCreated, timeout_s: float) -> CustomerIdAssigned:
        """As emit_and_wait, for a built event. Thread-safe: callers wait side by side, each
        on its own answer; one thread of the producer serves every delivery report."""
        replies = self._follower()
        waiter = replies.expect(event.customer_key)  # before sending: no answer is missed
        try:
            self._send(event, waiter, time.monotonic() + timeout_s)
            answer = waiter.wait(timeout_s)
        finally:
            replies.forget(waiter)
        if waiter.failure is not None:
            raise DeliveryError(
                f"{event.customer_key}: the broker did not take it ({waiter.failure})"
            )
        if answer is None:
            raise AssignmentTimeoutError(
                f"event {event.event_id} for {event.customer_key} was sent to {self.topic}, "
                f"but no number was committed within {timeout_s:g}s; the service numbers it "
                "once when it gets to it: ask again (emitting it again is safe too)"
            )
        return answer

    def recently_committed(self, customer_key: str) -> CustomerIdAssigned | None:
        """The committed assignment emit_and_wait last returned for this customer, if any."""
        return self._replies.recent(customer_key) if self._replies is not None else None

    def _send(self, event: CustomerCreated, waiter: Waiter, deadline: float) -> None:
        """Queue one event; a delivery that fails wakes its waiter with the reason."""

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                waiter.fail(error.str())

        value = self._codec.encode(event.to_record())
        while True:
            try:
                self._producer.produce(
                    self.topic, key=event.customer_id.encode(), value=value, on_delivery=on_delivery
                )
                return
            except BufferError:  # the local queue is full: wait for room, not forever
                if time.monotonic() >= deadline:
                    raise DeliveryError(
                        f"{event.customer_key}: the producer's queue stayed full; nothing was sent"
                    ) from None
                time.sleep(0.01)

    def _serve_deliveries(self) -> None:
        """Delivery reports of emit_and_wait's events, for every waiting caller at once."""
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    def _follower(self) -> AssignmentFollower:
        with self._replies_lock:
            if self._replies is None:
                codec = framed_codec(self._registry, self.output_topic, "CustomerIdAssigned")
                self._replies = AssignmentFollower(self._bootstrap, self.output_topic, codec.decode)
                threading.Thread(
                    target=self._serve_deliveries, name="deliveries", daemon=True
                ).start()
            return self._replies

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

    def close(self) -> None:
        """Send what is queued, stop reading answers (for a producer not used as `with`)."""
        self._codec.close()
        self._stopping.set()
        if self._replies is not None:
            self._replies.close()
        self.flush()

    def __enter__(self) -> CustomerEventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._codec.close()
        self._stopping.set()
        if self._replies is not None:
            self._replies.close()
        if exc_type is None:
            self.flush()
