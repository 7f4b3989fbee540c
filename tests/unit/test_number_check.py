"""The check-a-number answer: valid, a typo with the digit it should have, or not ours; and
what the one search box makes of what support types."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customer_ids.domain.number_check import check_number, example_number
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.domain.query_kind import query_kind
from customer_ids.domain.sequences import Router, Sequence

TEMPLATES = ["CU-{seq:8}-{check:luhn}", "B{seq:7}{check:damm}", "P{seq:6}{check:mod97}X"]


def router_of(text: str) -> Router:
    return Router((Sequence("S", NumberTemplate.parse(text), 1, "none"),))


def render(text: str, value: int) -> str:
    ctx = RenderContext(value, datetime(2026, 1, 1, tzinfo=UTC), "INDIVIDUAL", "DE")
    return NumberTemplate.parse(text).render(ctx)


def swap_check(number: str, template: str) -> tuple[str, str]:
    """`number` with a wrong check digit, and the right one."""
    width = 2 if "mod97" in template else 1
    tail = 1 if template.endswith("X") else 0
    end = len(number) - tail
    right = number[end - width : end]
    wrong = f"{(int(right) + 1) % 10**width:0{width}d}"
    return number[: end - width] + wrong + number[end:], right


@pytest.mark.parametrize("template", TEMPLATES)
@given(value=st.integers(min_value=1, max_value=999_999))
def test_a_wrong_check_digit_is_explained(template: str, value: int) -> None:
    router = router_of(template)
    number = render(template, value)
    good = check_number(number, router)
    assert good.valid
    assert good.check_ok
    assert good.sequence_value == value
    typo, right = swap_check(number, template)
    report = check_number(typo, router)
    assert not report.valid
    assert report.well_formed
    assert report.check_ok is False
    assert report.expected_check == right
    assert f"the check digit should be {right}" in report.explanation
    assert "probably a typo" in report.explanation


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_example_number_is_valid(template: str) -> None:
    router = router_of(template)
    assert check_number(example_number(router), router).valid


def test_lower_case_and_spaces_are_forgiven() -> None:
    report = check_number("  cu-00000001-8 ", router_of(TEMPLATES[0]))
    assert report.valid
    assert report.number == "CU-00000001-8"


@pytest.mark.parametrize("text", ["hello", "CU-0000001-8", "CU-00000001", "", "8"])
def test_not_a_number_says_what_numbers_look_like(text: str) -> None:
    report = check_number(text, router_of(TEMPLATES[0]))
    assert not report.valid
    assert not report.well_formed
    assert report.expected_check is None
    assert "CU-{seq:8}-{check:luhn}" in report.explanation


def test_a_template_without_check_digit() -> None:
    report = check_number("N-0042", router_of("N-{seq:4}"))
    assert report.valid
    assert report.check_ok is None


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("CU-00000001-8", "number"),
        ("cu-00000001-9", "number"),
        ("jane@example.com", "email"),
        ("webshop/42", "customer"),
        ("crm/C-1/a", "customer"),
        ("+49 30 1234567", "phone"),
        ("(202) 555-0143", "phone"),
        ("030/1234567", "phone"),
        ("hello", "unknown"),
        ("", "unknown"),
    ],
)
def test_the_search_box_tells_what_was_typed(text: str, kind: str) -> None:
    assert query_kind(text, router_of(TEMPLATES[0])) == kind


def test_a_legacy_number_an_import_kept_is_a_valid_number_in_any_case() -> None:
    router = router_of(TEMPLATES[0])
    shapes = {"LEG/999999"}
    report = check_number(" leg/900123 ", router, shapes)
    assert report.valid and report.number == "LEG/900123"
    assert report.sequence_name == "~legacy"
    assert not check_number("LEG/900123", router).valid  # no import kept that shape
    assert not check_number("LEG/9001234", router, shapes).valid  # another shape
    # The search box reads it as a number, though it holds a '/' like SRC/ID.
    assert query_kind("LEG/900123", router, shapes) == "number"
    assert query_kind("LEG/900123", router) == "customer"
