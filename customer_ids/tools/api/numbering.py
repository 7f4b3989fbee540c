"""A number on request (issue 22): POST /v1/customers sends the customer's CustomerCreated
exactly as producer/ does and waits for the service's committed answer. The API never
allocates: the service is the one allocation path, so two API processes asked for the same
customer at the same moment get the same number (the service gives one, the second event is a
repeat of a known customer).

A customer whose number is committed already (in Redis and shown committed by the claims log)
is answered at once, without an event. Redis unreachable is no reason to refuse: the event is
sent and the service answers it as it would any repeat. The waiting runs on threads of its
own, so requests waiting for numbers never hold the threads every other endpoint runs on.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import KafkaException

from customer_ids.adapters.schema_registry import RegistryConfig
from customer_ids.domain.errors import (
    CustomerIdsError,
    DecodeError,
    UnavailableError,
    ValidationError,
)
from customer_ids.domain.events import CustomerCreated, now_utc
from customer_ids.domain.sequences import Router
from customer_ids.tools.api.lookups import Lookups
from customer_ids.tools.api.models import CustomerIn
from customer_ids.tools.api.records import CustomerRecord
from customer_ids.wire.codec import customer_created_codec
from producer.emitter import AssignmentTimeoutError, CustomerEventProducer, DeliveryError

MAX_EVENT_BYTES = 900_000  # under Kafka's default message.max.bytes, with room for framing
WAITERS = 256  # requests that may wait for a number at once, each on a thread of this pool


class EventTooLargeError(ValidationError):
    """The event would be larger than a Kafka record may be."""


@dataclass(frozen=True)
class Answer:
    status: int  # 201 numbered now, 200 had a number, 202 sent and not committed in time
    record: CustomerRecord | None
    event_id: str | None = None


@dataclass(frozen=True)
class ProducerSettings:
    bootstrap: str
    input_topic: str
    output_topic: str
    registry: RegistryConfig | None


class NumberOnRequest:
    def __init__(
        self, lookups: Lookups, router: Router, producing: ProducerSettings, timeout_s: float
    ) -> None:
        self._lookups = lookups
        self._router = router
        self._producing = producing
        self._timeout_s = timeout_s
        self._producer: CustomerEventProducer | None = None
        self._made = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=WAITERS, thread_name_prefix="number")
        self._codec = customer_created_codec()

    def event_of(self, body: CustomerIn) -> CustomerCreated:
        """The event this body stands for, checked as the service will check it, the Avro
        round trip included (ValidationError naming the field): a body the service would
        dead-letter is refused here instead."""
        occurred_at = body.occurred_at or now_utc()
        if occurred_at.tzinfo is None:
            raise ValidationError("occurred_at has no time zone; add one, e.g. Z")
        event = CustomerCreated(
            event_id=body.event_id or str(uuid.uuid4()),
            customer_id=body.customer_id,
            source_system=body.source_system,
            customer_type=body.customer_type,
            country_code=body.country_code,
            occurred_at=occurred_at,
            display_name=body.display_name,
            email=body.email,
            phone=body.phone,
            attributes=body.attributes,
        )
        event.validate()
        try:
            encoded = self._codec.encode(event.to_record())
            event = CustomerCreated.from_record(self._codec.decode(encoded))
        except (OverflowError, ValueError, DecodeError):
            raise ValidationError(
                "occurred_at is out of the range a timestamp-millis can carry"
            ) from None
        if len(encoded) > MAX_EVENT_BYTES:
            raise EventTooLargeError(
                f"the event is {len(encoded):,} bytes, more than {MAX_EVENT_BYTES:,}: send "
                "fewer or shorter attributes"
            )
        sequence = self._router.route(event)
        sequence.counter_name(event.occurred_at)
        sequence.bind(event)
        return event

    async def request(self, event: CustomerCreated) -> Answer:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._request, event)

    def _request(self, event: CustomerCreated) -> Answer:
        known = self._committed(event.customer_key)
        if known is not None:
            return Answer(200, known)
        try:
            assigned = self._producer_now().emit_event_and_wait(event, self._timeout_s)
        except AssignmentTimeoutError:
            return Answer(202, None, event.event_id)
        except (DeliveryError, KafkaException, BufferError) as exc:
            raise UnavailableError(
                f"Kafka did not confirm the event ({exc}); it may still arrive and be "
                "numbered once: ask again (it is safe)"
            ) from exc
        return Answer(201, CustomerRecord.from_event(assigned), event.event_id)

    def _committed(self, customer_key: str) -> CustomerRecord | None:
        """The customer's number when it is committed: this process handed it out (its reply
        reader saw the output), or Redis holds it and the claims log shows it committed; no
        read of the output topic here (a request has a deadline)."""
        seen = self._producer.recently_committed(customer_key) if self._producer else None
        if seen is not None:
            return CustomerRecord.from_event(seen)
        try:
            found = self._lookups.records([customer_key], settle_by_log=False)
        except (redis.RedisError, CustomerIdsError):
            return None  # the service answers a repeat as well: send the event
        return found[0] if found else None

    def _producer_now(self) -> CustomerEventProducer:
        """Made on the first request: an API that only reads needs no producer (nor the
        registry's write access the producer's schema registration asks for)."""
        with self._made:
            if self._producer is None:
                p = self._producing
                config: dict[str, Any] = {
                    "linger.ms": 0,  # one request's event is sent at once
                    # A record the broker has not taken by then is given up, so a 503 is
                    # not followed by a late delivery minutes after.
                    "message.timeout.ms": max(1000, int(self._timeout_s * 1000)),
                }
                self._producer = CustomerEventProducer(
                    p.bootstrap,
                    p.input_topic,
                    schema_registry=p.registry,
                    output_topic=p.output_topic,
                    **config,
                )
            return self._producer
