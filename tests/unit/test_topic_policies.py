"""Existing topics must keep what the design needs: the output and watermark topics are the
record of truth and must be compacted, never expired."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from consumer.bootstrap import topic_specs
from customer_ids.adapters import kafka_io
from customer_ids.adapters.kafka_io import check_topic_policies, ensure_topics, lifetime_problems
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
EXPECTED = {"out": COMPACTED, "marks": COMPACTED, "in": {}}


def test_compacted_topics_pass() -> None:
    check_topic_policies(
        EXPECTED,
        {"out": {"cleanup.policy": "compact"}, "marks": {"cleanup.policy": "compact"}},
    )


def test_a_deleting_output_topic_is_refused_with_the_command_that_fixes_it() -> None:
    with pytest.raises(ConfigError) as caught:
        check_topic_policies(
            EXPECTED,
            {"out": {"cleanup.policy": "delete"}, "marks": {"cleanup.policy": "compact"}},
            bootstrap="b:9092",
        )
    message = str(caught.value)
    assert "topic out has cleanup.policy=delete" in message
    assert "must be compact" in message
    assert (
        "kafka-configs.sh --bootstrap-server b:9092 --alter --entity-type topics "
        "--entity-name out --add-config cleanup.policy=compact"
    ) in message
    assert "marks" not in message


def test_every_wrong_topic_is_named_at_once() -> None:
    with pytest.raises(ConfigError, match=r"(?s)topic out .*topic marks "):
        check_topic_policies(
            EXPECTED, {"out": {"cleanup.policy": "delete"}, "marks": {"cleanup.policy": "delete"}}
        )


def test_compact_and_delete_expires_records_unless_retention_is_unbounded() -> None:
    with pytest.raises(ConfigError, match=r"retention\.ms=604800000"):
        check_topic_policies(
            {"out": COMPACTED},
            {"out": {"cleanup.policy": "compact,delete", "retention.ms": "604800000"}},
        )
    check_topic_policies(
        {"out": COMPACTED},
        {
            "out": {
                "cleanup.policy": "compact,delete",
                "retention.ms": "-1",
                "retention.bytes": "-1",
            }
        },
    )


def test_topics_without_a_required_policy_are_not_checked() -> None:
    check_topic_policies(EXPECTED, {"in": {"cleanup.policy": "delete"}})


@dataclass
class FakeAdmin:
    """AdminClient's list, create and describe, over an in-memory broker."""

    configs: dict[str, dict[str, str]]
    partitions: dict[str, int] = field(default_factory=dict)  # topic -> count (default 1)

    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(
            topics={
                t: SimpleNamespace(partitions=dict.fromkeys(range(self.partitions.get(t, 1))))
                for t in self.configs
            }
        )

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Future[None]]:
        out: dict[str, Future[None]] = {}
        for topic in topics:
            self.configs[topic.topic] = {"cleanup.policy": "delete", **(topic.config or {})}
            out[topic.topic] = Future()
            out[topic.topic].set_result(None)
        return out

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, Any]:
        out = {}
        for resource in resources:
            future: Future[dict[str, Any]] = Future()
            entries = self.configs[resource.name]
            future.set_result({k: SimpleNamespace(value=v) for k, v in entries.items()})
            out[resource] = future
        return out


def test_ensure_topics_checks_topics_that_already_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = FakeAdmin({"out": {"cleanup.policy": "delete"}})
    monkeypatch.setattr(kafka_io, "AdminClient", lambda config: admin)
    specs: dict[str, dict[str, Any]] = {
        "in": {"partitions": 1, "replication": 1},
        "out": {"partitions": 1, "replication": 1, "config": COMPACTED},
        "marks": {"partitions": 1, "replication": 1, "config": COMPACTED},
    }
    with pytest.raises(ConfigError, match=r"topic out has cleanup\.policy=delete"):
        ensure_topics("b:9092", specs)
    assert set(admin.configs) == {"in", "out", "marks"}  # the missing ones were still created

    admin.configs["out"]["cleanup.policy"] = "compact"
    assert ensure_topics("b:9092", specs) == []


def test_a_watermark_topic_with_more_than_one_partition_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its one partition is the claims' total order: with three, claims in the others would
    never be seen by the check."""
    admin = FakeAdmin({"marks": dict(COMPACTED)}, partitions={"marks": 3})
    monkeypatch.setattr(kafka_io, "AdminClient", lambda config: admin)
    specs: dict[str, dict[str, Any]] = {
        "marks": {"partitions": 1, "exact_partitions": True, "replication": 1, "config": COMPACTED}
    }
    with pytest.raises(ConfigError, match=r"topic marks has 3 partitions but must have exactly 1"):
        ensure_topics("b:9092", specs)


def test_lifetimes_that_erasure_needs_bounded_are_reported_with_their_fix() -> None:
    limits = {"out": {"max.compaction.lag.ms": 604_800_000}, "dlq": {"retention.ms": 2_592_000_000}}
    actual = {
        "out": {"max.compaction.lag.ms": "9223372036854775807"},  # Kafka's default: never
        "dlq": {"retention.ms": "-1"},
    }
    problems = lifetime_problems(limits, actual, "b:9092")
    assert len(problems) == 2
    assert "topic out has max.compaction.lag.ms 9223372036854775807 ms" in problems[0]
    assert "--add-config max.compaction.lag.ms=604800000" in problems[0]
    assert "topic dlq has retention.ms unbounded" in problems[1]
    bounded = {"out": {"max.compaction.lag.ms": "86400000"}, "dlq": {"retention.ms": "1000"}}
    assert lifetime_problems(limits, bounded) == []


def test_the_topics_the_service_creates_have_bounded_lifetimes() -> None:
    specs = topic_specs(Settings())
    week, month = str(7 * 86_400_000), str(30 * 86_400_000)
    settings = Settings()
    assert specs[settings.output_topic]["config"]["max.compaction.lag.ms"] == week
    assert specs[settings.search_topic]["config"]["max.compaction.lag.ms"] == week
    assert specs[settings.search_topic]["config"]["cleanup.policy"] == "compact"
    assert specs[settings.dlq_topic]["config"]["retention.ms"] == month
    assert "retention.ms" not in specs[settings.input_topic]["config"]  # outlasts outages
    assert specs[settings.erasure_topic]["config"]["cleanup.policy"] == "compact"
