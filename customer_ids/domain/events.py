"""The two events as typed values, and their mapping to and from Avro records."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from customer_ids.domain.errors import ValidationError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


@dataclass(frozen=True, slots=True)
class CustomerCreated:
    """An upstream system created a customer. Only ids are ever logged, never the PII fields."""

    event_id: str
    customer_id: str
    source_system: str
    customer_type: str
    country_code: str
    occurred_at: datetime
    display_name: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    attributes: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def customer_key(self) -> str:
        """Unique across upstream systems: two systems' ids never collide."""
        return f"{self.source_system}/{self.customer_id}"

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "source_system": self.source_system,
            "customer_type": self.customer_type,
            "country_code": self.country_code,
            "occurred_at": self.occurred_at,
            "display_name": self.display_name,
            "email": self.email,
            "phone": self.phone,
            "attributes": self.attributes,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CustomerCreated:
        """Build and validate; a broken rule raises ValidationError naming the field."""
        event = cls(
            event_id=record["event_id"],
            customer_id=record["customer_id"],
            source_system=record["source_system"],
            customer_type=record["customer_type"],
            country_code=record["country_code"],
            occurred_at=record["occurred_at"],
            display_name=record.get("display_name"),
            email=record.get("email"),
            phone=record.get("phone"),
            attributes=record.get("attributes") or {},
        )
        event.validate()
        return event

    def validate(self) -> None:
        if not _UUID.match(self.event_id):
            raise ValidationError(f"event_id {self.event_id!r} is not a UUID")
        for name in ("customer_id", "source_system", "customer_type"):
            check_id(name, getattr(self, name))
        if "/" in self.source_system:
            raise ValidationError("source_system must not contain '/'")
        if len(self.country_code) != 2 or not self.country_code.isalpha():
            raise ValidationError(
                f"country_code {self.country_code!r} is not an ISO 3166-1 alpha-2 code"
            )


@dataclass(frozen=True, slots=True)
class CustomerIdAssigned:
    """customer-ids gave a customer its number. Carries no personal data at all."""

    event_id: str
    causation_id: str
    customer_id: str
    source_system: str
    customer_number: str
    sequence_name: str
    sequence: int
    assigned_at: datetime
    # Schema v2 (defaults: what a v1 record reads as). While merged, customer_number is the
    # survivor's and retired_number the customer's own.
    merged_into: str | None = None
    retired_number: str | None = None
    possible_duplicates: tuple[str, ...] = ()

    @property
    def customer_key(self) -> str:
        return f"{self.source_system}/{self.customer_id}"

    @property
    def own_number(self) -> str:
        """The number this customer was given: its own, also while merged (then retired)."""
        return self.retired_number or self.customer_number

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "causation_id": self.causation_id,
            "customer_id": self.customer_id,
            "source_system": self.source_system,
            "customer_number": self.customer_number,
            "sequence_name": self.sequence_name,
            "sequence": self.sequence,
            "assigned_at": self.assigned_at,
            "merged_into": self.merged_into,
            "retired_number": self.retired_number,
            "possible_duplicates": list(self.possible_duplicates),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CustomerIdAssigned:
        return cls(
            event_id=record["event_id"],
            causation_id=record["causation_id"],
            customer_id=record["customer_id"],
            source_system=record["source_system"],
            customer_number=record["customer_number"],
            sequence_name=record["sequence_name"],
            sequence=record["sequence"],
            assigned_at=record["assigned_at"],
            merged_into=record.get("merged_into"),
            retired_number=record.get("retired_number"),
            possible_duplicates=tuple(record.get("possible_duplicates") or ()),
        )


