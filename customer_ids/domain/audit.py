"""The uniqueness promise checked from outside, as pure rules: what one committed assignment on
the output topic says about invariants 1 and 2, kept compactly enough for millions of customers.

The book keeps customer -> number and number -> customer as 64-bit digests (Python's own string
hash: stable within the process, and the auditor rebuilds its book from the topic on every
start, so nothing hashed ever outlives the process). A digest collision could only make a
finding appear that is not there (about one chance in 10**7 at a million customers), never hide
one. Each finding is reported once per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.domain.sequences import Router

FindingKind = Literal["number_shared", "two_numbers", "invalid_number", "sequence_gap"]
ERRORS: frozenset[FindingKind] = frozenset({"number_shared", "two_numbers", "invalid_number"})
# A jump larger than this is one gap finding at once, not tens of thousands of missing values.
GAP_TRACK_LIMIT = 10_000


@dataclass(frozen=True)
class Finding:
    """One broken (or, for gaps, doubtful) promise, with ids only: never personal data."""

    kind: FindingKind
    counter: str
    number: str
    customer_key: str
    detail: str

    @property
    def is_error(self) -> bool:
        return self.kind in ERRORS


@dataclass
class _Counter:
    """The highest value seen of one counter, and the values below it not seen yet."""

    highest: int
    missing: dict[int, float] = field(default_factory=dict)  # value -> when first missed


class AuditBook:
    """Feed it every committed CustomerIdAssigned, in any partition order."""

    def __init__(self, router: Router) -> None:
        self._templates = {s.name: s.template for s in router.sequences}
        self._number_of: dict[int, int] = {}  # customer digest -> first number digest
        self._customer_of: dict[int, int] = {}  # number digest -> first customer digest
        self._reported: set[tuple[str, int, int]] = set()
        self._counters: dict[str, _Counter] = {}

    @property
    def customers(self) -> int:
        return len(self._number_of)

    def observe(self, out: CustomerIdAssigned, now: float) -> list[Finding]:
        """What this record breaks; empty for a new assignment or a repeat of a known one."""
        customer, number = hash(out.customer_key), hash(out.customer_number)
        first_number = self._number_of.get(customer)
        owner = self._customer_of.get(number)
        if first_number == number and owner == customer:
            return []  # a repeat (the output of a duplicate input event): nothing new
        if first_number is None:  # the same int objects serve both maps
            self._number_of[customer] = number
        if owner is None:
            self._customer_of[number] = customer
        findings = []
        if first_number is not None and first_number != number:
            findings += self._once(
                "two_numbers", out, customer, number, "this customer already has another number"
            )
        if owner is not None and owner != customer:
            findings += self._once(
                "number_shared", out, customer, number, "this number belongs to another customer"
            )
        problem = self._invalid(out)
        if problem:
            findings += self._once("invalid_number", out, customer, number, problem)
        return findings + self._note_value(out, now)

    def overdue_gaps(self, cutoff: float) -> list[Finding]:
        """Values still missing that were first missed at or before `cutoff` (call it only
        once the whole topic has been read, with cutoff = now - grace)."""
        findings = []
        for name, counter in self._counters.items():
            overdue = sorted(v for v, since in counter.missing.items() if since <= cutoff)
            for value in overdue:
                del counter.missing[value]
            for low, high in _runs(overdue):
                shown = str(low) if low == high else f"{low}..{high}"
                findings.append(
                    Finding("sequence_gap", name, "", "", f"value(s) {shown} never committed")
                )
        return findings

    def _once(
        self, kind: FindingKind, out: CustomerIdAssigned, customer: int, number: int, detail: str
    ) -> list[Finding]:
        if (kind, customer, number) in self._reported:
            return []
        self._reported.add((kind, customer, number))
        return [Finding(kind, out.sequence_name, out.customer_number, out.customer_key, detail)]

    def _invalid(self, out: CustomerIdAssigned) -> str | None:
        name = out.sequence_name.split(":", 1)[0]  # a periodic counter is "<sequence>:<period>"
        template = self._templates.get(name)
        if template is None:
            return f"sequence {name!r} is not configured here"
        value = template.sequence_of(out.customer_number)
        if value is None:
            return f"does not match {template.text} (shape or check digit)"
        if value != out.sequence:
            return f"renders value {value}, but the event says {out.sequence}"
        return None

    def _note_value(self, out: CustomerIdAssigned, now: float) -> list[Finding]:
        value = out.sequence
        counter = self._counters.get(out.sequence_name)
        if counter is None:
            self._counters[out.sequence_name] = _Counter(value)
            return []
        if value <= counter.highest:
            counter.missing.pop(value, None)  # a late commit from another partition
            return []
        skipped = value - counter.highest - 1
        low = counter.highest + 1
        counter.highest = value
        if skipped > GAP_TRACK_LIMIT:
            detail = f"value(s) {low}..{value - 1} skipped at once"
            return [Finding("sequence_gap", out.sequence_name, "", "", detail)]
        for missed in range(low, value):
            counter.missing[missed] = now
        return []


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted values as (first, last) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs
