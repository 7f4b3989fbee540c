"""The uniqueness promise checked from outside, as pure rules: what one committed assignment on
the output topic says about invariants 1 and 2, kept compactly enough for millions of customers.

The book keeps customer -> number and number -> customer as 64-bit digests (Python's own string
hash: stable within the process, and the auditor rebuilds its book from the topic on every
start, so nothing hashed ever outlives the process). A digest collision (about one chance in
10**7 at a million customers) could show a finding that is not there or, as rarely, hide one.
Each finding is reported once per run. Numbers are checked against every rendering the service
ever recorded for their sequence (the `config/` records of the watermark topic), so a format
changed later does not make earlier numbers look invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from customer_ids.domain.errors import ConfigError
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.domain.imports import LEGACY_COUNTER
from customer_ids.domain.number_spaces import Rendering
from customer_ids.domain.numbers import NumberTemplate
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

    def __init__(
        self,
        router: Router,
        history: Iterable[Rendering] = (),
        raised: Mapping[str, list[tuple[int, int]]] | None = None,
    ) -> None:
        """`raised`: per counter the ranges imports skipped it over (`customer-ids import`
        raises a counter above the values it adopts): no value there is a gap."""
        self._templates, self._unverifiable = _templates(router, history)
        self._raised = {c: sorted(r) for c, r in (raised or {}).items()}
        self._number_of: dict[int, int] = {}  # customer digest -> first number digest
        self._customer_of: dict[int, int] = {}  # number digest -> first customer digest
        self._reported: set[tuple[str, int, int]] = set()
        self._counters: dict[str, _Counter] = {}

    @property
    def customers(self) -> int:
        return len(self._number_of)

    def observe(self, out: CustomerIdAssigned, now: float, imported: bool = False) -> list[Finding]:
        """What this record breaks; empty for a new assignment or a repeat of a known one.
        `imported`: a legacy CRM's number (`customer-ids import`): a legacy one is checked
        against no template, and no imported value leaves the values below it missing."""
        if out.merged_into is not None:
            # Merged: the customer's own number is the retired one (still its own, not a
            # second number); the number it answers with is an alias of the survivor's.
            return self._ownership(out, hash(out.customer_key), hash(out.own_number))
        customer, number = hash(out.customer_key), hash(out.customer_number)
        first_number = self._number_of.get(customer)
        owner = self._customer_of.get(number)
        if first_number == number and owner == customer:
            return []  # a repeat (the output of a duplicate input event): nothing new
        findings = self._ownership(out, customer, number)
        # A legacy number (only imports keep them; the service re-issues them) has no template
        # to check, and its value is a digest, not a place in a sequence.
        legacy = out.sequence_name == LEGACY_COUNTER
        problem = None if legacy else self._invalid(out)
        if problem:
            findings += self._once("invalid_number", out, customer, number, problem)
        if legacy:
            return findings
        if imported:
            self._note_imported(out)
            return findings
        return findings + self._note_value(out, now)

    def _ownership(self, out: CustomerIdAssigned, customer: int, number: int) -> list[Finding]:
        """One customer, one number; one number, one customer: what this pair breaks."""
        first_number = self._number_of.get(customer)
        owner = self._customer_of.get(number)
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
        return findings

    def _note_imported(self, out: CustomerIdAssigned) -> None:
        counter = self._counters.setdefault(out.sequence_name, _Counter(out.sequence))
        counter.missing.pop(out.sequence, None)
        counter.highest = max(counter.highest, out.sequence)

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
        templates = self._templates.get(name, [])
        values = [t.sequence_of(out.customer_number) for t in templates]
        if out.sequence in values or name in self._unverifiable:
            return None  # (a scrambled rendering under a key we do not hold cannot be checked)
        if not templates:
            return f"sequence {name!r} is not configured here"
        found = [v for v in values if v is not None]
        if found:
            return f"renders value {found[0]}, but the event says {out.sequence}"
        shown = ", ".join(t.text for t in templates)
        return f"does not match {shown} (shape or check digit)"

    def _note_value(self, out: CustomerIdAssigned, now: float) -> list[Finding]:
        value = out.sequence
        counter = self._counters.get(out.sequence_name)
        if counter is None:
            self._counters[out.sequence_name] = _Counter(value)
            return []
        if value <= counter.highest:
            counter.missing.pop(value, None)  # a late commit from another partition
            return []
        low = counter.highest + 1
        counter.highest = value
        runs = _outside(self._raised.get(out.sequence_name, []), low, value - 1)
        if sum(high - start + 1 for start, high in runs) > GAP_TRACK_LIMIT:
            detail = f"value(s) {low}..{value - 1} skipped at once"
            return [Finding("sequence_gap", out.sequence_name, "", "", detail)]
        for start, high in runs:
            for missed in range(start, high + 1):
                counter.missing[missed] = now
        return []


def _outside(ranges: list[tuple[int, int]], low: int, high: int) -> list[tuple[int, int]]:
    """The parts of [low, high] outside the sorted, inclusive `ranges`."""
    out = []
    for start, end in ranges:
        if end < low or start > high:
            continue
        if start > low:
            out.append((low, start - 1))
        low = max(low, end + 1)
    if low <= high:
        out.append((low, high))
    return out


def _templates(
    router: Router, history: Iterable[Rendering]
) -> tuple[dict[str, list[NumberTemplate]], set[str]]:
    """Per sequence, its current template and every earlier one; and the sequences with an
    earlier scrambled rendering whose key is not the current one (those cannot be checked)."""
    templates = {s.name: [s.template] for s in router.sequences}
    current = {s.name: (Rendering.of(s), s.template) for s in router.sequences}
    unverifiable: set[str] = set()
    for rendering in history:
        now = current.get(rendering.sequence)
        key = None
        if rendering.scramble:
            if now is None or now[0].scramble != rendering.scramble:
                unverifiable.add(rendering.sequence)
                continue
            key = now[1].scramble_key
        try:
            old = NumberTemplate.parse(rendering.template, rendering.zone or "UTC", key)
        except ConfigError:
            unverifiable.add(rendering.sequence)
            continue
        known = templates.setdefault(rendering.sequence, [])
        if all(t.text != old.text or t.zone != old.zone for t in known):
            known.append(old)
    return templates, unverifiable


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted values as (first, last) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs
