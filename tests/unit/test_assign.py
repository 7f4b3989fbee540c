"""Batch assignment rules with an in-memory allocator: reuse, dedupe, periods, exhaustion."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.assign import Assigned, SequenceExhaustedError, assign_numbers
from customer_ids.domain.events import CustomerCreated
from customer_ids.domain.numbers import NumberTemplate
from customer_ids.domain.sequences import Router
from customer_ids.domain.sequences import Sequence as NumberSequence
from customer_ids.store.ports import NumberStore, StateBehindLogError
from tests.unit.fakes import FakeStore


def event(customer: str, when: datetime | None = None, kind: str = "INDIVIDUAL") -> CustomerCreated:
    return CustomerCreated(
        str(uuid.uuid4()), customer, "crm", kind, "DE", when or datetime(2024, 5, 1, tzinfo=UTC)
    )


def run(router: Router, events: list[CustomerCreated], fake: NumberStore) -> list[Any]:
    return assign_numbers([(e, router.route(e)) for e in events], fake, "e").outcomes


def test_existing_customers_keep_their_number_and_batch_duplicates_share_one() -> None:
    router = Router((NumberSequence("CU", NumberTemplate.parse("CU{seq:4}")),))
    fake = FakeStore()
    first = run(router, [event("a"), event("b"), event("a")], fake)
    assert [r.assignment.number for r in first] == ["CU0001", "CU0002", "CU0001"]
    assert [r.duplicate for r in first] == [False, False, True]
    again = run(router, [event("b"), event("c")], fake)
    assert [r.assignment.number for r in again] == ["CU0002", "CU0003"]
    assert again[0].duplicate


def test_start_value_is_honoured() -> None:
    router = Router((NumberSequence("CU", NumberTemplate.parse("CU{seq:6}"), start=100000),))
    assert run(router, [event("a")], FakeStore())[0].assignment.number == "CU100000"


def test_daily_sequence_rolls_over_at_midnight_in_its_zone() -> None:
    template = NumberTemplate.parse("{date:%Y%m%d}{seq:3}", "Europe/Berlin")
    router = Router((NumberSequence("D", template, period="daily"),))
    before = datetime(2023, 10, 15, 21, 59, 59, 999000, tzinfo=UTC)  # 23:59:59.999 in Berlin
    after = datetime(2023, 10, 15, 22, 0, 0, tzinfo=UTC)  # 00:00 on the 16th in Berlin
    result = run(router, [event("a", before), event("b", before), event("c", after)], FakeStore())
    assert [r.assignment.number for r in result] == ["20231015001", "20231015002", "20231016001"]
    assert [r.assignment.counter for r in result] == ["D:20231015", "D:20231015", "D:20231016"]


def test_routing_sends_each_type_to_its_own_counter_and_locks_in_sorted_order() -> None:
    router = Router(
        (
            NumberSequence(
                "P", NumberTemplate.parse("P{seq:4}"), customer_types=frozenset({"INDIVIDUAL"})
            ),
            NumberSequence(
                "B", NumberTemplate.parse("B{seq:4}"), customer_types=frozenset({"BUSINESS"})
            ),
        )
    )
    fake = FakeStore()
    result = run(router, [event("a"), event("b", kind="BUSINESS"), event("c")], fake)
    assert [r.assignment.number for r in result] == ["P0001", "B0001", "P0002"]
    assert fake.locks_taken == [["B", "P"]]


def test_a_bounded_sequence_dead_letters_what_does_not_fit() -> None:
    template = NumberTemplate.parse("S{seq:1:scrambled}", scramble_key=b"k" * 16)
    router = Router((NumberSequence("S", template),))
    fake = FakeStore()
    numbers = assign_numbers([(event(str(i)), router.sequences[0]) for i in range(12)], fake, "e")
    done = numbers.assigned
    refused = [a for a in numbers.outcomes if isinstance(a, SequenceExhaustedError)]
    assert len(done) == 9 and len(refused) == 3
    assert len({a.assignment.number for a in done}) == 9
    assert numbers.usage == {"S": 1.0}
    assert "sequence S has issued all 9 numbers" in str(refused[0])


def test_the_same_id_in_two_upstream_systems_is_two_customers() -> None:
    router = Router((NumberSequence("CU", NumberTemplate.parse("CU{seq:4}")),))
    fake = FakeStore()
    shop = event("42")
    crm = dataclasses.replace(event("42"), source_system="webshop")
    result = run(router, [shop, crm, shop], fake)
    assert [r.assignment.number for r in result] == ["CU0001", "CU0002", "CU0001"]


def test_a_counter_below_a_committed_value_refuses_to_allocate() -> None:
    """Redis that went back in time on the same server: nothing else shows it."""
    router = Router((NumberSequence("CU", NumberTemplate.parse("CU{seq:4}")),))
    fake = FakeStore()
    fake.counters_["CU"] = 40  # the log says 57 was committed
    with pytest.raises(StateBehindLogError, match="CU at 40 < 57"):
        assign_numbers([(event("a"), router.sequences[0])], fake, "e", {"CU": 57})
    assert fake.assignments == {}
    fake.counters_["CU"] = 57
    done = assign_numbers([(event("a"), router.sequences[0])], fake, "e", {"CU": 57})
    assert done.assigned[0].assignment.value == 58


def test_an_event_time_or_text_that_cannot_be_rendered_fails_alone() -> None:
    """Invariant 4: one record's bad time or type is that record's failure, not the batch's."""
    template = NumberTemplate.parse("{type}{date:%Y%m%d}{seq:3}", "Asia/Tokyo")
    router = Router((NumberSequence("T", template),))
    fake = FakeStore()
    edge = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)  # already next year in Tokyo
    outcomes = run(
        router, [event("a"), event("b", edge), event("c", kind="X\nY"), event("d")], fake
    )
    assert [type(o).__name__ for o in outcomes] == [
        "Assigned",
        "ValidationError",
        "ValidationError",
        "Assigned",
    ]
    assert [o.assignment.value for o in outcomes if isinstance(o, Assigned)] == [1, 2]


