"""`customer-ids lookup`: customer -> number and number -> customer, from Redis or the log."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from consumer.claims import ClaimsLog
from customer_ids.adapters.log_reader import read_to_end
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.store.factory import build_allocator
from customer_ids.tools.api.committed import CommittedNumbers


def lookup(
    settings: Settings, customer: str | None, source: str | None, number: str | None, from_log: bool
) -> dict[str, Any] | None:
    key = f"{source}/{customer}" if customer else None
    # number -> customer needs the reverse index; without it, the log answers.
    from_log = from_log or (key is None and not settings.reverse_index)
    if not from_log:
        allocator = build_allocator(settings)
        if key is None and number is not None:
            key = allocator.customer_of(number)
            if key is None:
                return None
        assert key is not None
        stored = allocator.lookup([key]).get(key)
        if stored is None:
            return None
        # Redis may hold a reservation of a batch that has not committed (it may never).
        committed = CommittedNumbers(
            ClaimsLog(settings.bootstrap_servers, settings.watermark_topic)
        )
        try:
            if not committed.holds(stored.own_assignment):  # a merged one's own number
                return None
        finally:
            committed.close()
        system, _, customer_id = key.partition("/")
        merged = (
            {"merged_into": stored.merged_into, "retired_number": stored.own_assignment.number}
            if stored.merged_into is not None
            else {}
        )
        return {
            "source_system": system,
            "customer_id": customer_id,
            "customer_number": stored.number,
            "sequence_name": stored.counter,
            "sequence": stored.value,
            **merged,
            "from": "redis",
        }
    codec = framed_codec(settings.registry(), settings.output_topic, "CustomerIdAssigned")
    found: dict[str, Any] = {}

    def match(message: Message) -> None:
        event = CustomerIdAssigned.from_record(codec.decode(message.value()))
        if event.customer_key == key or event.own_number == number:
            found.clear()  # the latest record says how the customer answers now
            found.update(
                source_system=event.source_system,
                customer_id=event.customer_id,
                customer_number=event.customer_number,
                sequence_name=event.sequence_name,
                sequence=event.sequence,
                **(
                    {"merged_into": event.merged_into, "retired_number": event.retired_number}
                    if event.merged_into
                    else {}
                ),
                **{"from": "kafka"},
            )

    read_to_end(settings.bootstrap_servers, settings.output_topic, match)
    return found or None
