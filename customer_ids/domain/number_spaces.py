"""Which numbers a configuration can render, and whether two renderings can ever meet.

A number is unique because its counter value is, *as long as the same rendering turns values
into numbers*. A new template, period, scramble key, time zone or sequence name over the same
digits starts a new counter (or a new permutation) that can render a number already issued.
So every rendering ever used is remembered, and a configuration whose numbers could meet an
earlier rendering's, or another sequence's, is refused. "Could meet" is decided
conservatively from the shape of the templates: two renderings are apart only when their
fixed characters differ at some position from the left or from the right (a different
literal prefix, a letter where the other has a digit), or both have a fixed, different length.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from customer_ids.domain import checkdigits
from customer_ids.domain.errors import ConfigError
from customer_ids.domain.numbers import NumberTemplate
from customer_ids.domain.sequences import Sequence

DIGIT = "\0digit"
STOP = "\0stop"  # a part of unknown length or content: the walk cannot see past it
_FIXED_DATE = {"Y": 4, "m": 2, "d": 2, "j": 3, "H": 2, "M": 2, "S": 2, "y": 2, "U": 2, "W": 2}
_FIXED_DATE |= {"V": 2, "G": 4, "u": 1, "w": 1, "F": 10}


@dataclass(frozen=True)
class Rendering:
    """Everything that decides which number a counter value becomes."""

    sequence: str
    template: str
    period: str
    zone: str  # only where the template shows a date or the period resets
    scramble: str  # a fingerprint of the scramble key, never the key

    @classmethod
    def of(cls, sequence: Sequence) -> Rendering:
        template = sequence.template
        dated = any(t.kind == "date" for t in template.tokens) or sequence.period != "none"
        key = template.scramble_key
        return cls(
            sequence=sequence.name,
            template=template.text,
            period=sequence.period,
            zone=template.zone.key if dated else "",
            scramble=hmac.new(key, b"customer-ids fingerprint", hashlib.sha256).hexdigest()[:16]
            if key
            else "",
        )

    @property
    def key(self) -> str:
        """A stable name for the record that remembers it."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:24]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Rendering:
        return cls(**json.loads(raw))

    def describe(self) -> str:
        extra = [f"period {self.period}"]
        if self.zone:
            extra.append(f"zone {self.zone}")
        if self.scramble:
            extra.append(f"scramble key {self.scramble[:8]}…")
        return f"sequence {self.sequence} with template {self.template!r} ({', '.join(extra)})"


def _date_items(fmt: str) -> list[str]:
    items: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            width = _FIXED_DATE.get(fmt[i + 1])
            if width is None:
                return [*items, STOP]
            items += ["-" if fmt[i + 1] == "F" and n in (4, 7) else DIGIT for n in range(width)]
            i += 2
        else:
            items.append(fmt[i])
            i += 1
    return items


def _walk(template: NumberTemplate, from_right: bool) -> list[str]:
    """What each position holds, read from one end until a part of unknown length."""
    items: list[str] = []
    tokens = reversed(template.tokens) if from_right else iter(template.tokens)
    for token in tokens:
        if token.kind == "text":
            part = list(token.arg)
        elif token.kind == "seq":
            part = [DIGIT] * token.width + ([] if token.arg == "scrambled" else [STOP])
            if from_right:
                part = [STOP] + [DIGIT] * token.width if token.arg != "scrambled" else part
        elif token.kind == "date":
            part = _date_items(token.arg)
        elif token.kind == "check":
            part = [DIGIT] * checkdigits.WIDTHS[token.arg]
        else:  # {type}, {region}
            part = [STOP]
        if from_right:
            part = part[::-1]
        for item in part:
            items.append(item)
            if item == STOP:
                return items
    return items


def _apart(a: list[str], b: list[str]) -> bool:
    for x, y in zip(a, b, strict=False):
        if STOP in (x, y):
            return False
        if x == y:
            continue
        if DIGIT in (x, y):
            other = y if x == DIGIT else x
            if not other.isdigit():
                return True
            continue
        return True
    return False


def may_meet(a: NumberTemplate, b: NumberTemplate) -> bool:
    """False only when no number can come out of both templates."""
    left_a, left_b = _walk(a, False), _walk(b, False)
    if _apart(left_a, left_b) or _apart(_walk(a, True), _walk(b, True)):
        return False
    fixed_a, fixed_b = STOP not in left_a, STOP not in left_b
    return not (fixed_a and fixed_b and len(left_a) != len(left_b))


