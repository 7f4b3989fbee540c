"""Small helpers over confluent-kafka that several commands share: client config, and topic
creation with AdminClient that also checks the topics that already exist."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from customer_ids.adapters.logs import get_logger, kafka_logger
from customer_ids.domain.errors import ConfigError

log = get_logger(__name__)
POLICY = "cleanup.policy"

# Passed straight through to every client, so SASL and TLS work without code changes.
SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
}


# The Java client's placement of keyed records (murmur2 of the key bytes): a customer's records
# land on the same partition whether a Java or a Python service produced them, so per-key order
# holds across stacks and the output joins with Java-produced topics without a repartition.
# (librdkafka's own default, consistent_random, hashes with CRC32: another partition for about
# five keys in six.) Records without a key still spread at random.
JAVA_COMPATIBLE_PARTITIONER = "murmur2_random"


# What a broker answers when it refuses our credentials or permissions: no wait cures these.
AUTH_CODES = {
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


def refusal(bootstrap: str, errors: Iterable[KafkaError]) -> str | None:
    """What to change when one of `errors` is the broker refusing us; None when none is."""
    for error in errors:
        if error.code() in AUTH_CODES:
            return (
                f"Kafka at {bootstrap} refused us: {error.str()}; check KAFKA_SECURITY_PROTOCOL, "
                "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
    return None


def producer_config(
    bootstrap: str, extra: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """client_config for a producer: also the Java client's partitioner."""
    return client_config(
        bootstrap, {"partitioner": JAVA_COMPATIBLE_PARTITIONER, **(extra or {})}, env
    )


