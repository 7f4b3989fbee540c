"""Check digit schemes people use on numbers they type: Luhn, Damm, ISO 7064 MOD 97-10.

A check digit lets support staff and forms reject a mistyped number before any lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

CheckScheme = Literal["luhn", "damm", "mod97"]

_DAMM_TABLE = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def _require_digits(digits: str) -> None:
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"check digits are computed over digits only, got {digits!r}")


def luhn(digits: str) -> str:
    """The Luhn (mod 10) digit to append to `digits`."""
    _require_digits(digits)
    return _luhn(digits)


# Luhn doubles every second digit from the right (the odd positions once the check digit is
# appended) and adds the digits of the product: 0->0, 1->2, ..., 5->1 (10), ..., 9->9 (18).
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")


def _luhn(digits: str) -> str:
    # Table-driven and in C: the sum of a string of digits is the sum of its bytes less 48 each.
    backwards = digits[::-1]
    doubled = backwards[0::2].translate(_LUHN_DOUBLED).encode()
    total = sum(doubled) + sum(backwards[1::2].encode()) - 48 * len(digits)
    return str(-total % 10)


def damm(digits: str) -> str:
    """The Damm digit: catches every single-digit error and every adjacent transposition."""
    _require_digits(digits)
    return _damm(digits)


def _damm(digits: str) -> str:
    interim = 0
    for ch in digits:
        interim = _DAMM_TABLE[interim][int(ch)]
    return str(interim)


def mod97(digits: str) -> str:
    """ISO 7064 MOD 97-10: two check digits, as IBAN uses."""
    _require_digits(digits)
    return _mod97(digits)


def _mod97(digits: str) -> str:
    return f"{98 - int(digits + '00') % 97:02d}"


SCHEMES: dict[str, Callable[[str], str]] = {"luhn": luhn, "damm": damm, "mod97": mod97}
# The same, for callers that already know they pass digits only (a rendered number's).
UNCHECKED: dict[str, Callable[[str], str]] = {"luhn": _luhn, "damm": _damm, "mod97": _mod97}
WIDTHS: dict[str, int] = {"luhn": 1, "damm": 1, "mod97": 2}


def is_valid(digits_with_check: str, scheme: str) -> bool:
    """True when the trailing check digit(s) match the digits before them."""
    width = WIDTHS[scheme]
    body, check = digits_with_check[:-width], digits_with_check[-width:]
    try:
        return SCHEMES[scheme](body) == check
    except ValueError:
        return False
