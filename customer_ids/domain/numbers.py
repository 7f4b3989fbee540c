"""Number templates: how a sequence value becomes the number people read.

`CU-{seq:8}-{check:luhn}` gives CU-00012345-5. Tokens: `{seq:N}` (zero-padded to at least N
digits, never truncated), `{date:FMT}` (strftime of the event's time in the configured zone),
`{type}`, `{region}`, `{check:luhn|damm|mod97}` over every digit before it.

What one event brings into its number (its time, its type and region) is checked as it is
rendered: a time outside the calendar in the configured zone, or text a number must never
hold, raises ValidationError for that event alone, so it is dead-lettered and the rest of its
batch goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from zoneinfo import ZoneInfo

from customer_ids.domain import checkdigits, scramble
from customer_ids.domain.errors import ConfigError, ValidationError

_TOKEN = re.compile(r"\{([^{}]*)\}")
_NOT_DIGIT = re.compile(r"[^0-9]")
# Stored assignments are "counter|value|number" and lookup replies are joined with newlines,
# so a number may hold neither; nor anything a person cannot read back.
SEPARATOR = "|"
# The allocation scripts run in Redis's Lua, whose numbers are doubles: above 2**53 - 1 two
# counter values can round to the same number. No counter may pass it, whatever the template.
MAX_COUNTER = 2**53 - 1
# Bound templates kept per template without a date: one per customer type and region seen.
_BOUND_CACHE_SIZE = 4096


def is_number_text(text: str) -> bool:
    """True when `text` may appear in a number: printable, without the stored separator."""
    return SEPARATOR not in text and text.isprintable()


def local_strftime(moment: datetime, zone: ZoneInfo, fmt: str) -> str:
    """`moment` in `zone`, formatted. Numbers show years 1000 to 9999: datetime stops at 9999
    (an event at the edge can fall outside it in the zone), and strftime writes years before
    1000 with fewer digits, which would make `%Y` ambiguous. Such an event is refused alone."""
    try:
        local = moment.astimezone(zone)
        if local.year >= 1000:
            return local.strftime(fmt)
    except (OverflowError, ValueError):
        pass
    raise ValidationError(
        f"event time {moment.isoformat()} is out of the range numbers can show: in time "
        f"zone {zone.key} it falls outside the years 1000 to 9999; correct occurred_at "
        "upstream and replay the dead letter"
    )


def _number_text(name: str, value: str) -> str:
    if not is_number_text(value):
        raise ValidationError(
            f"{name} {value!r} cannot be part of a number: it holds {SEPARATOR!r} or a control "
            "or unprintable character; correct it upstream and replay the dead letter"
        )
    return value


@dataclass(frozen=True)
class Token:
    kind: str  # "text", "seq", "date", "type", "region", "check"
    arg: str = ""
    width: int = 0


@dataclass(frozen=True, slots=True)
class BoundNumber:
    """A template with one event's time, type and region in place (NumberTemplate.bind): the
    text before the sequence value, between it and the check digit, after the check digit,
    and the digits of the first two, which the check digit covers."""

    template: NumberTemplate
    head: str
    middle: str
    end: str
    head_digits: str
    middle_digits: str

    def render(self, value: int) -> str:
        template = self.template
        if template.scramble_key is not None:
            value = scramble.scramble(value, template.seq_token.width, template.scramble_key)
        seq = template.seq_format(value)
        check = template.check_digit
        if check is None:
            return f"{self.head}{seq}{self.middle}{self.end}"
        digits = f"{self.head_digits}{seq}{self.middle_digits}"
        return f"{self.head}{seq}{self.middle}{check(digits)}{self.end}"


@dataclass(frozen=True)
class RenderContext:
    """What a number may be made of besides its sequence value."""

    sequence: int
    moment: datetime
    customer_type: str
    region: str


def _parse_token(body: str, template: str) -> Token:
    name, _, arg = body.partition(":")
    if name == "seq":
        width, _, mode = arg.partition(":")
        if not width.isdigit() or not 1 <= int(width) <= 18:
            raise ConfigError(
                f"template {template!r}: {{seq:N}} needs a width N from 1 to 18, got {width!r}"
            )
        if mode not in ("", "scrambled"):
            raise ConfigError(
                f"template {template!r}: {{seq:N:{mode}}} is unknown; the only mode is "
                "{seq:N:scrambled}"
            )
        return Token("seq", arg=mode, width=int(width))
    if name == "date":
        if not arg or "%" not in arg:
            raise ConfigError(
                f"template {template!r}: {{date:FMT}} needs a strftime format such as %Y%m%d"
            )
        if not is_number_text(datetime(2000, 12, 31, 23, 59, 59).strftime(arg)):
            raise ConfigError(
                f"template {template!r}: {{date:{arg}}} renders {SEPARATOR!r} or a control "
                "character (such as %n or %t); use digits and printable separators"
            )
        return Token("date", arg=arg)
    if name in ("type", "region") and not arg:
        return Token(name)
    if name == "check":
        if arg not in checkdigits.SCHEMES:
            raise ConfigError(
                f"template {template!r}: unknown check scheme {arg!r}; "
                f"allowed: {', '.join(checkdigits.SCHEMES)}"
            )
        return Token("check", arg=arg)
    raise ConfigError(
        f"template {template!r}: unknown token {{{body}}}; allowed: "
        "{seq:N}, {seq:N:scrambled}, {date:FMT}, {type}, {region}, {check:luhn|damm|mod97}"
    )


def _check_structure(text: str, tokens: list[Token]) -> None:
    """One {seq:N}; one check digit at most, after every other token but text, with no
    {type} or {region} before it (a check digit is computed over digits)."""
    if any("{" in t.arg or "}" in t.arg for t in tokens if t.kind == "text"):
        raise ConfigError(f"template {text!r} has an unbalanced brace")
    if sum(t.kind == "seq" for t in tokens) != 1:
        raise ConfigError(f"template {text!r} must contain exactly one {{seq:N}} token")
    checks = [i for i, t in enumerate(tokens) if t.kind == "check"]
    if not checks:
        return
    if len(checks) > 1 or any(t.kind != "text" for t in tokens[checks[0] + 1 :]):
        raise ConfigError(f"template {text!r}: one {{check:...}} at most, after every other token")
    if any(t.kind in ("type", "region") for t in tokens[: checks[0]]):
        raise ConfigError(
            f"template {text!r}: a check digit is computed over digits, so no {{type}} or "
            "{region} may stand before it; put them after, or drop the check"
        )


@dataclass(frozen=True)
class NumberTemplate:
    """A parsed template. Parse once at start-up; render per customer."""

    text: str
    tokens: tuple[Token, ...]
    zone: ZoneInfo
    scramble_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def parse(
        cls, text: str, zone: str = "UTC", scramble_key: bytes | None = None
    ) -> NumberTemplate:
        if not is_number_text(text):
            raise ConfigError(
                f"template {text!r} contains {SEPARATOR!r} or a control or unprintable "
                "character, which a number must never hold"
            )
        tokens: list[Token] = []
        pos = 0
        for match in _TOKEN.finditer(text):
            if match.start() > pos:
                tokens.append(Token("text", arg=text[pos : match.start()]))
            tokens.append(_parse_token(match.group(1), text))
            pos = match.end()
        if pos < len(text):
            tokens.append(Token("text", arg=text[pos:]))
        _check_structure(text, tokens)
        seqs = [t for t in tokens if t.kind == "seq"]
        try:
            tz = ZoneInfo(zone)
        except Exception as exc:
            raise ConfigError(f"unknown time zone {zone!r}; use an IANA name like UTC") from exc
        scrambled = seqs[0].arg == "scrambled"
        if scrambled and not scramble_key:
            raise ConfigError(
                f"template {text!r} uses {{seq:N:scrambled}}, which needs a secret key: set "
                "CUSTOMER_IDS_SCRAMBLE_KEY (16 or more characters)"
            )
        return cls(
            text=text,
            tokens=tuple(tokens),
            zone=tz,
            scramble_key=scramble_key if scrambled else None,
        )

    @cached_property
    def seq_token(self) -> Token:
        return next(t for t in self.tokens if t.kind == "seq")

    @property
    def capacity(self) -> int | None:
        """Most sequence values this template can show (never past MAX_COUNTER); None when
        numbers may grow, where only MAX_COUNTER bounds them (see Sequence.capacity)."""
        token = self.seq_token
        if token.arg != "scrambled":
            return None
        return min(scramble.capacity(token.width), MAX_COUNTER)

    def render(self, ctx: RenderContext) -> str:
        return self.bind(ctx.moment, ctx.customer_type, ctx.region).render(ctx.sequence)

    def bind(self, moment: datetime, customer_type: str, region: str) -> BoundNumber:
        """This template with one event's parts rendered: only the sequence value is left.
        Raises ValidationError for a time or text that cannot go into a number. Done once
        per event (and once per type and region when the template shows no date)."""
        if self._dated:
            return self._bind(moment, customer_type, region)
        cache = self._bound_cache
        key = (customer_type, region)
        bound = cache.get(key)
        if bound is None:
            bound = self._bind(moment, customer_type, region)
            if len(cache) >= _BOUND_CACHE_SIZE:
                cache.clear()
            cache[key] = bound
        return bound

    def _bind(self, moment: datetime, customer_type: str, region: str) -> BoundNumber:
        parts: list[list[str]] = [[], [], []]  # before the seq, up to the check, after it
        part = 0
        for token in self.tokens:
            if token.kind == "text":
                parts[part].append(token.arg)
            elif token.kind in ("seq", "check"):
                part += 1
            elif token.kind == "date":
                parts[part].append(local_strftime(moment, self.zone, token.arg))
            elif token.kind == "type":
                parts[part].append(_number_text("customer_type", customer_type))
            else:
                parts[part].append(_number_text("region (country_code)", region))
        head, middle, end = ("".join(p) for p in parts)
        return BoundNumber(
            self, head, middle, end, _NOT_DIGIT.sub("", head), _NOT_DIGIT.sub("", middle)
        )

    @cached_property
    def _dated(self) -> bool:
        return any(t.kind == "date" for t in self.tokens)

    @cached_property
    def _bound_cache(self) -> dict[tuple[str, str], BoundNumber]:
        return {}

    @cached_property
    def seq_format(self) -> Callable[[int], str]:
        """The sequence value zero-padded to the token's width (never truncated)."""
        return f"{{:0{self.seq_token.width}d}}".format

    @cached_property
    def _check_scheme(self) -> str | None:
        return next((t.arg for t in self.tokens if t.kind == "check"), None)

    @cached_property
    def check_digit(self) -> Callable[[str], str] | None:
        """The check scheme over a string known to be digits, or None without a check."""
        scheme = self._check_scheme
        return checkdigits.UNCHECKED[scheme] if scheme else None

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        pattern = ""
        for token in self.tokens:
            if token.kind == "text":
                pattern += re.escape(token.arg)
            elif token.kind == "seq":
                upper = token.width if token.arg == "scrambled" else ""
                pattern += rf"(?P<seq>\d{{{token.width},{upper}}})"
            elif token.kind == "date":
                pattern += _date_pattern(token.arg)
            elif token.kind in ("type", "region"):
                pattern += r"[A-Za-z0-9_]+"
            else:
                pattern += rf"\d{{{checkdigits.WIDTHS[token.arg]}}}"
        return re.compile(pattern)

    def sequence_of(self, number: str) -> int | None:
        """The sequence value `number` was rendered from, or None when it is not one of ours
        (wrong shape or wrong check digit). The inverse of render() for the counter part."""
        match = self._pattern.fullmatch(number)
        if match is None:
            return None
        scheme = self._check_scheme
        if scheme is not None and not checkdigits.is_valid(_NOT_DIGIT.sub("", number), scheme):
            return None
        value = int(match.group("seq"))
        if self.scramble_key is not None:
            value = scramble.unscramble(value, self.seq_token.width, self.scramble_key)
        return value

    def matches(self, number: str) -> bool:
        """True when `number` could have been rendered by this template, check digit included."""
        return self.sequence_of(number) is not None


# strftime directives of fixed width, so a date part next to {seq:N} parses unambiguously.
_DATE_WIDTHS = {
    "Y": 4,
    "y": 2,
    "m": 2,
    "d": 2,
    "j": 3,
    "H": 2,
    "M": 2,
    "U": 2,
    "W": 2,
    "V": 2,
    "G": 4,
    "u": 1,
    "w": 1,
}


def _date_pattern(fmt: str) -> str:
    out, i = "", 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            width = _DATE_WIDTHS.get(fmt[i + 1])
            out += rf"\d{{{width}}}" if width else r".+?"
            i += 2
        else:
            out += re.escape(fmt[i])
            i += 1
    return out
