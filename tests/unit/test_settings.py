"""Settings: defaults, validation messages that name the variable, masking, sequences file."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_ids.errors import ConfigError
from customer_ids.settings import SETTINGS, Settings, load_sequences


def test_defaults_are_usable() -> None:
    settings = Settings.from_env({})
    assert settings.input_topic == "customer.created"
    assert settings.transactional_id.startswith("customer-ids-")
    assert [s.name for s in settings.router.sequences] == ["CU"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CUSTOMER_IDS_BATCH_SIZE": "lots"}, "CUSTOMER_IDS_BATCH_SIZE='lots' is not a whole"),
        ({"CUSTOMER_IDS_BATCH_SIZE": "0"}, "CUSTOMER_IDS_BATCH_SIZE=0 is out of range"),
        ({"CUSTOMER_IDS_LOG_FORMAT": "xml"}, "use one of: auto, json, console"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with"),
        ({"CUSTOMER_IDS_NUMBER_FORMAT": "CU-{seq}"}, "width"),
        ({"CUSTOMER_IDS_SEQUENCE_PERIOD": "hourly"}, "CUSTOMER_IDS_SEQUENCE_PERIOD"),
    ],
)
def test_mistakes_name_the_variable_and_the_allowed_values(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("(", r"\(")):
        Settings.from_env(env)


def test_secrets_are_masked() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://app:s3cret@cache:6379/0"})
    shown = settings.masked()
    assert "s3cret" not in str(shown)
    assert shown["redis_url"] == "redis://app:***@cache:6379/0"


def test_every_setting_is_documented_once() -> None:
    names = [s.env for s in SETTINGS]
    assert len(names) == len(set(names))


def test_sequences_file(tmp_path: Path) -> None:
    path = tmp_path / "seq.toml"
    path.write_text("""
[[sequences]]
name = "B"
template = "B-{region}-{seq:7}"
customer_types = ["BUSINESS"]

[[sequences]]
name = "P"
template = "P{seq:8}{check:damm}"
customer_types = ["INDIVIDUAL"]
period = "yearly"
""")
    router = load_sequences(path)
    assert [s.name for s in router.sequences] == ["B", "P"]


def test_overlapping_rules_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "seq.toml"
    path.write_text("""
[[sequences]]
name = "A"
template = "A{seq:4}"
[[sequences]]
name = "B"
template = "B{seq:4}"
regions = ["DE"]
""")
    with pytest.raises(ConfigError, match="sequences A and B both accept"):
        load_sequences(path)


def test_unknown_field_names_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "seq.toml"
    path.write_text('[[sequences]]\nname = "A"\ntemplate = "A{seq:4}"\nprefix = "x"\n')
    with pytest.raises(ConfigError, match="sequence A: unknown field"):
        load_sequences(path)


def test_the_readme_settings_table_is_the_declared_settings() -> None:
    """Each setting is declared once (SETTINGS); the README's table must say the same."""
    from pathlib import Path  # noqa: PLC0415

    from customer_ids.settings import SETTINGS  # noqa: PLC0415

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `") and " | `" in line]
    declared = [f"| `{s.env}` | `{s.default}` | {s.meaning} |" for s in SETTINGS]
    table = [row for row in rows if row.split("`")[1] in {s.env for s in SETTINGS}]
    assert table == declared


def test_the_dataclass_defaults_are_the_declared_defaults() -> None:
    """A setting's default is declared in SETTINGS; the dataclass must not disagree."""
    import dataclasses  # noqa: PLC0415

    from customer_ids.settings import Settings  # noqa: PLC0415

    from_env = Settings.from_env({"CUSTOMER_IDS_TRANSACTIONAL_ID": "customer-ids-local"})
    assert dataclasses.asdict(from_env) == dataclasses.asdict(Settings())
