"""Is this a customer number we could have issued? (format and check digit, no lookup)"""

from __future__ import annotations

from dataclasses import dataclass

from customer_ids.domain.sequences import Router


@dataclass(frozen=True)
class NumberCheck:
    valid: bool
    detail: str


def validate_number(number: str, router: Router) -> NumberCheck:
    """Valid when some configured sequence's template matches it, check digit included."""
    for sequence in router.sequences:
        value = sequence.template.sequence_of(number)
        if value is not None:
            return NumberCheck(
                True, f"sequence {sequence.name} value {value} ({sequence.template.text})"
            )
    templates = ", ".join(s.template.text for s in router.sequences)
    return NumberCheck(False, f"matches no configured template ({templates}) or bad check digit")
