"""Rendering a number and naming a period's counter fail per record, with ValidationError, for
event times at the edge of the calendar and for text that must never be in a number."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from customer_ids.domain.errors import ConfigError, ValidationError
from customer_ids.domain.events import CustomerCreated
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.domain.sequences import Sequence

LATE = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
EARLY = datetime(1, 1, 1, 0, 30, tzinfo=UTC)
EDGES = [(LATE, "Asia/Tokyo"), (LATE, "Europe/Berlin"), (EARLY, "America/New_York")]


def event(moment: datetime, kind: str = "INDIVIDUAL", country: str = "DE") -> CustomerCreated:
    return CustomerCreated(str(uuid.uuid4()), "c1", "crm", kind, country, moment)


@pytest.mark.parametrize(("moment", "zone"), EDGES)
def test_a_date_part_out_of_range_is_a_validation_error(moment: datetime, zone: str) -> None:
    template = NumberTemplate.parse("{date:%Y%m%d}{seq:3}", zone)
    with pytest.raises(ValidationError, match="out of the range"):
        template.render(RenderContext(1, moment, "B", "DE"))


@pytest.mark.parametrize(("moment", "zone"), EDGES)
@pytest.mark.parametrize("period", ["daily", "monthly", "yearly"])
def test_a_period_out_of_range_is_a_validation_error(
    moment: datetime, zone: str, period: str
) -> None:
    sequence = Sequence("P", NumberTemplate.parse("P{seq:6}", zone), period=period)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="out of the range"):
        sequence.counter_name(moment)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=st.just(UTC),
    ),
    st.sampled_from(["UTC", "Asia/Tokyo", "Pacific/Kiritimati", "Pacific/Pago_Pago"]),
)
@example(LATE, "Pacific/Kiritimati")
@example(EARLY, "Pacific/Pago_Pago")
def test_any_event_time_renders_or_is_refused_per_record(moment: datetime, zone: str) -> None:
    sequence = Sequence("P", NumberTemplate.parse("{date:%Y%m%d}-{seq:6}", zone), period="daily")
    try:
        counter = sequence.counter_name(moment)
        number = sequence.render(7, event(moment))
    except ValidationError:
        return
    assert counter.startswith("P:")
    assert number.endswith("-000007")


def test_times_one_day_inside_the_calendar_still_render() -> None:
    template = NumberTemplate.parse("{date:%Y}{seq:3}", "Asia/Tokyo")
    assert template.render(RenderContext(1, LATE - timedelta(days=1), "B", "DE")) == "9999001"


@pytest.mark.parametrize("kind", ["A\nB", "A|B", "A\x00B", "A\u200bB", "A\u2028B", "A\x7fB"])
def test_text_that_must_never_be_in_a_number_is_refused(kind: str) -> None:
    template = NumberTemplate.parse("{type}-{region}-{seq:7}")
    with pytest.raises(ValidationError, match="customer_type"):
        template.render(RenderContext(1, LATE - timedelta(days=2), kind, "DE"))


def test_a_region_that_must_never_be_in_a_number_is_refused() -> None:
    template = NumberTemplate.parse("{region}{seq:7}")
    with pytest.raises(ValidationError, match="region"):
        template.render(RenderContext(1, LATE - timedelta(days=2), "B", "D|"))


def test_ordinary_text_still_renders() -> None:
    template = NumberTemplate.parse("{type}-{region}-{seq:7}")
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    assert template.render(RenderContext(1, moment, "BUSINESS_Ü", "DE")) == "BUSINESS_Ü-DE-0000001"


@given(st.text(min_size=1, max_size=20))
def test_a_rendered_number_never_holds_a_separator_or_an_unprintable_character(
    kind: str,
) -> None:
    template = NumberTemplate.parse("{type}{seq:4}")
    try:
        number = template.render(RenderContext(1, datetime(2024, 1, 1, tzinfo=UTC), kind, "DE"))
    except ValidationError:
        return
    assert number.isprintable()
    assert "|" not in number


@pytest.mark.parametrize("text", ["CU|{seq:4}", "CU\u200b{seq:4}", "CU\x7f{seq:4}"])
def test_a_template_with_such_text_is_refused_at_start_up(text: str) -> None:
    with pytest.raises(ConfigError, match="template"):
        NumberTemplate.parse(text)


@pytest.mark.parametrize("bad", ["C1\n", "C\x001", "C\x1b[31m", "C\x85"])
@pytest.mark.parametrize("field", ["customer_id", "source_system"])
def test_control_characters_in_ids_are_the_records_failure(field: str, bad: str) -> None:
    record = {
        "event_id": "3f1c1c7e-8a51-4f43-9a57-1f0f0c7a3c11",
        "customer_id": "C1",
        "source_system": "crm",
        "customer_type": "INDIVIDUAL",
        "country_code": "DE",
        "occurred_at": datetime(2024, 5, 1, tzinfo=UTC),
        field: bad,
    }
    with pytest.raises(ValidationError, match=f"{field} contains a control character"):
        CustomerCreated.from_record(record)
