"""Settings: defaults, validation messages that name the variable, masking, sequences file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from customer_ids.config.api_settings import API_SETTINGS
from customer_ids.config.sequences_file import load_sequences
from customer_ids.config.settings import SETTINGS, Settings
from customer_ids.domain.errors import ConfigError


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
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL='localhost:6379': must start with"),
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
    """Each setting is declared once (a field of Settings); the README's table must say the same."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `") and " | `" in line]
    for declared_settings in (SETTINGS, API_SETTINGS):
        declared = [f"| `{s.env}` | `{s.default}` | {s.meaning} |" for s in declared_settings]
        names = {s.env for s in declared_settings}
        table = [row for row in rows if row.split("`")[1] in names]
        assert table == declared


def test_the_declared_defaults_are_the_defaults_in_use() -> None:
    """What --help and the README show as a default is what an empty environment gives."""
    settings = Settings.from_env({})
    shown = {s.env: s.default for s in SETTINGS}
    assert shown["CUSTOMER_IDS_BATCH_SIZE"] == str(settings.batch_size)
    assert shown["CUSTOMER_IDS_REVERSE_INDEX"] == "off"
    assert settings.reverse_index is False
    assert shown["CUSTOMER_IDS_REDIS_REPLICA_ACKS"] == "auto"
    assert settings.redis_replica_acks is None
    assert shown["CUSTOMER_IDS_TRANSACTIONAL_ID"] == "customer-ids-<hostname>"


def test_from_env_does_not_mix_in_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUSTOMER_IDS_BATCH_SIZE", "7")
    assert Settings.from_env({}).batch_size == 2500
    assert Settings.from_env().batch_size == 7


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CUSTOMER_IDS_REDIS_REPLICA_ACKS": "many"},
            "CUSTOMER_IDS_REDIS_REPLICA_ACKS='many': use auto",
        ),
        (
            {"REDIS_SENTINELS": "sentinel"},
            "REDIS_SENTINELS='sentinel': 'sentinel' is not host:port",
        ),
        ({"CUSTOMER_IDS_REVERSE_INDEX": "yes"}, "CUSTOMER_IDS_REVERSE_INDEX='yes': use on or off"),
        ({"CUSTOMER_IDS_SCRAMBLE_KEY": "short"}, "CUSTOMER_IDS_SCRAMBLE_KEY='***': is too short"),
        ({"CUSTOMER_IDS_NUMBER_FORMAT": "CU-{seq}"}, "CUSTOMER_IDS_NUMBER_FORMAT: template"),
    ],
)
def test_typed_settings_explain_their_mistakes(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_on_off_and_auto_parse() -> None:
    settings = Settings.from_env(
        {
            "CUSTOMER_IDS_REVERSE_INDEX": "ON",
            "CUSTOMER_IDS_REDIS_REPLICA_ACKS": "2",
            "REDIS_SENTINELS": "127.0.0.1:26379, 127.0.0.1:26380",
            "CUSTOMER_IDS_LOG_LEVEL": "DEBUG",
        }
    )
    assert settings.reverse_index is True
    assert settings.redis_replica_acks == 2
    assert settings.redis_sentinels == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert settings.log_level == "debug"


@pytest.mark.parametrize(
    ("env", "secret"),
    [
        ({"CUSTOMER_IDS_SEARCH_KEY": "supersecretvalue"}, "supersecretvalue"),
        ({"CUSTOMER_IDS_SCRAMBLE_KEY": "hush"}, "hush"),
        ({"REDIS_URL": "localhost://app:s3cret@cache:6379"}, "s3cret"),
    ],
)
def test_a_wrong_secret_is_named_but_never_repeated(env: dict[str, str], secret: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert next(iter(env)) in str(raised.value)
    assert secret not in str(raised.value)