_PERIOD_NEEDS = {
    "daily": ("the day", ("Y",), (("m", "d"), ("j",))),
    "monthly": ("the month", ("Y",), (("m",),)),
    "yearly": ("the year", ("Y",), ((),)),
}


def period_problem(sequence: Sequence) -> str | None:
    """A period restarts the counter; unless the number shows the period (with %Y: %G is the
    ISO week-year, off around New Year), a restart renders the last period's numbers again."""
    if sequence.period == "none":
        return None
    shown = set()
    for token in sequence.template.tokens:
        if token.kind == "date":
            fmt = token.arg.replace("%F", "%Y%m%d")
            shown |= {fmt[i + 1] for i in range(len(fmt) - 1) if fmt[i] == "%"}
    what, required, alternatives = _PERIOD_NEEDS[sequence.period]
    if all(r in shown for r in required) and any(
        all(c in shown for c in alt) for alt in alternatives
    ):
        return None
    example = {"daily": "{date:%Y%m%d}", "monthly": "{date:%Y%m}", "yearly": "{date:%Y}"}
    return (
        f"sequence {sequence.name}: period {sequence.period} restarts its counter, but its "
        f"template {sequence.template.text!r} does not show {what} with %Y, so numbers would "
        f'repeat; put {example[sequence.period]} in the template or use period = "none"'
    )


def configuration_problems(sequences: Iterable[Sequence]) -> list[str]:
    """What in one configuration could render the same number twice."""
    sequences = list(sequences)
    problems = [p for s in sequences if (p := period_problem(s)) is not None]
    for i, a in enumerate(sequences):
        for b in sequences[i + 1 :]:
            if may_meet(a.template, b.template):
                problems.append(
                    f"sequences {a.name} and {b.name} can render the same number "
                    f"({a.template.text!r} and {b.template.text!r}); give each template a "
                    "literal prefix of its own, such as 'P' and 'B'"
                )
    return problems


def _may_meet_text(template: NumberTemplate, other: str) -> bool:
    try:
        parsed = NumberTemplate.parse(other, "UTC", b"any scramble key")
    except ConfigError:
        return True  # a template today's rules refuse: assume the worst
    return may_meet(template, parsed)


def history_problems(sequences: Iterable[Sequence], history: Iterable[Rendering]) -> list[str]:
    """What in this configuration could render a number issued under an earlier rendering."""
    earlier = {r.key: r for r in history}
    problems = []
    for sequence in sequences:
        now = Rendering.of(sequence)
        if now.key in earlier:
            continue  # the same rendering, continuing its counter
        for old in earlier.values():
            if _may_meet_text(sequence.template, old.template):
                problems.append(
                    f"{now.describe()} could render numbers already issued by "
                    f"{old.describe()}: a change of template, period, scramble key, time zone "
                    "or sequence name over the same digits is refused. Keep the earlier "
                    "settings, or give the new template a literal prefix the earlier one never "
                    "had (for example 'CV-' instead of 'CU-')"
                )
                break
    return problems


# The counter of legacy numbers an import kept (customer_ids/domain/imports.py); no sequence
# name can hold '~' (sequences.py), so it is nobody else's.
LEGACY_COUNTER = "~legacy"


def shape_of(number: str) -> str:
    """A legacy number (no template of ours produced it) with every digit as '9': what no
    template may ever be able to produce (customer_ids/domain/imports.py)."""
    return "".join("9" if c.isdigit() else c for c in number)


def may_produce(template: NumberTemplate, shape: str) -> bool:
    """Whether the template could produce a number of this shape, decided as may_meet
    decides it for two templates."""
    cells = [DIGIT if c == "9" else c for c in shape]
    left = _walk(template, False)
    if _apart(left, cells) or _apart(_walk(template, True), cells[::-1]):
        return False
    return STOP in left or len(left) == len(cells)


def legacy_problems(sequences: Iterable[Sequence], shapes: Iterable[str]) -> list[str]:
    """What in this configuration could produce an imported legacy number (by its shape)."""
    shapes = list(shapes)
    problems = []
    for sequence in sequences:
        met = next((s for s in shapes if may_produce(sequence.template, s)), None)
        if met is not None:
            problems.append(
                f"sequence {sequence.name}'s template {sequence.template.text!r} could produce "
                f"imported legacy numbers of the shape {met!r} (9 = any digit), which belong to "
                "customers already; give the template a literal prefix those numbers never have"
            )
    return problems