def client_config(
    bootstrap: str, extra: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Base config for every client: brokers, security pass-through, our logger, extras."""
    env = os.environ if env is None else env
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": kafka_logger()}
    for var, key in SECURITY_ENV.items():
        if env.get(var):
            config[key] = env[var]
    config.update(extra or {})
    return config


def ensure_topics(
    bootstrap: str,
    specs: Mapping[str, dict[str, Any]],
    timeout: float = 30.0,
    client: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that are missing, then check that those that already existed have
    the cleanup.policy their spec asks for; returns the names created.

    `specs` maps name -> {"partitions": n, "replication": r, "config": {...}}. A topic made by
    someone else with cleanup.policy=delete would silently expire the record of truth, so it
    raises ConfigError saying how to fix it. `client` adds client settings (the secure stack's
    admin login). A principal without the right to create a missing topic (least privilege:
    the service has none) gets ConfigError naming the topics and who makes them.
    """
    admin = AdminClient(client_config(bootstrap, client))
    metadata = admin.list_topics(timeout=timeout).topics
    existing = set(metadata)
    check_partition_counts(
        {n: s["partitions"] for n, s in specs.items() if s.get("exact_partitions")},
        {n: len(metadata[n].partitions) for n in existing if n in specs},
    )
    wanted = [
        NewTopic(
            name,
            num_partitions=spec["partitions"],
            replication_factor=spec["replication"],
            config=spec.get("config", {}),
        )
        for name, spec in specs.items()
        if name not in existing
    ]
    created = []
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
            try:
                future.result()
                created.append(name)
            except Exception as exc:
                if (
                    exc.args
                    and getattr(exc.args[0], "code", lambda: None)()
                    == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    continue  # another instance created it at the same moment
                if exc.args and getattr(exc.args[0], "code", lambda: None)() in AUTH_CODES:
                    missing = ", ".join(sorted(n.topic for n in wanted))
                    raise ConfigError(
                        f"topics {missing} are missing (or hidden from this principal) and "
                        f"Kafka refused to let us create them ({exc.args[0].str()}): an "
                        "administrator creates them (on the "
                        "local stack `customer-ids stack up --secure` does), or grant this "
                        "principal Create on them"
                    ) from None
                raise
    to_check = [
        name
        for name, spec in specs.items()
        if POLICY in spec.get("config", {}) and name not in created
    ]
    if to_check:
        expected = {name: specs[name].get("config", {}) for name in to_check}
        check_topic_policies(expected, _describe_topics(admin, to_check, timeout), bootstrap)
    limits = {n: s["limits"] for n, s in specs.items() if s.get("limits") and n not in created}
    if limits:
        described = _describe_topics(admin, list(limits), timeout)
        for problem in lifetime_problems(limits, described, bootstrap):
            # Reported, not refused: shortening a lifetime is the operator's decision.
            log.warning("topic_lifetime_unbounded", problem=problem)
    return created


def lifetime_problems(
    limits: Mapping[str, Mapping[str, int]],
    actual: Mapping[str, Mapping[str, str]],
    bootstrap: str = "HOST:PORT",
) -> list[str]:
    """Each topic setting (a time in ms) that is unbounded or longer than its limit: what an
    erasure cannot rewrite stays in such a topic (README, "Personal data")."""
    problems = []
    for topic, wanted in limits.items():
        for key, most in wanted.items():
            raw = actual.get(topic, {}).get(key)
            if raw is None:
                continue
            value = int(raw)
            if value < 0 or value > most:
                shown = "unbounded" if value < 0 else f"{value} ms"
                problems.append(
                    f"topic {topic} has {key} {shown}, more than the {most} ms that erasure "
                    f"needs. Fix: kafka-configs.sh --bootstrap-server {bootstrap} --alter "
                    f"--entity-type topics --entity-name {topic} --add-config {key}={most}"
                )
    return problems


def check_partition_counts(wanted: Mapping[str, int], actual: Mapping[str, int]) -> None:
    """Raise ConfigError for a topic that must have exactly its spec's partitions and has not
    (the watermark topic: its one partition is the claims' total order)."""
    wrong = {t: n for t, n in actual.items() if t in wanted and n != wanted[t]}
    if wrong:
        raise ConfigError(
            "; ".join(
                f"topic {t} has {n} partitions but must have exactly {wanted[t]}: the service "
                "orders every claim of a number in it. Create it anew with that many "
                "partitions (its records can be copied over) or point "
                "CUSTOMER_IDS_WATERMARK_TOPIC at a new topic name"
                for t, n in sorted(wrong.items())
            )
        )


def _describe_topics(
    admin: AdminClient, names: list[str], timeout: float
) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    described: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            entries = future.result()
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise ConfigError(
                    f"Kafka refused to describe topic {resource.name}'s configuration: grant "
                    "this principal DescribeConfigs on the topic"
                ) from exc
            raise
        described[resource.name] = {key: entry.value for key, entry in entries.items()}
    return described


def check_topic_policies(
    expected: Mapping[str, Mapping[str, str]],
    actual: Mapping[str, Mapping[str, str]],
    bootstrap: str = "HOST:PORT",
) -> None:
    """Raise ConfigError naming every topic whose cleanup.policy lacks what `expected` asks.

    `expected` maps topic -> its spec's config; `actual` maps topic -> its described config.
    A policy of compact,delete still deletes by retention, so it passes only when both
    retention.ms and retention.bytes are unbounded (-1).
    """
    problems = []
    for topic, config in expected.items():
        wanted = config.get(POLICY)
        if wanted is None or topic not in actual:
            continue
        current = actual[topic].get(POLICY, "delete")  # Kafka's default
        policies = {p.strip() for p in current.split(",")}
        missing = set(wanted.split(",")) - policies
        fix = (
            f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics "
            f"--entity-name {topic} --add-config {POLICY}={wanted}"
        )
        if missing:
            problems.append(
                f"topic {topic} has {POLICY}={current} but must be {wanted}: it holds records "
                f"the service must never lose. Fix: {fix}"
            )
        elif "delete" in policies and "delete" not in wanted:
            bounded = {
                key: actual[topic].get(key)
                for key in ("retention.ms", "retention.bytes")
                if actual[topic].get(key, "-1") != "-1"
            }
            if bounded:
                limits = ", ".join(f"{key}={value}" for key, value in bounded.items())
                problems.append(
                    f"topic {topic} has {POLICY}={current} with {limits}, so its records "
                    f"expire; it must be {wanted}. Fix: {fix}"
                )
    if problems:
        raise ConfigError("; ".join(problems))
