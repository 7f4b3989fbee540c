"""What the API tells about one customer: never more than the output topic carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.store.ports import StoredAssignment

FoundIn = Literal["redis", "kafka"]


@dataclass(frozen=True)
class CustomerRecord:
    """A customer and its number. `assigned_at` is known only when the output topic was read
    (Redis keeps counter, value and number, not the time)."""

    source_system: str
    customer_id: str
    customer_number: str
    sequence_name: str
    sequence: int
    assigned_at: datetime | None
    found_in: FoundIn
    # While merged: whom into, and the customer's own number (retired, an alias).
    merged_into: str | None = None
    retired_number: str | None = None
    possible_duplicates: tuple[str, ...] = ()

    @property
    def customer_key(self) -> str:
        return f"{self.source_system}/{self.customer_id}"

    @classmethod
    def from_store(cls, customer_key: str, stored: StoredAssignment) -> CustomerRecord:
        system, _, customer_id = customer_key.partition("/")
        retired = stored.own_assignment.number if stored.merged_into is not None else None
        return cls(
            system,
            customer_id,
            stored.number,
            stored.counter,
            stored.value,
            None,
            "redis",
            stored.merged_into,
            retired,
        )

    @classmethod
    def from_event(cls, event: CustomerIdAssigned) -> CustomerRecord:
        return cls(
            event.source_system,
            event.customer_id,
            event.customer_number,
            event.sequence_name,
            event.sequence,
            event.assigned_at,
            "kafka",
            event.merged_into,
            event.retired_number,
        )
