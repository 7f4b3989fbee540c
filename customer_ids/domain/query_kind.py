"""What a support person typed into the one search box: a number, a customer, an email or a
phone. A valid customer number wins (its check digit makes a clash with a phone number
unlikely); then the characters decide."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal

from customer_ids.domain.number_check import check_number
from customer_ids.domain.sequences import Router

QueryKind = Literal["number", "customer", "email", "phone", "unknown"]
_PHONE = re.compile(r"^\+?[0-9 ().\-/]+$")
_MIN_PHONE_DIGITS = 5


def query_kind(text: str, router: Router, legacy_shapes: Collection[str] = ()) -> QueryKind:
    """How to search for `text`: see the module's docstring for the order (a legacy number an
    import kept counts as valid, though it may hold a '/')."""
    text = text.strip()
    report = check_number(text, router, legacy_shapes)
    digits = sum(c.isdigit() for c in text)
    phone_like = bool(_PHONE.fullmatch(text)) and digits >= _MIN_PHONE_DIGITS
    kind: QueryKind = "unknown"
    if report.valid:
        kind = "number"
    elif "@" in text:
        kind = "email"
    elif phone_like and not report.well_formed:
        kind = "phone"
    elif "/" in text:
        kind = "customer"
    elif report.well_formed:
        kind = "number"  # a typo the check digit explains
    return kind
