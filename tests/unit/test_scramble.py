"""The scrambled sequence: a keyed bijection, so numbers stay unique by construction."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest

from customer_ids.domain.errors import ConfigError
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.domain.scramble import capacity, scramble

KEY = b"0123456789abcdef"


@pytest.mark.parametrize("digits", [1, 2, 3, 4])
def test_is_a_bijection_on_the_whole_range(digits: int) -> None:
    size = 10**digits
    images = [scramble(v, digits, KEY) for v in range(size)]
    assert sorted(images) == list(range(size))


def test_is_injective_on_a_sample_of_the_eight_digit_range() -> None:
    rng = random.Random(3)
    values = rng.sample(range(10**8), 20000) + list(range(1, 5001))
    images = [scramble(v, 8, KEY) for v in set(values)]
    assert len(set(images)) == len(set(values))
    assert all(0 <= i < 10**8 for i in images)


def test_consecutive_values_look_unrelated_and_depend_on_the_key() -> None:
    run = [scramble(v, 8, KEY) for v in range(1, 11)]
    assert run != sorted(run)
    assert max(abs(a - b) for a, b in itertools.pairwise(run)) > 1000
    assert run != [scramble(v, 8, b"another-key-0000") for v in range(1, 11)]


def test_template_renders_fixed_width_and_validates() -> None:
    template = NumberTemplate.parse("S{seq:8:scrambled}{check:damm}", scramble_key=KEY)
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    numbers = [template.render(RenderContext(v, moment, "B", "DE")) for v in range(1, 200)]
    assert len(set(numbers)) == 199
    assert all(len(n) == 10 and template.matches(n) for n in numbers)
    assert template.capacity == capacity(8) == 10**8 - 1


def test_scrambled_without_a_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="CUSTOMER_IDS_SCRAMBLE_KEY"):
        NumberTemplate.parse("S{seq:8:scrambled}")
    with pytest.raises(ConfigError, match="only mode"):
        NumberTemplate.parse("S{seq:8:shuffled}", scramble_key=KEY)
