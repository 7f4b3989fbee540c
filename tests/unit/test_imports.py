"""An import file read and checked on its own (customer_ids/domain/imports.py): each line placed
as a sequence value or a legacy number, every conflict within the file named by its line, and
legacy shapes kept apart from every template."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from customer_ids.domain.events import now_utc
from customer_ids.domain.imports import (
    LEGACY_COUNTER,
    FileCheck,
    ImportRow,
    Placed,
    Refusal,
    legacy_value,
    place,
    read_rows,
)
from customer_ids.domain.number_spaces import legacy_problems, may_produce, shape_of
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.domain.sequences import Router, Sequence

TEMPLATE = NumberTemplate.parse("CU-{seq:8}-{check:luhn}")
ROUTER = Router((Sequence("CU", TEMPLATE),))


def render(value: int, template: NumberTemplate = TEMPLATE) -> str:
    return template.render(RenderContext(value, now_utc(), "INDIVIDUAL", "DE"))


def rows(text: str, name: str = "pairs.csv") -> list[ImportRow | Refusal]:
    return list(read_rows(io.StringIO(text), name))


def test_csv_and_json_lines_give_the_same_rows() -> None:
    csv_rows = rows("source_system,customer_id,customer_number\ncrm,42,LEG/1\n\ncrm,43,LEG/2\n")
    json_rows = rows(
        '{"source_system": "crm", "customer_id": "42", "customer_number": "LEG/1"}\n'
        '{"source_system": "crm", "customer_id": "43", "customer_number": "LEG/2"}\n',
        "pairs.jsonl",
    )
    assert [(r.customer_key, r.number) for r in csv_rows if isinstance(r, ImportRow)] == [
        ("crm/42", "LEG/1"),
        ("crm/43", "LEG/2"),
    ]
    assert [(r.customer_key, r.number) for r in json_rows if isinstance(r, ImportRow)] == [
        ("crm/42", "LEG/1"),
        ("crm/43", "LEG/2"),
    ]
    assert [r.line for r in csv_rows] == [2, 4]  # file lines, blank ones skipped


def test_malformed_lines_are_named_with_their_reason() -> None:
    found = rows(
        "source_system,customer_id,customer_number\n"
        "crm,42\n"  # 2: two fields
        "cr/m,43,LEG/1\n"  # 3: a '/' in the source system
        "crm,,LEG/2\n"  # 4: no customer id
        'crm,44,"LEG\n3"\n'  # 5: a number with a newline
    )
    assert all(isinstance(r, Refusal) for r in found)
    reasons = {r.line: r.reason for r in found if isinstance(r, Refusal)}
    assert reasons[2] == "2 fields, not 3"
    assert "must not contain '/'" in reasons[3]
    assert "customer_id is empty" in reasons[4]
    assert "not printable" in reasons[5]
    [bad_header] = rows("customer_id,source_system,customer_number\ncrm,1,LEG/1\n")
    assert isinstance(bad_header, Refusal) and "must be the header" in bad_header.reason
    [not_json] = rows('{"source_system": "crm"}\n', "pairs.jsonl")
    assert isinstance(not_json, Refusal) and not_json.line == 1


@given(st.integers(min_value=1, max_value=99_999_999))
def test_a_template_number_is_placed_at_the_value_it_renders(value: int) -> None:
    row = ImportRow(2, "crm", "42", render(value))
    assert place(row, ROUTER) == Placed("CU", value)


def test_a_wrong_check_digit_is_refused_and_a_foreign_shape_is_legacy() -> None:
    good = render(1234)
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    refused = place(ImportRow(3, "crm", "42", wrong), ROUTER)
    assert isinstance(refused, Refusal)
    assert "has the shape of sequence CU's numbers" in refused.reason
    legacy = place(ImportRow(4, "crm", "43", "LEG/900123"), ROUTER)
    assert legacy == Placed(LEGACY_COUNTER, 0, "LEG/999999")


def test_a_number_of_a_periodic_sequence_is_refused() -> None:
    dated = NumberTemplate.parse("D{date:%Y}-{seq:6}")
    router = Router((Sequence("D", dated, period="yearly"),))
    refused = place(ImportRow(2, "crm", "1", render(17, dated)), router)
    assert isinstance(refused, Refusal) and "restarts each yearly period" in refused.reason


def test_the_file_against_itself_names_the_first_line_of_each_conflict() -> None:
    check = FileCheck.of(
        [
            ImportRow(2, "crm", "1", "LEG/1"),
            ImportRow(3, "crm", "1", "LEG/1"),  # the same pair again: a repeat
            ImportRow(4, "crm", "2", "LEG/1"),  # one number, two customers
            ImportRow(5, "crm", "1", "LEG/2"),  # one customer, two numbers
        ]
    )
    assert check.repeats == 1
    assert [str(r) for r in check.refusals] == [
        "line 4: crm/2 LEG/1: one number for two customers: line 2 gives it to crm/1",
        "line 5: crm/1 LEG/2: two numbers for one customer: line 2 gives it LEG/1",
    ]


def test_a_template_that_could_produce_a_legacy_shape_is_refused() -> None:
    shape = shape_of("LEG/900123")
    assert not may_produce(TEMPLATE, shape)
    assert may_produce(NumberTemplate.parse("LEG/{seq:6}"), shape)
    assert not may_produce(NumberTemplate.parse("LEG/{seq:7}"), shape)  # one digit more
    assert may_produce(NumberTemplate.parse("{region}{seq:3}"), shape)  # cannot tell: refuse
    [problem] = legacy_problems([Sequence("L", NumberTemplate.parse("LEG/{seq:6}"))], [shape])
    assert "could produce imported legacy numbers of the shape 'LEG/999999'" in problem
    assert legacy_problems(ROUTER.sequences, [shape]) == []


def test_another_case_or_spaces_of_one_of_our_numbers_is_refused() -> None:
    """Support finds `cu-...` as `CU-...`: kept as a legacy number it would be two customers'
    number to every lookup; an id with spaces around it is another customer upstream."""
    lower = place(ImportRow(2, "crm", "1", render(500_001).lower()), ROUTER)
    assert isinstance(lower, Refusal) and f"reads as {render(500_001)}" in lower.reason
    [spaced] = rows(f"source_system,customer_id,customer_number\ncrm, 42,{render(7)}\n")
    assert isinstance(spaced, Refusal) and "customer_id has spaces around it" in spaced.reason


def test_line_numbers_stay_right_after_a_quoted_newline() -> None:
    found = rows('source_system,customer_id,customer_number\ncrm,1,"LEG\n1"\ncrm,2,LEG/2\ncrm,3\n')
    assert [r.line for r in found] == [2, 4, 5]


def test_a_legacy_number_s_value_is_its_digest_within_exact_doubles() -> None:
    assert legacy_value("LEG/900123") == legacy_value("LEG/900123")
    assert legacy_value("LEG/900123") != legacy_value("LEG/900124")
    assert all(0 <= legacy_value(f"X{i}") < 2**52 for i in range(1000))


def test_a_hash_collision_in_the_file_check_is_never_a_conflict() -> None:
    check = FileCheck([])
    assert check.add(ImportRow(2, "crm", "1", "LEG/1"))
    check._customers[hash("crm/2")] = 0  # as if crm/2 hashed like crm/1
    check._numbers[hash("LEG/2")] = 0
    assert check.add(ImportRow(3, "crm", "2", "LEG/2"))
    assert check.refusals == []
    found = check.customer("crm/2")
    assert found is not None and found.line == 3
    holder = check.holder("LEG/2")
    assert holder is not None and holder.customer_key == "crm/2"
    assert not check.add(ImportRow(4, "crm", "2", "LEG/3"))  # a real conflict still is one
