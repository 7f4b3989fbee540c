"""A number read out on the phone, checked: ours, or a typo the check digit explains.

`validation.validate_number` answers yes or no; support needs the why. When a number has the
shape of a configured template but its check digit is wrong, the digit it should have had is
found by trying each one (10, or 100 for MOD 97-10) against the template itself, so the answer
follows whatever scheme and layout the template uses.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from customer_ids.domain import checkdigits
from customer_ids.domain.errors import CustomerIdsError
from customer_ids.domain.number_spaces import LEGACY_COUNTER, shape_of
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.domain.sequences import Router


@dataclass(frozen=True)
class NumberReport:
    """What support can tell the caller about a number. `number` is as checked (trimmed, and
    upper-cased when only that form matches); `expected_check` is set for a likely typo."""

    number: str
    valid: bool
    well_formed: bool
    sequence_name: str | None
    sequence_value: int | None
    check_ok: bool | None  # None: not well formed, or the template has no check digit
    expected_check: str | None
    explanation: str


def _check_scheme(template: NumberTemplate) -> str | None:
    return next((t.arg for t in template.tokens if t.kind == "check"), None)


def _expected_check(number: str, template: NumberTemplate) -> tuple[str, str] | None:
    """(the check digit(s) that would make `number` valid for `template`, those it has), if
    any would. The check stands after every other token but literal text (numbers.py)."""
    scheme = _check_scheme(template)
    if scheme is None:
        return None
    at = max(i for i, t in enumerate(template.tokens) if t.kind == "check")
    suffix = "".join(t.arg for t in template.tokens[at + 1 :])
    width = checkdigits.WIDTHS[scheme]
    end = len(number) - len(suffix)
    if not number.endswith(suffix) or end - width < 1:
        return None
    head = number[: end - width]
    for candidate in range(10**width):
        digits = f"{candidate:0{width}d}"
        if template.matches(head + digits + suffix):
            return digits, number[end - width : end]
    return None


def _valid(number: str, router: Router) -> NumberReport | None:
    for sequence in router.sequences:
        value = sequence.template.sequence_of(number)
        if value is not None:
            has_check = _check_scheme(sequence.template) is not None
            return NumberReport(
                number,
                valid=True,
                well_formed=True,
                sequence_name=sequence.name,
                sequence_value=value,
                check_ok=True if has_check else None,
                expected_check=None,
                explanation=f"valid: a number of sequence {sequence.name}",
            )
    return None


def _typo(number: str, router: Router) -> NumberReport | None:
    for sequence in router.sequences:
        found = _expected_check(number, sequence.template)
        if found is None:
            continue
        expected, given = found
        return NumberReport(
            number,
            valid=False,
            well_formed=True,
            sequence_name=sequence.name,
            sequence_value=None,
            check_ok=False,
            expected_check=expected,
            explanation=(
                f"the check digit should be {expected}, not {given}: probably a typo. "
                "Read the number back digit by digit; a swapped or mistyped digit anywhere "
                "changes the check digit"
            ),
        )
    return None


def example_number(router: Router) -> str:
    """A number of the first sequence (value 12345, today), for hints in this deployment's
    format; the template itself when it cannot be rendered without an event."""
    ctx = RenderContext(12345, datetime.now(UTC), "INDIVIDUAL", "DE")
    template = router.sequences[0].template
    try:
        return template.render(ctx)
    except CustomerIdsError:
        return template.text


def check_number(raw: str, router: Router, legacy_shapes: Collection[str] = ()) -> NumberReport:
    """Valid, a likely typo (with the check digit it should have), a legacy number of a shape
    an import kept (`legacy_shapes`, customer_ids/domain/imports.py), or not one of ours."""
    text = raw.strip()
    for candidate in dict.fromkeys((text, text.upper())):
        report = _valid(candidate, router) or _typo(candidate, router)
        if report is not None:
            return report
    legacy = next((c for c in (text, text.upper()) if shape_of(c) in legacy_shapes), None)
    if legacy is not None:
        return NumberReport(
            legacy,
            valid=True,
            well_formed=True,
            sequence_name=LEGACY_COUNTER,
            sequence_value=None,
            check_ok=None,
            expected_check=None,
            explanation="a legacy number, kept as it was by an import",
        )
    templates = ", ".join(s.template.text for s in router.sequences)
    return NumberReport(
        text,
        valid=False,
        well_formed=False,
        sequence_name=None,
        sequence_value=None,
        check_ok=None,
        expected_check=None,
        explanation=f"not a customer number: numbers look like {templates}",
    )
