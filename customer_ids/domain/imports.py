"""A legacy CRM's numbers as assignments, with no I/O: each line of an import file read, its
number placed (a value of a configured sequence, or a legacy number kept as it is), and the
file checked against itself. What is already committed is checked by the import tool.

A legacy number (no template produces it) gets a value of its own counter, LEGACY_COUNTER,
so it is claimed, rebuilt and audited like any other number; its shape is recorded so that no
template that could produce it is ever accepted (number_spaces.history_problems)."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TextIO

from customer_ids.domain.errors import ValidationError
from customer_ids.domain.events import check_id
from customer_ids.domain.number_check import check_number
from customer_ids.domain.number_spaces import LEGACY_COUNTER, may_produce, shape_of
from customer_ids.domain.numbers import is_number_text
from customer_ids.domain.sequences import Router

__all__ = ["LEGACY_COUNTER"]
# Pairs per transaction: each chunk pauses the service's batches once (tools/importing.py).
CHUNK_ROWS = 10_000
FIELDS = ("source_system", "customer_id", "customer_number")


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One pair of the file; once placed, its counter and value (0 for a legacy number until
    it is written: its digest). Kept per row to write, so kept small."""

    line: int
    source_system: str  # interned: a file has few
    customer_id: str
    number: str
    counter: str = ""  # interned
    value: int = 0

    @property
    def customer_key(self) -> str:
        return f"{self.source_system}/{self.customer_id}"

    @property
    def legacy(self) -> bool:
        return self.counter == LEGACY_COUNTER

    def at(self, placed: Placed) -> ImportRow:
        return replace(self, counter=sys.intern(placed.counter), value=placed.value)


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a number lives: `counter` and `value` for a template's number; for a legacy one
    LEGACY_COUNTER, value 0 until the import gives it one, and its shape."""

    counter: str
    value: int
    shape: str = ""

    @property
    def legacy(self) -> bool:
        return self.counter == LEGACY_COUNTER


@dataclass(frozen=True, slots=True)
class Refusal:
    line: int
    pair: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.pair}: {self.reason}"


def read_rows(stream: TextIO, name: str) -> Iterator[ImportRow | Refusal]:
    """Each line of a CSV (header source_system,customer_id,customer_number) or JSON lines
    file (chosen by `name` ending in .jsonl/.ndjson/.json, or by a first line opening '{')."""
    first = stream.readline()
    if name.endswith((".jsonl", ".ndjson", ".json")) or first.lstrip().startswith("{"):
        yield from _json_lines(first, stream)
    else:
        yield from _csv_rows(first, stream)


def _csv_rows(first: str, stream: TextIO) -> Iterator[ImportRow | Refusal]:
    header = [h.strip() for h in next(csv.reader([first]), [])]
    if tuple(header) != FIELDS:
        yield Refusal(
            1, first.strip()[:80], f"the first line must be the header {','.join(FIELDS)}"
        )
        return
    reader = csv.reader(stream)
    read = 1  # the header
    for values in reader:
        line, read = read + 1, reader.line_num + 1  # where the record starts (it may span lines)
        if not values:
            continue
        if len(values) != 3:
            yield Refusal(line, ",".join(values)[:80], f"{len(values)} fields, not 3")
            continue
        yield _row(line, *values)


def _json_lines(first: str, stream: TextIO) -> Iterator[ImportRow | Refusal]:
    for line, text in enumerate(_chain(first, stream), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
            values = [record[f] for f in FIELDS]
        except (ValueError, TypeError, KeyError):
            yield Refusal(line, text.strip()[:80], f"not a JSON object with {', '.join(FIELDS)}")
            continue
        if not all(isinstance(v, str) for v in values):
            yield Refusal(line, text.strip()[:80], "every field must be a string")
            continue
        yield _row(line, *values)


def _chain(first: str, rest: TextIO) -> Iterator[str]:
    yield first
    yield from rest


def _row(line: int, source: str, customer: str, number: str) -> ImportRow | Refusal:
    pair = f"{source}/{customer} {number}"
    try:
        check_id("source_system", source)
        check_id("customer_id", customer)
        if "/" in source:
            raise ValidationError("source_system must not contain '/'")
        if not number.strip() or not is_number_text(number) or len(number) > 200:
            raise ValidationError("customer_number is empty, too long or not printable")
        for name, value in (
            ("source_system", source),
            ("customer_id", customer),
            ("customer_number", number),
        ):
            if value != value.strip():
                raise ValidationError(f"{name} has spaces around it; remove them")
    except ValidationError as exc:
        return Refusal(line, pair[:120], str(exc))
    return ImportRow(line, sys.intern(source), customer, number)


def legacy_value(number: str) -> int:
    """A legacy number's value of LEGACY_COUNTER: a 52-bit digest of the number, so one
    number is one value wherever it is claimed (consumer/claims.py) and the same number for
    two customers is caught like any other shared value. (Below 2**53: Lua's exact range.)"""
    return int.from_bytes(hashlib.sha256(number.encode()).digest()[:7], "big") >> 4


def place(row: ImportRow, router: Router) -> Placed | Refusal:
    """The counter and value of a number a configured template produces; a legacy number's
    shape; or why it is neither (the shape of a template's numbers with a wrong check digit
    or width, or a sequence whose counter restarts each period)."""
    pair = f"{row.customer_key} {row.number}"
    for sequence in router.sequences:
        value = sequence.template.sequence_of(row.number)
        if value is None:
            continue
        if sequence.period != "none":
            return Refusal(
                row.line,
                pair,
                f"a number of sequence {sequence.name}, whose counter restarts each "
                f"{sequence.period} period: import only into sequences with period none",
            )
        if not sequence.start <= value <= sequence.capacity:
            return Refusal(
                row.line,
                pair,
                f"value {value} is outside sequence {sequence.name}'s {sequence.start}.."
                f"{sequence.capacity}",
            )
        return Placed(sequence.name, value)
    report = check_number(row.number, router)
    if (report.valid or report.well_formed) and report.number != row.number:
        # Another case of one of our numbers: support would find it as that one.
        return Refusal(
            row.line,
            pair,
            f"reads as {report.number} ({report.explanation}); write it exactly as issued",
        )
    shape = shape_of(row.number)
    for sequence in router.sequences:
        if may_produce(sequence.template, shape):
            return Refusal(
                row.line,
                pair,
                f"has the shape of sequence {sequence.name}'s numbers "
                f"({sequence.template.text!r}) but is not one of them ({report.explanation}); "
                "fix the line, or give the template a prefix legacy numbers never have",
            )
    return Placed(LEGACY_COUNTER, 0, shape)


@dataclass
class FileCheck:
    """The file against itself: one number per customer, one customer per number. Keeps the
    accepted rows, and per row two entries keyed by 64-bit hashes of the customer key and the
    number (each hit compared with the row it names: a collision is never a conflict)."""

    refusals: list[Refusal]
    rows: list[ImportRow] = field(default_factory=list)
    repeats: int = 0  # lines that repeat an earlier line's pair
    _customers: dict[int, int] = field(default_factory=dict)  # hash(key) -> index in rows
    _numbers: dict[int, int] = field(default_factory=dict)  # hash(number) -> index in rows
    _collided: dict[str, int] = field(default_factory=dict)  # "c:key" / "n:number" -> index

    @classmethod
    def of(cls, rows: Iterable[ImportRow]) -> FileCheck:
        check = cls([])
        for row in rows:
            check.add(row)
        return check

    def customer(self, key: str) -> ImportRow | None:
        """The accepted row of this customer."""
        return self._find(self._customers, "c:", key, lambda r: r.customer_key)

    def holder(self, number: str) -> ImportRow | None:
        """The accepted row with this number."""
        return self._find(self._numbers, "n:", number, lambda r: r.number)

    def _find(
        self, index: dict[int, int], kind: str, text: str, of: Callable[[ImportRow], str]
    ) -> ImportRow | None:
        at = index.get(hash(text))
        if at is not None and of(self.rows[at]) == text:
            return self.rows[at]
        at = self._collided.get(kind + text)
        return None if at is None else self.rows[at]

    def _put(self, index: dict[int, int], kind: str, text: str, at: int) -> None:
        if hash(text) in index:
            self._collided[kind + text] = at
        else:
            index[hash(text)] = at

    def add(self, row: ImportRow) -> bool:
        """False when the row repeats an earlier pair or conflicts with one (refused)."""
        key, pair = row.customer_key, f"{row.customer_key} {row.number}"
        had, owner = self.customer(key), self.holder(row.number)
        if had is not None and had.number == row.number:
            self.repeats += 1
            return False
        if had is not None:
            reason = f"two numbers for one customer: line {had.line} gives it {had.number}"
            self.refusals.append(Refusal(row.line, pair, reason))
            return False
        if owner is not None:
            reason = (
                f"one number for two customers: line {owner.line} gives it to {owner.customer_key}"
            )
            self.refusals.append(Refusal(row.line, pair, reason))
            return False
        self._put(self._customers, "c:", key, len(self.rows))
        self._put(self._numbers, "n:", row.number, len(self.rows))
        self.rows.append(row)
        return True
