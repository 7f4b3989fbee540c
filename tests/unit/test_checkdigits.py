"""Check digits against published vectors, and the errors each scheme must catch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customer_ids.domain import checkdigits

digits = st.text(alphabet="0123456789", min_size=2, max_size=18)


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("7992739871", "3"),  # Wikipedia's Luhn example
        ("411111111111111", "1"),  # the Visa test card 4111 1111 1111 1111
        ("0", "0"),
    ],
)
def test_luhn_vectors(body: str, check: str) -> None:
    assert checkdigits.luhn(body) == check


def test_damm_vectors() -> None:
    assert checkdigits.damm("572") == "4"  # Wikipedia's Damm example
    assert checkdigits.is_valid("5724", "damm")
    assert not checkdigits.is_valid("5274", "damm")


def test_mod97_vectors() -> None:
    # ISO 7064 MOD 97-10 as IBAN uses it: GB82 WEST 1234 5698 7654 32, rearranged to digits.
    bban = "WEST12345698765432GB"
    numeric = "".join(str(int(c, 36)) for c in bban)
    assert checkdigits.mod97(numeric) == "82"
    assert checkdigits.is_valid("794" + checkdigits.mod97("794"), "mod97")


def _single_digit_errors(number: str) -> list[str]:
    return [
        number[:i] + d + number[i + 1 :]
        for i in range(len(number))
        for d in "0123456789"
        if d != number[i]
    ]


def _adjacent_transpositions(number: str) -> list[str]:
    return [
        number[:i] + number[i + 1] + number[i] + number[i + 2 :]
        for i in range(len(number) - 1)
        if number[i] != number[i + 1]
    ]


@given(digits)
def test_luhn_catches_every_single_digit_error(body: str) -> None:
    number = body + checkdigits.luhn(body)
    assert checkdigits.is_valid(number, "luhn")
    assert not any(checkdigits.is_valid(bad, "luhn") for bad in _single_digit_errors(number))


@given(digits, st.sampled_from(["damm", "mod97"]))
def test_damm_and_mod97_catch_single_errors_and_adjacent_transpositions(
    body: str, scheme: str
) -> None:
    number = body + checkdigits.SCHEMES[scheme](body)
    assert checkdigits.is_valid(number, scheme)
    wrong = _single_digit_errors(number) + _adjacent_transpositions(number)
    assert not any(checkdigits.is_valid(bad, scheme) for bad in wrong)


def test_non_digits_are_refused() -> None:
    with pytest.raises(ValueError, match="digits only"):
        checkdigits.luhn("12a")


def _textbook_luhn(body: str) -> str:
    """Luhn as ISO/IEC 7812-1 states it: double every second digit from the right."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_the_table_driven_luhn_is_the_textbook_one(body: str) -> None:
    assert checkdigits.luhn(body) == _textbook_luhn(body)