def test_a_bad_event_does_not_take_a_good_event_of_the_same_customer_with_it() -> None:
    """Which records fail must not depend on how they were grouped into batches."""
    template = NumberTemplate.parse("CU{date:%Y}{seq:4}", "Pacific/Kiritimati")
    router = Router((NumberSequence("CU", template),))
    edge = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)  # already year 10000 in Kiritimati
    bad, good = event("a", edge), event("a", datetime(2024, 5, 1, tzinfo=UTC))
    outcomes = run(router, [bad, good, bad], FakeStore())
    # The same as three batches of one: no number yet, a new one, the one it has.
    assert [type(o).__name__ for o in outcomes] == ["ValidationError", "Assigned", "Assigned"]
    assert outcomes[1].assignment.number == outcomes[2].assignment.number == "CU20240001"
    one_by_one = FakeStore()
    alone = [run(router, [e], one_by_one)[0] for e in (bad, good, bad)]
    assert [type(o).__name__ for o in alone] == [type(o).__name__ for o in outcomes]


def test_years_before_1000_are_refused_not_written_short() -> None:
    """strftime writes year 24 as '24': %Y would no longer be four digits wide."""
    template = NumberTemplate.parse("{date:%Y}{seq:6}")
    router = Router((NumberSequence("P", template),))
    outcomes = run(router, [event("a", datetime(24, 3, 1, tzinfo=UTC))], FakeStore())
    assert type(outcomes[0]).__name__ == "ValidationError"
    assert "years 1000 to 9999" in str(outcomes[0])


def test_the_lock_covers_the_sequence_the_number_comes_from() -> None:
    """The customer's first event (sequence A) cannot be rendered, its second (sequence B)
    gets the number: B's lock must be held, not only A's."""
    kiritimati = NumberTemplate.parse("A{date:%Y}{seq:4}", "Pacific/Kiritimati")
    router = Router(
        (
            NumberSequence("A", kiritimati, customer_types=frozenset({"BUSINESS"})),
            NumberSequence(
                "B", NumberTemplate.parse("B{seq:4}"), customer_types=frozenset({"INDIVIDUAL"})
            ),
        )
    )
    edge = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)  # year 10000 in Kiritimati
    fake = FakeStore()
    outcomes = run(router, [event("a", edge, kind="BUSINESS"), event("a")], fake)
    assert outcomes[1].assignment.number == "B0001"
    assert fake.locks_taken == [["A", "B"]]
