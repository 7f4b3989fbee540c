"""`produce --file`: a bad line is named by its number, with the fields that are missing,
unknown or of the wrong type, and what a line may hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_ids.domain.errors import ConfigError
from producer.cli import read_json_lines

GOOD = '{"customer_id": "C1", "source_system": "crm", "customer_type": "B", "country_code": "DE"}'


def lines(tmp_path: Path, *text: str) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(text) + "\n")
    return path


def test_a_good_file_gives_its_events(tmp_path: Path) -> None:
    events = list(read_json_lines(lines(tmp_path, GOOD, "", GOOD.replace("C1", "C2"))))
    assert [e.customer_id for e in events] == ["C1", "C2"]


def test_missing_fields_are_named_with_the_line(tmp_path: Path) -> None:
    path = lines(tmp_path, GOOD, '{"customer_id": "C3", "source_system": "crm"}')
    with pytest.raises(ConfigError) as caught:
        list(read_json_lines(path))
    message = str(caught.value)
    # Before: "CustomerCreated.__init__() missing 2 required positional arguments".
    assert f"--file {path}, line 2: missing customer_type, country_code;" in message
    assert "__init__" not in message
    assert "optionally event_id, occurred_at" in message  # what a line may hold


def test_unknown_and_mistyped_fields_are_named(tmp_path: Path) -> None:
    path = lines(tmp_path, GOOD[:-1] + ', "colour": "red", "attributes": {"tier": 3}}')
    with pytest.raises(ConfigError, match=r"line 1: unknown field\(s\) colour; not text: attr"):
        list(read_json_lines(path))


@pytest.mark.parametrize(
    ("line", "said"),
    [("{not json", "not JSON"), ("[1, 2]", "a JSON list, not an object")],
)
def test_a_line_that_is_no_object_says_so(tmp_path: Path, line: str, said: str) -> None:
    with pytest.raises(ConfigError, match=f"line 1: {said}"):
        list(read_json_lines(lines(tmp_path, line)))


def test_nothing_is_given_before_every_line_was_checked(tmp_path: Path) -> None:
    # Before, the lines above a bad one were sent and the command then stopped half way.
    events = read_json_lines(lines(tmp_path, GOOD, GOOD, '{"customer_id": "C9"}'))
    with pytest.raises(ConfigError, match="line 3: missing"):
        next(events)
