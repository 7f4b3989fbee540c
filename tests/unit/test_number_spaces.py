"""A configuration change never renders a number already issued (invariant 5): each change the
issue names is refused, and the changes that cannot collide are let through."""

from __future__ import annotations

import pytest

from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError
from customer_ids.domain.number_spaces import (
    Rendering,
    configuration_problems,
    history_problems,
    may_meet,
)
from customer_ids.domain.numbers import NumberTemplate
from customer_ids.domain.sequences import Sequence

KEY = b"k" * 16


def seq(template: str, name: str = "CU", period: str = "none", key: bytes | None = KEY) -> Sequence:
    return Sequence(name, NumberTemplate.parse(template, "UTC", key), period=period)  # type: ignore[arg-type]


def changed(before: Sequence, after: Sequence) -> list[str]:
    return history_problems([after], [Rendering.of(before)])


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (seq("CU{seq:4}"), seq("CU{seq:4:scrambled}")),
        (seq("CU{seq:4:scrambled}"), seq("CU{seq:4:scrambled}", key=b"another key of 16+")),
        (seq("CU-{seq:8}-{check:luhn}"), seq("CU-{seq:8}-{check:luhn}", name="CX")),
        (
            seq("{date:%Y%m%d}{seq:3}", name="D", period="daily"),
            seq("{date:%Y%m%d}{seq:3}", name="D", period="monthly"),
        ),
        (seq("C{seq:4}"), seq("C{seq:5}")),
        (seq("CU-{seq:8}-{check:luhn}"), seq("CU-{seq:8}-{check:damm}")),
    ],
    ids=["scrambled", "new key", "renamed", "new period", "wider", "other check"],
)
def test_a_change_that_can_render_an_issued_number_is_refused(
    before: Sequence, after: Sequence
) -> None:
    problems = changed(before, after)
    assert len(problems) == 1
    assert "could render numbers already issued" in problems[0]
    assert "literal prefix" in problems[0]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (seq("CU-{seq:8}-{check:luhn}"), seq("CU-{seq:8}-{check:luhn}")),
        (seq("CU-{seq:8}-{check:luhn}"), seq("CV-{seq:8}-{check:luhn}")),
        (seq("CU{seq:4}"), seq("CU-{seq:4}")),
        (seq("{date:%Y}{seq:6}"), seq("B{seq:7}{check:damm}")),
    ],
    ids=["unchanged", "new prefix", "letter where a digit was", "digit vs letter"],
)
def test_a_change_that_cannot_collide_is_allowed(before: Sequence, after: Sequence) -> None:
    assert changed(before, after) == []


def test_overlapping_sequences_in_one_configuration_are_refused() -> None:
    problems = configuration_problems([seq("C{seq:4}", "A"), seq("C{seq:5}", "B")])
    assert problems and "sequences A and B can render the same number" in problems[0]
    assert configuration_problems([seq("P{seq:4}", "P"), seq("B{seq:4}", "B")]) == []


@pytest.mark.parametrize(
    ("template", "period"),
    [
        ("{date:%Y%m}{seq:3}", "daily"),
        ("CU-{seq:8}-{check:luhn}", "daily"),
        ("{date:%G}{seq:6}", "yearly"),
        ("{date:%m%d}{seq:4}", "daily"),
    ],
)
def test_a_period_the_number_does_not_show_is_refused(template: str, period: str) -> None:
    problems = configuration_problems([seq(template, "D", period)])
    assert problems and f"period {period} restarts its counter" in problems[0]


@pytest.mark.parametrize(
    ("template", "period"),
    [
        ("{date:%Y%m%d}{seq:3}", "daily"),
        ("{date:%Y%j}-{seq:3}", "daily"),
        ("{date:%F}/{seq:2}", "daily"),
        ("{date:%Y}{seq:6}", "yearly"),
        ("M{date:%Y%m}{seq:4}", "monthly"),
    ],
)
def test_a_period_the_number_shows_is_allowed(template: str, period: str) -> None:
    assert configuration_problems([seq(template, "D", period)]) == []


def test_settings_refuse_a_risky_configuration_with_a_message() -> None:
    with pytest.raises(ConfigError, match="period daily restarts its counter"):
        Settings.from_env({"CUSTOMER_IDS_SEQUENCE_PERIOD": "daily"})


def test_may_meet_is_symmetric_on_a_few_shapes() -> None:
    shapes = ["CU{seq:4}", "CU-{seq:4}", "{date:%Y}{seq:2}", "X{type}{seq:3}", "{seq:3}Z"]
    for a in shapes:
        for b in shapes:
            ta, tb = NumberTemplate.parse(a), NumberTemplate.parse(b)
            assert may_meet(ta, tb) == may_meet(tb, ta), (a, b)
        assert may_meet(NumberTemplate.parse(a), NumberTemplate.parse(a))
