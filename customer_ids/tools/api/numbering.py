"""A number on request (issue 22): POST /v1/customers sends the customer's CustomerCreated
exactly as producer/ does and waits for the service's committed answer. The API never
allocates: the service is the one allocation path, so two API processes asked for the same
customer at the same moment get the same number (the service gives one, the second event is a
repeat of a known customer).

A customer whose number is committed already (in Redis and shown committed by the claims log)
is answered at once, without an event. Redis unreachable is no reason to refuse: the event is
sent and the service answers it as it would any repeat.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis
from confluent_kafka import KafkaException

from customer_ids.domain.errors import CustomerIdsError, UnavailableError, ValidationError
from customer_ids.domain.events import CustomerCreated, now_utc
from customer_ids.domain.sequences import Router
from customer_ids.tools.api.lookups import Lookups
from customer_ids.tools.api.models import CustomerIn
from customer_ids.tools.api.records import CustomerRecord
from producer.emitter import AssignmentTimeoutError, CustomerEventProducer, DeliveryError


@dataclass(frozen=True)
class Answer:
    status: int  # 201 numbered now, 200 had a number, 202 sent and not committed in time
    record: CustomerRecord | None
    event_id: str | None = None


class NumberOnRequest:
    def __init__(
        self, lookups: Lookups, router: Router, producer: CustomerEventProducer, timeout_s: float
    ) -> None:
        self._lookups = lookups
        self._router = router
        self._producer = producer
        self._timeout_s = timeout_s

    def event_of(self, body: CustomerIn) -> CustomerCreated:
        """The event this body stands for, checked as the service checks it (ValidationError
        naming the field): a body the service would dead-letter is refused here instead."""
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
        sequence = self._router.route(event)
        sequence.counter_name(event.occurred_at)
        sequence.bind(event)
        return event

    def request(self, event: CustomerCreated) -> Answer:
        known = self._committed(event.customer_key)
        if known is not None:
            return Answer(200, known)
        try:
            assigned = self._producer.emit_event_and_wait(event, self._timeout_s)
        except AssignmentTimeoutError:
            return Answer(202, None, event.event_id)
        except (DeliveryError, KafkaException, BufferError) as exc:
            raise UnavailableError(
                f"Kafka did not take the event ({exc}); nothing was sent: try again"
            ) from exc
        return Answer(201, CustomerRecord.from_event(assigned), event.event_id)

    def _committed(self, customer_key: str) -> CustomerRecord | None:
        try:
            found = self._lookups.records([customer_key])
        except (redis.RedisError, CustomerIdsError):
            return None  # the service answers a repeat as well: send the event
        return found[0] if found else None
