"""The JSON bodies of /v1, as pydantic models: validation in, and the OpenAPI schema at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from customer_ids.domain.number_check import NumberReport
from customer_ids.tools.api.records import CustomerRecord
from customer_ids.tools.api.search import SearchResult


class CustomerOut(BaseModel):
    source_system: str
    customer_id: str
    customer_number: str
    sequence_name: str
    sequence: int
    assigned_at: datetime | None = Field(
        description="known when the answer came from the output topic; Redis keeps no time"
    )
    found_in: Literal["redis", "kafka"]
    merged_into: str | None = Field(
        None,
        description="set while this customer is merged into another (source_system/"
        "customer_id): customer_number is then the number they share",
    )
    retired_number: str | None = Field(
        None, description="while merged: this customer's own number, retired, an alias"
    )
    possible_duplicates: list[str] = Field(
        default_factory=list,
        description="numbers of other customers with the same email or phone (search index on)",
    )

    @classmethod
    def of(cls, record: CustomerRecord) -> CustomerOut:
        return cls(
            source_system=record.source_system,
            customer_id=record.customer_id,
            customer_number=record.customer_number,
            sequence_name=record.sequence_name,
            sequence=record.sequence,
            assigned_at=record.assigned_at,
            found_in=record.found_in,
            merged_into=record.merged_into,
            retired_number=record.retired_number,
            possible_duplicates=list(record.possible_duplicates),
        )


class NumberOut(BaseModel):
    number: str = Field(description="the number as checked: trimmed, capitals if only so valid")
    valid: bool = Field(description="well formed for a configured sequence, check digit right")
    well_formed: bool
    check_digit_ok: bool | None = Field(description="null: no check digit, or not well formed")
    expected_check_digit: str | None = Field(description="set when the check digit is wrong")
    sequence_name: str | None
    explanation: str
    owner: CustomerOut | None = Field(description="null: no customer holds this number")

    @classmethod
    def of(cls, report: NumberReport, owner: CustomerRecord | None) -> NumberOut:
        return cls(
            number=report.number,
            valid=report.valid,
            well_formed=report.well_formed,
            check_digit_ok=report.check_ok,
            expected_check_digit=report.expected_check,
            sequence_name=report.sequence_name,
            explanation=report.explanation,
            owner=CustomerOut.of(owner) if owner else None,
        )


class SearchIn(BaseModel):
    """Exactly one of email and phone. A phone without + is read in `region`."""

    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=64)
    region: str | None = Field(
        None, min_length=2, max_length=2, description="ISO country code, e.g. DE"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SearchIn:
        if (self.email is None) == (self.phone is None):
            raise ValueError("give exactly one of email and phone")
        return self


class SearchOut(BaseModel):
    kind: Literal["email", "phone"]
    count: int
    truncated: bool = Field(description="more customers matched than are listed")
    customers: list[CustomerOut]

    @classmethod
    def of(cls, result: SearchResult) -> SearchOut:
        return cls(
            kind=result.kind,
            count=len(result.customers),
            truncated=result.truncated,
            customers=[CustomerOut.of(c) for c in result.customers],
        )


class CustomerIn(BaseModel):
    """A CustomerCreated as JSON; `event_id` and `occurred_at` are filled in when absent."""

    source_system: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=200)
    customer_type: str = Field(min_length=1, max_length=200)
    country_code: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    display_name: str | None = Field(None, max_length=400)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=64)
    attributes: dict[str, str] = Field(default_factory=dict)
    event_id: str | None = Field(None, description="a UUID; made when absent")
    occurred_at: datetime | None = Field(None, description="with a time zone; now when absent")

    model_config = {"extra": "forbid"}


class Pending(BaseModel):
    detail: str
    event_id: str = Field(description="the CustomerCreated sent; it is numbered once")
    location: str = Field(description="ask here for the number (also the Location header)")


class Problem(BaseModel):
    detail: str
