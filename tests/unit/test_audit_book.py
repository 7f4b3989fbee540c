"""The auditor's rules: each broken promise reported once, repeats and any order left alone."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from customer_ids.domain.audit import AuditBook
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.domain.imports import LEGACY_COUNTER
from customer_ids.domain.number_spaces import Rendering
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.domain.sequences import Router, Sequence

TEMPLATE = NumberTemplate.parse("CU-{seq:8}-{check:luhn}")
ROUTER = Router((Sequence("CU", TEMPLATE),))
MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


def render(value: int) -> str:
    return TEMPLATE.render(RenderContext(value, MOMENT, "BUSINESS", "DE"))


def out(customer: str, value: int, number: str | None = None) -> CustomerIdAssigned:
    return CustomerIdAssigned(
        event_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
        customer_id=customer,
        source_system="crm",
        customer_number=number or render(value),
        sequence_name="CU",
        sequence=value,
        assigned_at=MOMENT,
    )


def kinds(book: AuditBook, records: list[CustomerIdAssigned]) -> list[str]:
    return [f.kind for r in records for f in book.observe(r, 0.0)]


def test_repeats_of_an_assignment_are_not_findings() -> None:
    book = AuditBook(ROUTER)
    assert kinds(book, [out("a", 1), out("b", 2), out("a", 1), out("a", 1)]) == []
    assert book.customers == 2


def test_a_shared_number_a_second_number_and_an_invalid_number_are_each_reported_once() -> None:
    book = AuditBook(ROUTER)
    shared = out("c", 1)
    second = out("a", 3)
    invalid = out("d", 4, number="CU-00000004-0")  # wrong check digit
    found = kinds(book, [out("a", 1), out("b", 2), shared, second, invalid] * 3)
    assert sorted(found) == ["invalid_number", "number_shared", "two_numbers"]


def test_a_number_that_renders_another_value_is_invalid() -> None:
    book = AuditBook(ROUTER)
    [finding] = book.observe(out("a", 5, number=render(6)), 0.0)
    assert finding.kind == "invalid_number"
    assert "renders value 6" in finding.detail


def test_a_gap_is_a_warning_once_it_outlives_the_grace() -> None:
    book = AuditBook(ROUTER)
    kinds(book, [out("a", 1), out("b", 4)])  # 2 and 3 missing since t=0
    assert book.observe(out("c", 3), 5.0) == []  # 3 arrives late: not a gap
    assert book.overdue_gaps(cutoff=-1.0) == []  # not overdue yet
    [gap] = book.overdue_gaps(cutoff=0.0)
    assert (gap.kind, gap.is_error, gap.detail) == (
        "sequence_gap",
        False,
        "value(s) 2 never committed",
    )
    assert book.overdue_gaps(cutoff=10.0) == []  # reported once


@given(st.permutations(list(range(1, 60))))
def test_unique_assignments_in_any_order_give_no_findings(order: list[int]) -> None:
    book = AuditBook(ROUTER)
    records = [out(f"c{v}", v) for v in order]
    assert kinds(book, records) == []
    assert book.overdue_gaps(cutoff=1.0) == []


def test_numbers_of_an_earlier_format_are_valid_against_the_recorded_renderings() -> None:
    """After a format change the service allowed, earlier numbers are not invalid."""
    earlier = Rendering(sequence="CU", template="C{seq:6}", period="none", zone="", scramble="")
    old = out("a", 5, number="C000005")
    assert kinds(AuditBook(ROUTER), [old]) == ["invalid_number"]
    assert kinds(AuditBook(ROUTER, [earlier]), [old]) == []
    assert kinds(AuditBook(ROUTER, [earlier]), [out("b", 6, number="C000007")]) == [
        "invalid_number"
    ]


def test_imported_numbers_and_the_range_an_import_skipped_are_no_findings() -> None:
    book = AuditBook(ROUTER, raised={"CU": [(3, 50_000)]})
    kinds(book, [out("a", 1), out("b", 2)])
    assert book.observe(out("c", 50_001), 0.0) == []  # the service goes on above the import
    imported = out("d", 40_000)
    assert book.observe(imported, 0.0, imported=True) == []
    legacy = replace(out("e", 1, number="LEG/900123"), sequence_name=LEGACY_COUNTER)
    assert book.observe(legacy, 0.0, imported=True) == []
    assert book.overdue_gaps(cutoff=10.0) == []
    # The service re-issuing it to the returning customer carries no import header: no finding;
    # the same legacy number for another customer is still a shared number.
    assert book.observe(replace(legacy, event_id=str(uuid.uuid4())), 0.0) == []
    assert kinds(book, [replace(legacy, customer_id="z")]) == ["number_shared"]
    # An imported number is still one number for one customer.
    assert kinds(book, [out("f", 40_000)]) == ["number_shared"]


def test_a_gap_beside_an_import_range_is_still_a_gap() -> None:
    book = AuditBook(ROUTER, raised={"CU": [(10, 20)]})
    kinds(book, [out("a", 1), out("b", 25)])
    assert [g.detail for g in book.overdue_gaps(cutoff=0.0)] == [
        "value(s) 2..9 never committed",
        "value(s) 21..24 never committed",
    ]
