"""Every setting of the service declared once: its environment variable, default, bounds and
meaning live on one field of `Settings` (declared as env_settings.py says). `from_env`, the
checks at start-up, masking, `customer-ids config`, `--help` and the README's table all follow
from those fields.

Every mistake raises ConfigError naming the variable and what is allowed. Sequences come from
the TOML file named by CUSTOMER_IDS_CONFIG when set, else one sequence from the NUMBER_* vars.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    NoDecode,
)

from customer_ids.adapters.schema_registry import RegistryConfig
from customer_ids.config.env_settings import EnvSettings, Setting, mask_url, setting
from customer_ids.config.sequences_file import load_sequences
from customer_ids.domain.errors import ConfigError
from customer_ids.domain.number_spaces import configuration_problems
from customer_ids.domain.numbers import MAX_COUNTER, NumberTemplate
from customer_ids.domain.sequences import Period, Router, Sequence

__all__ = ["SETTINGS", "Setting", "Settings"]

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:16379/0"
DEFAULT_TEMPLATE = "CU-{seq:8}-{check:luhn}"
LogFormat = Literal["auto", "json", "console"]
Compatibility = Literal[
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"
]
LogLevel = Literal["debug", "info", "warning", "error"]
KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def _sentinel_list(raw: object) -> object:
    """'host:port,host:port' -> ((host, port), ...)."""
    if not isinstance(raw, str):
        return raw
    out = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"{item!r} is not host:port; use for example 127.0.0.1:26379,127.0.0.1:26380"
            )
        out.append((host, int(port)))
    return tuple(out)


def _auto_or_count(raw: object) -> object:
    if not isinstance(raw, str):
        return raw
    text = raw.strip().lower()
    if text == "auto":
        return None
    if not text.isdigit() or int(text) > 10:
        raise ValueError("use auto or 0..10")
    return int(text)


def _on_off(raw: object) -> object:
    if isinstance(raw, str):
        if raw.strip().lower() not in ("on", "off"):
            raise ValueError("use on or off")
        return raw.strip().lower() == "on"
    return raw


def _lower(raw: object) -> object:
    return raw.strip().lower() if isinstance(raw, str) else raw


Sentinels = Annotated[tuple[tuple[str, int], ...], NoDecode, BeforeValidator(_sentinel_list)]
ReplicaAcks = Annotated[int | None, BeforeValidator(_auto_or_count)]
OnOff = Annotated[bool, BeforeValidator(_on_off)]


class Settings(EnvSettings):
    """The service's configuration, read from the environment and checked whole at start-up."""

    bootstrap_servers: str = setting(
        DEFAULT_BOOTSTRAP, "KAFKA_BOOTSTRAP_SERVERS", "Kafka brokers, host:port[,host:port]"
    )
    kafka_security_protocol: KafkaProtocol = setting(
        "PLAINTEXT",
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (every client; `stack env ROLE` prints "
        "a role's security settings)",
    )
    kafka_sasl_mechanism: KafkaMechanism | None = setting(
        None,
        "KAFKA_SASL_MECHANISM",
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)",
        shown="",
    )
    kafka_sasl_username: str = setting("", "KAFKA_SASL_USERNAME", "SASL user (with SASL_*)")
    kafka_sasl_password: SecretStr | None = setting(
        None, "KAFKA_SASL_PASSWORD", "SASL password (with SASL_*)", shown=""
    )
    kafka_ssl_ca_location: Path | None = setting(
        None,
        "KAFKA_SSL_CA_LOCATION",
        "CA certificate (PEM) that signed the brokers' certificates (with SSL, SASL_SSL); "
        "unset: the system's CAs",
        shown="",
    )
    kafka_ssl_certificate_location: Path | None = setting(
        None,
        "KAFKA_SSL_CERTIFICATE_LOCATION",
        "client certificate (PEM) for brokers that ask for one (ssl.client.auth)",
        shown="",
    )
    kafka_ssl_key_location: Path | None = setting(
        None, "KAFKA_SSL_KEY_LOCATION", "private key (PEM) of that client certificate", shown=""
    )
    redis_url: str = setting(
        DEFAULT_REDIS_URL,
        "REDIS_URL",
        "Redis URL (redis:// or rediss://, password allowed)",
    )
    redis_ssl_ca_location: Path | None = setting(
        None,
        "REDIS_SSL_CA_LOCATION",
        "CA certificate (PEM) that signed the Redis servers' certificates (rediss://; also "
        "the Sentinels' when they use TLS); unset: the system's CAs",
        shown="",
    )
    redis_ssl_certificate_location: Path | None = setting(
        None,
        "REDIS_SSL_CERTIFICATE_LOCATION",
        "client certificate (PEM) for servers that ask for one (tls-auth-clients yes)",
        shown="",
    )
    redis_ssl_key_location: Path | None = setting(
        None, "REDIS_SSL_KEY_LOCATION", "private key (PEM) of that client certificate", shown=""
    )
    redis_sentinels: Sentinels = setting(
        (),
        "REDIS_SENTINELS",
        "Sentinels as host:port[,host:port]; when set, the primary is found (and followed "
        "through failovers) through them, and REDIS_URL gives only password, TLS and db",
        shown="",
    )
    redis_sentinel_service: str = setting(
        "customer-ids", "REDIS_SENTINEL_SERVICE", "the name Sentinel monitors the primary under"
    )
    redis_replica_acks: ReplicaAcks = setting(
        None,
        "CUSTOMER_IDS_REDIS_REPLICA_ACKS",
        "replicas that must acknowledge a batch's allocation (WAIT) before its Kafka commit; "
        "auto: 1 when the primary has a replica, else 0",
        shown="auto",
    )
    redis_wait_ms: int = setting(
        2000,
        "CUSTOMER_IDS_REDIS_WAIT_MS",
        "longest WAIT for those acknowledgements; a batch without them aborts and retries",
        ge=10,
        le=60_000,
    )
    input_topic: str = setting(
        "customer.created", "CUSTOMER_IDS_INPUT_TOPIC", "topic of CustomerCreated events"
    )
    output_topic: str = setting(
        "customer.id-assigned",
        "CUSTOMER_IDS_OUTPUT_TOPIC",
        "compacted topic of CustomerIdAssigned events: the durable record",
    )
    dlq_topic: str = setting(
        "customer.created.dlq", "CUSTOMER_IDS_DLQ_TOPIC", "dead-letter topic for bad input"
    )
    watermark_topic: str = setting(
        "customer-ids.watermarks",
        "CUSTOMER_IDS_WATERMARK_TOPIC",
        "compacted topic of the highest number committed per counter",
    )
    search_topic: str = setting(
        "customer-ids.search-terms",
        "CUSTOMER_IDS_SEARCH_TOPIC",
        "the service's own compacted topic of each customer's search digests (read by the "
        "service alone: it rebuilds the search index)",
    )
    erasure_topic: str = setting(
        "customer.erasure-requested",
        "CUSTOMER_IDS_ERASURE_TOPIC",
        "compacted topic of CustomerErasureRequested events (`forget`, a CRM's delete hook): "
        "the record of every erasure",
    )
    merge_topic: str = setting(
        "customer.merge-requested",
        "CUSTOMER_IDS_MERGE_TOPIC",
        "compacted topic of CustomerMergeRequested events (`merge`, `unmerge`, a CRM's merge "
        "hook, an MDM tool), keyed by the merged customer",
    )
    group_id: str = setting(
        "customer-ids", "CUSTOMER_IDS_GROUP_ID", "consumer group of the service"
    )
    transactional_id: str = setting(
        lambda: f"customer-ids-{socket.gethostname()}",
        "CUSTOMER_IDS_TRANSACTIONAL_ID",
        "transactional.id; unique per running instance, stable across its restarts",
        shown="customer-ids-<hostname>",
    )
    partitions: int = setting(
        6, "CUSTOMER_IDS_PARTITIONS", "partitions of topics the service creates", ge=1, le=1000
    )
    replication_factor: int = setting(
        0,
        "CUSTOMER_IDS_REPLICATION_FACTOR",
        "replication factor of topics it creates; 0: the brokers' default.replication.factor "
        "(and their min.insync.replicas)",
        ge=0,
        le=10,
    )
    batch_size: int = setting(
        2500,
        "CUSTOMER_IDS_BATCH_SIZE",
        "most records in one batch (one transaction)",
        ge=1,
        le=100_000,
    )
    batch_wait_ms: int = setting(
        100,
        "CUSTOMER_IDS_BATCH_WAIT_MS",
        "longest wait for a first record; a batch takes what has arrived, never waits to fill",
        ge=1,
        le=60_000,
    )
    linger_ms: int = setting(0, "CUSTOMER_IDS_LINGER_MS", "producer linger.ms", ge=0, le=10_000)
    transaction_timeout_ms: int = setting(
        60000,
        "CUSTOMER_IDS_TRANSACTION_TIMEOUT_MS",
        "producer transaction.timeout.ms",
        ge=1000,
        le=900_000,
    )
    redis_prefix: str = setting(
        "cid:", "CUSTOMER_IDS_REDIS_PREFIX", "prefix of every Redis key the service uses"
    )
    lock_timeout_ms: int = setting(
        6000,
        "CUSTOMER_IDS_LOCK_TIMEOUT_MS",
        "lease of every Redis lock (allocation, recovery); a live holder renews it every "
        "third of it, so a dead holder's lock frees within this time",
        ge=100,
        le=600_000,
    )
    lock_wait_ms: int = setting(
        5000,
        "CUSTOMER_IDS_LOCK_WAIT_MS",
        "longest wait for the allocation lock",
        ge=10,
        le=600_000,
    )
    reverse_index: OnOff = setting(
        False,
        "CUSTOMER_IDS_REVERSE_INDEX",
        "on: keep number -> customer in Redis for `lookup --number` (about 45 more bytes a "
        "customer); off: that lookup reads the output topic",
        shown="off",
    )
    sequences_file: Path | None = setting(
        None,
        "CUSTOMER_IDS_CONFIG",
        "TOML file with [[sequences]]; overrides NUMBER_* vars",
        shown="",
    )
    sequence_name: str = setting("CU", "CUSTOMER_IDS_SEQUENCE_NAME", "name of the default sequence")
    number_format: str = setting(
        DEFAULT_TEMPLATE, "CUSTOMER_IDS_NUMBER_FORMAT", "number template of that sequence"
    )
    sequence_start: int = setting(
        1,
        "CUSTOMER_IDS_SEQUENCE_START",
        "first value of that sequence",
        ge=1,
        le=MAX_COUNTER,
    )
    sequence_period: Period = setting(
        "none", "CUSTOMER_IDS_SEQUENCE_PERIOD", "none, daily, monthly or yearly reset"
    )
    timezone: str = setting(
        "UTC", "CUSTOMER_IDS_TIMEZONE", "time zone of date parts and period rollover"
    )
    scramble_key: SecretStr | None = setting(
        None,
        "CUSTOMER_IDS_SCRAMBLE_KEY",
        "secret key of {seq:N:scrambled} (16+ characters)",
        shown="",
    )
    schema_registry_url: str = setting(
        "",
        "SCHEMA_REGISTRY_URL",
        "a registry with Confluent's API (Apicurio: http://host:port/apis/ccompat/v7); set: "
        "values are written in the Confluent wire format with schemas registered there; "
        "unset: Avro single-object encoding. Both are always read",
    )
    schema_registry_user: str = setting(
        "", "SCHEMA_REGISTRY_USER", "basic-auth user of the registry (with the password)"
    )
    schema_registry_password: SecretStr | None = setting(
        None, "SCHEMA_REGISTRY_PASSWORD", "basic-auth password of the registry", shown=""
    )
    schema_compatibility: Compatibility = setting(
        "BACKWARD",
        "CUSTOMER_IDS_SCHEMA_COMPATIBILITY",
        "compatibility level set on a subject that has none when our schema is registered",
    )
    search_key: SecretStr | None = setting(
        None,
        "CUSTOMER_IDS_SEARCH_KEY",
        "secret HMAC key of the search index (email, phone -> customer; 32+ characters); "
        "unset: no index is kept and search by personal data is off",
        shown="",
    )
    search_key_previous: SecretStr | None = setting(
        None,
        "CUSTOMER_IDS_SEARCH_KEY_PREVIOUS",
        "the key before a rotation: searches try both until the index is rebuilt",
        shown="",
    )
    metrics_port: int = setting(
        9400,
        "CUSTOMER_IDS_METRICS_PORT",
        "Prometheus /metrics, /healthz, /readyz (0: off)",
        ge=0,
        le=65535,
    )
    log_format: LogFormat = setting(
        "auto", "CUSTOMER_IDS_LOG_FORMAT", "auto (console on a TTY, else JSON), json, console"
    )
    log_level: LogLevel = setting("info", "CUSTOMER_IDS_LOG_LEVEL", "debug, info, warning or error")
    shutdown_timeout_s: int = setting(
        30,
        "CUSTOMER_IDS_SHUTDOWN_TIMEOUT_S",
        "bound on a clean stop after SIGTERM",
        ge=1,
        le=3600,
    )
    workers: int = setting(
        1,
        "CUSTOMER_IDS_WORKERS",
        "worker processes of `serve`, each a group member with transactional.id <id>-w<n> "
        "and metrics on METRICS_PORT+n",
        ge=1,
        le=64,
    )
    connect_timeout_s: float = setting(
        10.0,
        "CUSTOMER_IDS_CONNECT_TIMEOUT_S",
        "how long a command run by a person waits for Kafka, Redis or the registry before it "
        "says which it could not reach (exit 69); `serve` and `api` wait on",
        gt=0,
        le=600,
    )
    kafka_call_timeout_s: int = setting(
        15,
        "CUSTOMER_IDS_KAFKA_CALL_TIMEOUT_S",
        "timeout of each transactional call; a call stuck 10s past it restarts the worker",
        ge=1,
        le=600,
    )
    startup_timeout_s: int = setting(
        60,
        "CUSTOMER_IDS_STARTUP_TIMEOUT_S",
        "how long a worker waits for Kafka and Redis at start-up before it exits 75 and the "
        "supervisor starts it again",
        ge=1,
        le=3600,
    )

    _router: Router = PrivateAttr()

    @field_validator("sequence_period", "log_format", "log_level", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object) -> object:
        return _lower(value)

    @field_validator("schema_compatibility", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("schema_registry_url")
    @classmethod
    def _http(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError(
                "must start with http:// or https://, e.g. http://127.0.0.1:18081/apis/ccompat/v7"
            )
        return url.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "must start with redis://, rediss:// or unix://, for example "
                "redis://127.0.0.1:6379/0"
            )
        return url

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_name(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "redis_ssl_ca_location",
        "redis_ssl_certificate_location",
        "redis_ssl_key_location",
        "kafka_ssl_ca_location",
        "kafka_ssl_certificate_location",
        "kafka_ssl_key_location",
    )
    @classmethod
    def _readable_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no file at {path}; give the path of a PEM file")
        return path

    @field_validator("scramble_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 16:
            raise ValueError("is too short; use 16 or more characters")
        return key

    @field_validator("search_key", "search_key_previous")
    @classmethod
    def _long_search_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 32:
            raise ValueError("is too short; use 32 or more characters (e.g. openssl rand -hex 32)")
        return key

    @model_validator(mode="after")
    def _whole_configuration(self) -> Settings:
        """Checks that need several fields, and the router built from them."""
        key = self.scramble_key.get_secret_value().encode() if self.scramble_key else None
        if self.sequences_file is not None:
            self._router = load_sequences(self.sequences_file, self.timezone, key)
        else:
            try:
                template = NumberTemplate.parse(self.number_format, self.timezone, key)
            except ConfigError as exc:
                raise ConfigError(f"CUSTOMER_IDS_NUMBER_FORMAT: {exc}") from None
            self._router = Router(
                (Sequence(self.sequence_name, template, self.sequence_start, self.sequence_period),)
            )
        problems = configuration_problems(self._router.sequences)
        if problems:
            raise ConfigError("; ".join(problems))
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not (self.kafka_sasl_mechanism and self.kafka_sasl_username):
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}: set "
                "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD too "
                "(`customer-ids stack env ROLE` prints them for the local secure stack)"
            )
        if self.redis_tls() and not self.redis_url.startswith("rediss://"):
            raise ConfigError(
                "REDIS_SSL_* settings are set but REDIS_URL does not use TLS: start it with "
                "rediss:// (or unset REDIS_SSL_*)"
            )
        if self.lock_timeout_ms * 2 > self.transaction_timeout_ms:
            raise ConfigError(
                "CUSTOMER_IDS_LOCK_TIMEOUT_MS must be at most half of "
                "CUSTOMER_IDS_TRANSACTION_TIMEOUT_MS, so a batch fits inside its transaction"
            )
        return self

    def redis_tls(self) -> dict[str, str]:
        """redis-py's TLS options from the REDIS_SSL_* settings (used with rediss:// URLs)."""
        chosen = {
            "ssl_ca_certs": self.redis_ssl_ca_location,
            "ssl_certfile": self.redis_ssl_certificate_location,
            "ssl_keyfile": self.redis_ssl_key_location,
        }
        return {key: str(path) for key, path in chosen.items() if path is not None}

    def registry(self) -> RegistryConfig | None:
        """Where schemas live, when a registry is configured."""
        if not self.schema_registry_url:
            return None
        password = self.schema_registry_password
        return RegistryConfig(
            self.schema_registry_url,
            self.schema_registry_user,
            password.get_secret_value() if password else "",
            self.schema_compatibility,
        )

    @property
    def router(self) -> Router:
        """The sequences and the rule that picks one per customer."""
        return self._router

    def masked(self) -> dict[str, str]:
        """The effective settings with secrets hidden, for `customer-ids config`."""
        out = {name: str(getattr(self, name)) for name in type(self).model_fields}
        out["redis_url"] = mask_url(self.redis_url)
        out["redis_sentinels"] = ",".join(f"{h}:{p}" for h, p in self.redis_sentinels)
        acks = self.redis_replica_acks
        out["redis_replica_acks"] = "auto" if acks is None else str(acks)
        out["reverse_index"] = "on" if self.reverse_index else "off"
        out["sequences_file"] = str(self.sequences_file or "")
        out["kafka_sasl_mechanism"] = self.kafka_sasl_mechanism or ""
        for path in (
            "kafka_ssl_ca_location",
            "kafka_ssl_certificate_location",
            "kafka_ssl_key_location",
            "redis_ssl_ca_location",
            "redis_ssl_certificate_location",
            "redis_ssl_key_location",
        ):
            out[path] = str(getattr(self, path) or "")
        for secret in (
            "kafka_sasl_password",
            "scramble_key",
            "search_key",
            "search_key_previous",
            "schema_registry_password",
        ):
            out[secret] = "***" if getattr(self, secret) else ""
        out["sequences"] = "; ".join(
            f"{s.name}={s.template.text} start={s.start} period={s.period}"
            for s in self.router.sequences
        )
        return out


SETTINGS: tuple[Setting, ...] = Settings.documented()
