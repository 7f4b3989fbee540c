"""Small helpers over confluent-kafka that several commands share: client config and topic
creation with AdminClient."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from customer_ids.logs import kafka_logger

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
    bootstrap: str, specs: Mapping[str, dict[str, Any]], timeout: float = 30.0
) -> list[str]:
    """Create the topics that are missing; returns the names created.

    `specs` maps name -> {"partitions": n, "replication": r, "config": {...}}.
    """
    admin = AdminClient(client_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout).topics)
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
                raise
    return created
