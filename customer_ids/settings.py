"""All settings in one typed place, read from environment variables and checked at start-up.

Every mistake raises ConfigError naming the variable and what is allowed. Sequences come from
the TOML file named by CUSTOMER_IDS_CONFIG when set, else one sequence from the NUMBER_* vars.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from customer_ids.errors import ConfigError
from customer_ids.number_spaces import configuration_problems
from customer_ids.numbers import MAX_COUNTER, NumberTemplate
from customer_ids.sequences import PERIODS, Router, Sequence

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:16379/0"
DEFAULT_TEMPLATE = "CU-{seq:8}-{check:luhn}"


@dataclass(frozen=True)
class Setting:
    """Documentation of one environment variable, shown by `customer-ids config` and README."""

    env: str
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP, "Kafka brokers, host:port[,host:port]"),
    Setting("REDIS_URL", DEFAULT_REDIS_URL, "Redis URL (redis:// or rediss://, password allowed)"),
    Setting(
        "REDIS_SENTINELS",
        "",
        "Sentinels as host:port[,host:port]; when set, the primary is found (and followed "
        "through failovers) through them, and REDIS_URL gives only password, TLS and db",
    ),
    Setting(
        "REDIS_SENTINEL_SERVICE", "customer-ids", "the name Sentinel monitors the primary under"
    ),
    Setting(
        "CUSTOMER_IDS_REDIS_REPLICA_ACKS",
        "auto",
        "replicas that must acknowledge a batch's allocation (WAIT) before its Kafka commit; "
        "auto: 1 when the primary has a replica, else 0",
    ),
    Setting(
        "CUSTOMER_IDS_REDIS_WAIT_MS",
        "2000",
        "longest WAIT for those acknowledgements; a batch without them aborts and retries",
    ),
    Setting("CUSTOMER_IDS_INPUT_TOPIC", "customer.created", "topic of CustomerCreated events"),
    Setting(
        "CUSTOMER_IDS_OUTPUT_TOPIC",
        "customer.id-assigned",
        "compacted topic of CustomerIdAssigned events: the durable record",
    ),
    Setting("CUSTOMER_IDS_DLQ_TOPIC", "customer.created.dlq", "dead-letter topic for bad input"),
    Setting(
        "CUSTOMER_IDS_WATERMARK_TOPIC",
        "customer-ids.watermarks",
        "compacted topic of the highest number committed per counter",
    ),
    Setting("CUSTOMER_IDS_GROUP_ID", "customer-ids", "consumer group of the service"),
    Setting(
        "CUSTOMER_IDS_TRANSACTIONAL_ID",
        "customer-ids-<hostname>",
        "transactional.id; unique per running instance, stable across its restarts",
    ),
    Setting("CUSTOMER_IDS_PARTITIONS", "6", "partitions of topics the service creates"),
    Setting("CUSTOMER_IDS_REPLICATION_FACTOR", "1", "replication factor of topics it creates"),
    Setting("CUSTOMER_IDS_BATCH_SIZE", "2500", "most records in one batch (one transaction)"),
    Setting("CUSTOMER_IDS_BATCH_WAIT_MS", "10", "longest wait to fill a batch"),
    Setting("CUSTOMER_IDS_LINGER_MS", "5", "producer linger.ms"),
    Setting("CUSTOMER_IDS_TRANSACTION_TIMEOUT_MS", "60000", "producer transaction.timeout.ms"),
    Setting("CUSTOMER_IDS_REDIS_PREFIX", "cid:", "prefix of every Redis key the service uses"),
    Setting(
        "CUSTOMER_IDS_LOCK_TIMEOUT_MS",
        "6000",
        "lease of every Redis lock (allocation, recovery); a live holder renews it every "
        "third of it, so a dead holder's lock frees within this time",
    ),
    Setting("CUSTOMER_IDS_LOCK_WAIT_MS", "5000", "longest wait for the allocation lock"),
    Setting(
        "CUSTOMER_IDS_REVERSE_INDEX",
        "off",
        "on: keep number -> customer in Redis for `lookup --number` (about 45 more bytes a "
        "customer); off: that lookup reads the output topic",
    ),
    Setting("CUSTOMER_IDS_CONFIG", "", "TOML file with [[sequences]]; overrides NUMBER_* vars"),
    Setting("CUSTOMER_IDS_SEQUENCE_NAME", "CU", "name of the default sequence"),
    Setting("CUSTOMER_IDS_NUMBER_FORMAT", DEFAULT_TEMPLATE, "number template of that sequence"),
    Setting("CUSTOMER_IDS_SEQUENCE_START", "1", "first value of that sequence"),
    Setting("CUSTOMER_IDS_SEQUENCE_PERIOD", "none", "none, daily, monthly or yearly reset"),
    Setting("CUSTOMER_IDS_TIMEZONE", "UTC", "time zone of date parts and period rollover"),
    Setting("CUSTOMER_IDS_SCRAMBLE_KEY", "", "secret key of {seq:N:scrambled} (16+ characters)"),
    Setting("CUSTOMER_IDS_METRICS_PORT", "9400", "Prometheus /metrics, /healthz, /readyz (0: off)"),
    Setting("CUSTOMER_IDS_LOG_FORMAT", "auto", "auto (console on a TTY, else JSON), json, console"),
    Setting("CUSTOMER_IDS_LOG_LEVEL", "info", "debug, info, warning or error"),
    Setting("CUSTOMER_IDS_SHUTDOWN_TIMEOUT_S", "30", "bound on a clean stop after SIGTERM"),
    Setting(
        "CUSTOMER_IDS_WORKERS",
        "1",
        "worker processes of `serve`, each a group member with transactional.id <id>-w<n> "
        "and metrics on METRICS_PORT+n",
    ),
    Setting(
        "CUSTOMER_IDS_KAFKA_CALL_TIMEOUT_S",
        "15",
        "timeout of each transactional call; a call stuck 10s past it restarts the worker",
    ),
    Setting(
        "CUSTOMER_IDS_STARTUP_TIMEOUT_S",
        "60",
        "how long a worker waits for Kafka and Redis at start-up before it exits 75 and the "
        "supervisor starts it again",
    ),
)
_DEFAULTS = {s.env: s.default for s in SETTINGS}
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if value:
        return value
    if name == "CUSTOMER_IDS_TRANSACTIONAL_ID":
        return f"customer-ids-{socket.gethostname()}"
    return _DEFAULTS[name]


def _int(env: Mapping[str, str], name: str, low: int, high: int) -> int:
    raw = _get(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; use {low}..{high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range; use {low}..{high}")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = _get(env, name).lower()
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; use one of: {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    redis_url: str = DEFAULT_REDIS_URL
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_service: str = "customer-ids"
    redis_replica_acks: int | None = None  # None: auto (1 when the primary has a replica)
    redis_wait_ms: int = 2000
    input_topic: str = "customer.created"
    output_topic: str = "customer.id-assigned"
    dlq_topic: str = "customer.created.dlq"
    watermark_topic: str = "customer-ids.watermarks"
    group_id: str = "customer-ids"
    transactional_id: str = "customer-ids-local"
    partitions: int = 6
    replication_factor: int = 1
    batch_size: int = 2500
    batch_wait_ms: int = 10
    linger_ms: int = 5
    transaction_timeout_ms: int = 60000
    redis_prefix: str = "cid:"
    lock_timeout_ms: int = 6000
    lock_wait_ms: int = 5000
    reverse_index: bool = False
    router: Router = field(
        default_factory=lambda: Router((Sequence("CU", NumberTemplate.parse(DEFAULT_TEMPLATE)),))
    )
    metrics_port: int = 9400
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    shutdown_timeout_s: int = 30
    workers: int = 1
    kafka_call_timeout_s: int = 15
    startup_timeout_s: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            bootstrap_servers=_get(env, "KAFKA_BOOTSTRAP_SERVERS"),
            redis_url=_redis_url(_get(env, "REDIS_URL")),
            redis_sentinels=_sentinels(env),
            redis_sentinel_service=_get(env, "REDIS_SENTINEL_SERVICE"),
            redis_replica_acks=_replica_acks(env),
            redis_wait_ms=_int(env, "CUSTOMER_IDS_REDIS_WAIT_MS", 10, 60_000),
            input_topic=_get(env, "CUSTOMER_IDS_INPUT_TOPIC"),
            output_topic=_get(env, "CUSTOMER_IDS_OUTPUT_TOPIC"),
            dlq_topic=_get(env, "CUSTOMER_IDS_DLQ_TOPIC"),
            watermark_topic=_get(env, "CUSTOMER_IDS_WATERMARK_TOPIC"),
            group_id=_get(env, "CUSTOMER_IDS_GROUP_ID"),
            transactional_id=_get(env, "CUSTOMER_IDS_TRANSACTIONAL_ID"),
            partitions=_int(env, "CUSTOMER_IDS_PARTITIONS", 1, 1000),
            replication_factor=_int(env, "CUSTOMER_IDS_REPLICATION_FACTOR", 1, 10),
            batch_size=_int(env, "CUSTOMER_IDS_BATCH_SIZE", 1, 100_000),
            batch_wait_ms=_int(env, "CUSTOMER_IDS_BATCH_WAIT_MS", 1, 60_000),
            linger_ms=_int(env, "CUSTOMER_IDS_LINGER_MS", 0, 10_000),
            transaction_timeout_ms=_int(env, "CUSTOMER_IDS_TRANSACTION_TIMEOUT_MS", 1000, 900_000),
            redis_prefix=_get(env, "CUSTOMER_IDS_REDIS_PREFIX"),
            lock_timeout_ms=_int(env, "CUSTOMER_IDS_LOCK_TIMEOUT_MS", 100, 600_000),
            lock_wait_ms=_int(env, "CUSTOMER_IDS_LOCK_WAIT_MS", 10, 600_000),
            reverse_index=_choice(env, "CUSTOMER_IDS_REVERSE_INDEX", ("on", "off")) == "on",
            router=_router(env),
            metrics_port=_int(env, "CUSTOMER_IDS_METRICS_PORT", 0, 65535),
            log_format=_choice(env, "CUSTOMER_IDS_LOG_FORMAT", LOG_FORMATS),  # type: ignore[arg-type]
            log_level=_choice(env, "CUSTOMER_IDS_LOG_LEVEL", LOG_LEVELS),  # type: ignore[arg-type]
            shutdown_timeout_s=_int(env, "CUSTOMER_IDS_SHUTDOWN_TIMEOUT_S", 1, 3600),
            workers=_int(env, "CUSTOMER_IDS_WORKERS", 1, 64),
            kafka_call_timeout_s=_int(env, "CUSTOMER_IDS_KAFKA_CALL_TIMEOUT_S", 1, 600),
            startup_timeout_s=_int(env, "CUSTOMER_IDS_STARTUP_TIMEOUT_S", 1, 3600),
        )
        problems = configuration_problems(settings.router.sequences)
        if problems:
            raise ConfigError("; ".join(problems))
        if settings.lock_timeout_ms * 2 > settings.transaction_timeout_ms:
            raise ConfigError(
                "CUSTOMER_IDS_LOCK_TIMEOUT_MS must be at most half of "
                "CUSTOMER_IDS_TRANSACTION_TIMEOUT_MS, so a batch fits inside its transaction"
            )
        return settings

    def masked(self) -> dict[str, str]:
        """The effective settings with secrets hidden, for `customer-ids config`."""
        out: dict[str, str] = {}
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if isinstance(value, Router):
                value = "; ".join(
                    f"{s.name}={s.template.text} start={s.start} period={s.period}"
                    for s in value.sequences
                )
            out[f.name] = str(value)
        out["redis_url"] = _mask_url(self.redis_url)
        if any(s.template.scramble_key for s in self.router.sequences):
            out["scramble_key"] = "***"
        return out


def _redis_url(url: str) -> str:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            "REDIS_URL must start with redis://, rediss:// or unix://, "
            "for example redis://127.0.0.1:6379/0"
        )
    return url


def _sentinels(env: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    raw = _get(env, "REDIS_SENTINELS")
    out = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"REDIS_SENTINELS={raw!r}: {item!r} is not host:port; use for example "
                "127.0.0.1:26379,127.0.0.1:26380"
            )
        out.append((host, int(port)))
    return tuple(out)


def _replica_acks(env: Mapping[str, str]) -> int | None:
    raw = _get(env, "CUSTOMER_IDS_REDIS_REPLICA_ACKS").lower()
    if raw == "auto":
        return None
    if not raw.isdigit() or int(raw) > 10:
        raise ConfigError(f"CUSTOMER_IDS_REDIS_REPLICA_ACKS={raw!r}: use auto or 0..10")
    return int(raw)


def _mask_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}{sep}{user}:***@{host}"


def _router(env: Mapping[str, str]) -> Router:
    path = env.get("CUSTOMER_IDS_CONFIG", "").strip()
    zone = _get(env, "CUSTOMER_IDS_TIMEZONE")
    key = _scramble_key(env)
    if not path:
        period = _choice(env, "CUSTOMER_IDS_SEQUENCE_PERIOD", PERIODS)
        return Router(
            (
                Sequence(
                    name=_get(env, "CUSTOMER_IDS_SEQUENCE_NAME"),
                    template=NumberTemplate.parse(
                        _get(env, "CUSTOMER_IDS_NUMBER_FORMAT"), zone, key
                    ),
                    start=_int(env, "CUSTOMER_IDS_SEQUENCE_START", 1, MAX_COUNTER),
                    period=period,  # type: ignore[arg-type]
                ),
            )
        )
    return load_sequences(Path(path), zone, key)


def _scramble_key(env: Mapping[str, str]) -> bytes | None:
    key = env.get("CUSTOMER_IDS_SCRAMBLE_KEY", "")
    if key and len(key) < 16:
        raise ConfigError("CUSTOMER_IDS_SCRAMBLE_KEY is too short; use 16 or more characters")
    return key.encode() or None


def _whole(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} = {value!r} is not a whole number; use 1 to {MAX_COUNTER}")
    return value


def load_sequences(path: Path, zone: str = "UTC", key: bytes | None = None) -> Router:
    """Read [[sequences]] from a TOML file; every mistake names the sequence and the field."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"CUSTOMER_IDS_CONFIG={path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"CUSTOMER_IDS_CONFIG={path}: not valid TOML: {exc}") from exc
    zone = str(data.get("timezone", zone))
    allowed = {"name", "template", "start", "period", "customer_types", "regions"}
    sequences = []
    for i, raw in enumerate(data.get("sequences", [])):
        label = raw.get("name", f"#{i + 1}")
        unknown = set(raw) - allowed
        if unknown:
            raise ConfigError(
                f"{path}: sequence {label}: unknown field(s) {sorted(unknown)}; "
                f"allowed: {sorted(allowed)}"
            )
        if "name" not in raw or "template" not in raw:
            raise ConfigError(f"{path}: sequence {label}: 'name' and 'template' are required")
        try:
            sequences.append(
                Sequence(
                    name=str(raw["name"]),
                    template=NumberTemplate.parse(str(raw["template"]), zone, key),
                    start=_whole(raw.get("start", 1), f"{path}: sequence {label}: start"),
                    period=raw.get("period", "none"),
                    customer_types=frozenset(raw.get("customer_types", [])),
                    regions=frozenset(r.upper() for r in raw.get("regions", [])),
                )
            )
        except ConfigError as exc:
            message = str(exc)
            if not message.startswith(f"sequence {label}"):
                message = f"sequence {label}: {message}"
            raise ConfigError(f"{path}: {message}") from None
    try:
        return Router(tuple(sequences))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
