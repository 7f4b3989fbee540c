"""Sequence limits: counters live in Lua scripts as doubles, so no counter may pass 2**53 - 1,
whatever the template; a start beyond what the sequence can issue is refused at start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from customer_ids.config.sequences_file import load_sequences
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError
from customer_ids.domain.numbers import MAX_COUNTER, NumberTemplate
from customer_ids.domain.sequences import Sequence

KEY = b"k" * 16


def test_the_counter_limit_is_the_largest_exact_double() -> None:
    assert MAX_COUNTER == 2**53 - 1
    assert float(MAX_COUNTER) == MAX_COUNTER
    assert float(MAX_COUNTER + 2) != MAX_COUNTER + 2  # the first value a double cannot hold


@pytest.mark.parametrize(
    ("template", "capacity"),
    [
        ("CU-{seq:8}-{check:luhn}", MAX_COUNTER),  # grows past 8 digits, but not past doubles
        ("CU{seq:18}", MAX_COUNTER),
        ("S{seq:4:scrambled}", 10**4 - 1),
        ("S{seq:15:scrambled}", 10**15 - 1),
        ("S{seq:16:scrambled}", MAX_COUNTER),  # 10**16 - 1 would pass 2**53
        ("S{seq:18:scrambled}", MAX_COUNTER),
    ],
)
def test_every_sequence_has_a_capacity_within_doubles(template: str, capacity: int) -> None:
    sequence = Sequence("S", NumberTemplate.parse(template, scramble_key=KEY))
    assert sequence.capacity == capacity
    assert sequence.capacity <= MAX_COUNTER


def test_a_start_past_what_doubles_hold_is_refused() -> None:
    template = NumberTemplate.parse("CU{seq:8}")
    assert Sequence("CU", template, start=MAX_COUNTER).start == MAX_COUNTER
    with pytest.raises(ConfigError, match=r"sequence CU: start .* 9007199254740991"):
        Sequence("CU", template, start=MAX_COUNTER + 1)


def test_a_start_past_a_scrambled_range_is_refused() -> None:
    template = NumberTemplate.parse("S{seq:4:scrambled}", scramble_key=KEY)
    with pytest.raises(ConfigError, match=r"sequence S: start 10000 .* 9999"):
        Sequence("S", template, start=10_000)


def test_the_sequences_file_refuses_a_start_too_large(tmp_path: Path) -> None:
    path = tmp_path / "seq.toml"
    path.write_text(f'[[sequences]]\nname = "A"\ntemplate = "A{{seq:8}}"\nstart = {10**17}\n')
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: sequence A: .*start {10**17}"):
        load_sequences(path)


def test_the_environment_refuses_a_start_too_large() -> None:
    expected = r"CUSTOMER_IDS_SEQUENCE_START=.* use 1\.\.9007199254740991"
    with pytest.raises(ConfigError, match=expected):
        Settings.from_env({"CUSTOMER_IDS_SEQUENCE_START": str(10**17)})


def test_an_event_no_sequence_accepts_is_the_project_s_validation_error() -> None:
    """Not the builtin LookupError, whose handling depended on the order of except clauses."""
    import uuid  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from customer_ids.domain.errors import ValidationError  # noqa: PLC0415
    from customer_ids.domain.events import CustomerCreated  # noqa: PLC0415
    from customer_ids.domain.numbers import NumberTemplate  # noqa: PLC0415
    from customer_ids.domain.sequences import Router  # noqa: PLC0415

    router = Router(
        (Sequence("B", NumberTemplate.parse("B{seq:4}"), customer_types=frozenset({"BUSINESS"})),)
    )
    event = CustomerCreated(str(uuid.uuid4()), "c", "crm", "INDIVIDUAL", "DE", datetime.now(UTC))
    with pytest.raises(ValidationError, match="no sequence accepts"):
        router.route(event)