@dataclass(frozen=True, slots=True)
class CustomerErasureRequested:
    """Erase what customer-ids holds of a customer's personal data (README, "Personal data").
    Ids only: the request is kept as the record of the erasure."""

    event_id: str
    source_system: str
    customer_id: str
    requested_at: datetime
    requested_by: str

    @property
    def customer_key(self) -> str:
        return f"{self.source_system}/{self.customer_id}"

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "source_system": self.source_system,
            "customer_id": self.customer_id,
            "requested_at": self.requested_at,
            "requested_by": self.requested_by,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CustomerErasureRequested:
        """Build and validate, with the rules of CustomerCreated's ids."""
        event = cls(
            event_id=record["event_id"],
            source_system=record["source_system"],
            customer_id=record["customer_id"],
            requested_at=record["requested_at"],
            requested_by=record["requested_by"],
        )
        if not _UUID.match(event.event_id):
            raise ValidationError(f"event_id {event.event_id!r} is not a UUID")
        for name in ("customer_id", "source_system", "requested_by"):
            check_id(name, getattr(event, name))
        if "/" in event.source_system:
            raise ValidationError("source_system must not contain '/'")
        return event


MERGE, UNMERGE = "merge", "unmerge"


@dataclass(frozen=True, slots=True)
class CustomerMergeRequested:
    """Merge `merged` into `survivor` (within a system, or a link across systems), or undo it
    (README, "Merges and links"). Ids only."""

    event_id: str
    action: str
    merged_source_system: str
    merged_customer_id: str
    survivor_source_system: str | None
    survivor_customer_id: str | None
    requested_at: datetime
    requested_by: str

    @property
    def merged_key(self) -> str:
        return f"{self.merged_source_system}/{self.merged_customer_id}"

    @property
    def survivor_key(self) -> str | None:
        if self.survivor_source_system is None or self.survivor_customer_id is None:
            return None
        return f"{self.survivor_source_system}/{self.survivor_customer_id}"

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "action": self.action,
            "merged_source_system": self.merged_source_system,
            "merged_customer_id": self.merged_customer_id,
            "survivor_source_system": self.survivor_source_system,
            "survivor_customer_id": self.survivor_customer_id,
            "requested_at": self.requested_at,
            "requested_by": self.requested_by,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CustomerMergeRequested:
        """Build and validate: the ids as CustomerCreated's, a survivor for a merge only."""
        event = cls(
            event_id=record["event_id"],
            action=record["action"],
            merged_source_system=record["merged_source_system"],
            merged_customer_id=record["merged_customer_id"],
            survivor_source_system=record.get("survivor_source_system"),
            survivor_customer_id=record.get("survivor_customer_id"),
            requested_at=record["requested_at"],
            requested_by=record["requested_by"],
        )
        if not _UUID.match(event.event_id):
            raise ValidationError(f"event_id {event.event_id!r} is not a UUID")
        if event.action not in (MERGE, UNMERGE):
            raise ValidationError(f"action {event.action!r} is neither {MERGE} nor {UNMERGE}")
        names = ["merged_source_system", "merged_customer_id", "requested_by"]
        if event.action == MERGE:
            names += ["survivor_source_system", "survivor_customer_id"]
        elif event.survivor_key is not None:
            raise ValidationError("an unmerge names no survivor: leave it out")
        for name in names:
            check_id(name, getattr(event, name) or "")
        for system in (event.merged_source_system, event.survivor_source_system or ""):
            if "/" in system:
                raise ValidationError("source_system must not contain '/'")
        return event


def check_id(name: str, value: str) -> None:
    """An id field: present, at most 200 characters, no control character."""
    if not value or not value.strip():
        raise ValidationError(f"{name} is empty; every event needs one")
    if len(value) > 200:
        raise ValidationError(f"{name} is longer than 200 characters")
    if _CONTROL.search(value):
        # A control character (a newline, NUL, an escape) in an id breaks every
        # line-based tool and terminal that shows it; upstream must send it clean.
        raise ValidationError(f"{name} contains a control character; send it without")


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, as timestamp-millis keeps a time on the wire."""
    return int(moment.timestamp() * 1000)


def now_utc() -> datetime:
    """Now, at the millisecond precision that timestamp-millis keeps on the wire."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
