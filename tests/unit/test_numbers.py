"""Templates: rendering, validation, and the mistakes that must stop start-up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customer_ids.domain import checkdigits, scramble
from customer_ids.domain.errors import ConfigError
from customer_ids.domain.numbers import NumberTemplate, RenderContext

MOMENT = datetime(2023, 10, 15, 23, 30, tzinfo=UTC)


def render(template: str, seq: int, zone: str = "UTC") -> str:
    return NumberTemplate.parse(template, zone).render(RenderContext(seq, MOMENT, "B", "DE"))


def test_examples_from_the_issue() -> None:
    # The issue's "CU-00012345-7" shows the shape; Luhn over 00012345 gives 5 (Damm gives 9).
    assert render("CU-{seq:8}-{check:luhn}", 12345) == "CU-00012345-5"
    assert render("CU-{seq:8}-{check:damm}", 12345) == "CU-00012345-9"
    assert render("{date:%Y%m%d}{seq:3}", 1) == "20231015001"
    assert render("{type}-{region}-{seq:7}", 4711) == "B-DE-0004711"


def test_date_parts_use_the_configured_zone() -> None:
    assert render("{date:%Y%m%d}{seq:3}", 1, "Europe/Berlin") == "20231016001"


def test_width_grows_and_never_truncates() -> None:
    assert render("{seq:3}", 123456) == "123456"


@given(st.integers(min_value=1, max_value=10**12), st.sampled_from(["luhn", "damm", "mod97"]))
def test_rendered_numbers_validate_and_a_changed_digit_does_not(seq: int, scheme: str) -> None:
    template = NumberTemplate.parse(f"CU-{{seq:8}}-{{check:{scheme}}}")
    number = template.render(RenderContext(seq, MOMENT, "B", "DE"))
    assert template.matches(number)
    i = 3  # first digit of the sequence part
    wrong = number[:i] + str((int(number[i]) + 1) % 10) + number[i + 1 :]
    assert not template.matches(wrong)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("CU-{seq}", "width"),
        ("CU-{seq:0}", "width"),
        ("CU-{nope}", "unknown token"),
        ("CU-{seq:4}-{check:verhoeff}", "unknown check scheme"),
        ("CU-{date:%Y}", "exactly one"),
        ("{type}{seq:4}{check:luhn}", "computed over digits"),
        ("CU-{seq:4", "unbalanced"),
    ],
)
def test_template_mistakes_name_what_is_wrong(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NumberTemplate.parse(template)


@given(
    st.integers(min_value=1, max_value=10**9),
    st.sampled_from(
        [
            "CU-{seq:8}-{check:luhn}",
            "{date:%Y%m%d}{seq:3}",
            "{type}-{region}-{seq:7}",
            "P{seq:8}{check:damm}",
            "{date:%Y}-{seq:6}{check:mod97}",
        ]
    ),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
)
def test_render_then_parse_gives_back_the_sequence_value(
    seq: int, text: str, moment: datetime
) -> None:
    template = NumberTemplate.parse(text)
    number = template.render(RenderContext(seq, moment, "B", "DE"))
    assert template.sequence_of(number) == seq


@given(st.integers(min_value=1, max_value=10**8 - 1))
def test_scrambled_numbers_parse_back_to_their_counter_value(seq: int) -> None:
    template = NumberTemplate.parse("S{seq:8:scrambled}{check:damm}", scramble_key=b"k" * 16)
    number = template.render(RenderContext(seq, MOMENT, "B", "DE"))
    assert template.sequence_of(number) == seq


def _render_token_by_token(template: NumberTemplate, ctx: RenderContext) -> str:
    """Rendering as the template reads, one token after another: what the compiled
    (bound) rendering must always equal."""
    out: list[str] = []
    for token in template.tokens:
        if token.kind == "text":
            out.append(token.arg)
        elif token.kind == "seq":
            value = ctx.sequence
            if template.scramble_key is not None:
                value = scramble.scramble(value, token.width, template.scramble_key)
            out.append(f"{value:0{token.width}d}")
        elif token.kind == "date":
            out.append(ctx.moment.astimezone(template.zone).strftime(token.arg))
        elif token.kind == "type":
            out.append(ctx.customer_type)
        elif token.kind == "region":
            out.append(ctx.region)
        else:
            digits = "".join(c for c in "".join(out) if c in "0123456789")
            out.append(checkdigits.SCHEMES[token.arg](digits))
    return "".join(out)


@given(
    st.sampled_from(
        [
            "CU-{seq:8}-{check:luhn}",
            "{date:%Y%m%d}-{seq:3}{check:damm}/x",
            "{seq:4}{date:%j}-{type}/{region}",
            "N{seq:6}{date:%y}{check:mod97}x",
            "{type}-{region}-{seq:7}",
            "{seq:10:scrambled}{check:luhn}",
            "{region}{date:%Y}{seq:1}",
        ]
    ),
    st.integers(min_value=1, max_value=10**9),
    st.datetimes(
        min_value=datetime(1001, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)
    ),
    st.sampled_from(["B", "INDIVIDUAL"]),
    st.sampled_from(["DE", "FR"]),
)
def test_the_compiled_rendering_equals_token_by_token_rendering(
    text: str, seq: int, moment: datetime, kind: str, region: str
) -> None:
    template = NumberTemplate.parse(text, "Europe/Berlin", scramble_key=b"k" * 16)
    ctx = RenderContext(seq, moment, kind, region)
    assert template.render(ctx) == _render_token_by_token(template, ctx)
    # The bound template is cached per type and region when it shows no date: never stale.
    assert template.render(ctx) == _render_token_by_token(template, ctx)


@given(
    st.sampled_from(
        ["CU-{seq:8}-{check:luhn}", "{date:%y}{seq:4}{check:mod97}", "N{seq:3}{check:damm}"]
    ),
    st.text(alphabet="0123456789", min_size=1, max_size=14),
)
def test_parsing_checks_the_digit_as_the_scheme_does(text: str, digits: str) -> None:
    template = NumberTemplate.parse(text)
    prefix = text.split("{", 1)[0]
    number = prefix + ("-" if text.startswith("CU") else "") + digits
    if text.startswith("CU"):
        number = f"CU-{digits[:-1]}-{digits[-1]}" if len(digits) > 1 else number
    scheme = text.rsplit("check:", 1)[1].rstrip("}x")
    shaped = template._pattern.fullmatch(number) is not None
    expected = shaped and checkdigits.is_valid("".join(c for c in number if c.isdigit()), scheme)
    assert (template.sequence_of(number) is not None) == expected
