"""Sequences and routing: which counter and template a customer's number comes from.

Pure rules, no Redis: a reader finds here how an event picks its sequence and how a
daily/monthly/yearly sequence names the counter of its period (the period is part of the
counter key, so a rollover is atomic: the first INCRBY of a new day starts a new counter).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from customer_ids.domain.errors import ConfigError, ValidationError
from customer_ids.domain.events import CustomerCreated
from customer_ids.domain.numbers import MAX_COUNTER, BoundNumber, NumberTemplate, local_strftime

Period = Literal["none", "daily", "monthly", "yearly"]
PERIODS: tuple[str, ...] = ("none", "daily", "monthly", "yearly")
_PERIOD_FORMAT = {"daily": "%Y%m%d", "monthly": "%Y%m", "yearly": "%Y"}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class Sequence:
    """One counter family with its number template and the events it takes."""

    name: str
    template: NumberTemplate
    start: int = 1
    period: Period = "none"
    customer_types: frozenset[str] = field(default_factory=frozenset)  # empty = any
    regions: frozenset[str] = field(default_factory=frozenset)  # empty = any

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"sequence name {self.name!r}: use 1-32 letters, digits, '_' or '-'")
        if self.period not in PERIODS:
            raise ConfigError(
                f"sequence {self.name}: period {self.period!r} is not one of {', '.join(PERIODS)}"
            )
        if self.start < 1:
            raise ConfigError(f"sequence {self.name}: start must be 1 or more, got {self.start}")
        if self.start > self.capacity:
            if self.capacity < MAX_COUNTER:
                why = f"{{seq:{self.template.seq_token.width}:scrambled}} has that many values"
            else:
                why = "counters stay exact only up to 2**53 - 1"
            raise ConfigError(
                f"sequence {self.name}: start {self.start} is past the last value it can "
                f"issue, {self.capacity} ({why}); use a start from 1 to {self.capacity}"
            )

    @property
    def capacity(self) -> int:
        """The most values this sequence's counters may reach: its template's range, and
        never more than MAX_COUNTER (Lua's doubles), so no counter can round onto another."""
        return min(self.template.capacity or MAX_COUNTER, MAX_COUNTER)

    def accepts(self, event: CustomerCreated) -> bool:
        return (not self.customer_types or event.customer_type in self.customer_types) and (
            not self.regions or event.country_code.upper() in self.regions
        )

    def counter_name(self, moment: datetime) -> str:
        """The counter this event's number comes from: the name, plus the period if any.
        Raises ValidationError for a time the period cannot be named for (year 1 or 9999)."""
        if self.period == "none":
            return self.name
        period = local_strftime(moment, self.template.zone, _PERIOD_FORMAT[self.period])
        return f"{self.name}:{period}"

    def render(self, value: int, event: CustomerCreated) -> str:
        return self.bind(event).render(value)

    def bind(self, event: CustomerCreated) -> BoundNumber:
        """The template with this event's time, type and region in place; ValidationError
        when they cannot go into a number (that event's failure alone)."""
        return self.template.bind(
            event.occurred_at, event.customer_type, event.country_code.upper()
        )


@dataclass(frozen=True)
class Router:
    """First matching sequence wins; rules may not overlap, so the order never matters."""

    sequences: tuple[Sequence, ...]

    def __post_init__(self) -> None:
        if not self.sequences:
            raise ConfigError("at least one sequence must be configured")
        names = [s.name for s in self.sequences]
        if len(set(names)) != len(names):
            raise ConfigError(f"sequence names must be unique, got {names}")
        for i, a in enumerate(self.sequences):
            for b in self.sequences[i + 1 :]:
                if _overlap(a.customer_types, b.customer_types) and _overlap(a.regions, b.regions):
                    raise ConfigError(
                        f"sequences {a.name} and {b.name} both accept some events; give them "
                        "disjoint customer_types or regions"
                    )

    def route(self, event: CustomerCreated) -> Sequence:
        for sequence in self.sequences:
            if sequence.accepts(event):
                return sequence
        raise ValidationError(
            f"no sequence accepts customer_type={event.customer_type!r} "
            f"region={event.country_code!r}"
        )

    def names(self) -> Iterable[str]:
        return (s.name for s in self.sequences)


def _overlap(a: frozenset[str], b: frozenset[str]) -> bool:
    return not a or not b or bool(a & b)
