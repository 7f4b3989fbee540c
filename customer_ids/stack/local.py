"""`customer-ids stack up|status|down`: the local services as one unit."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from customer_ids.stack.kafka import KafkaNode
from customer_ids.stack.kafka_cluster import KafkaCluster
from customer_ids.stack.processes import StackError
from customer_ids.stack.redis_server import RedisNode
from customer_ids.stack.registry import RegistryNode
from customer_ids.stack.secure import SecureStack
from customer_ids.stack.sentinel import ReplicatedRedis, SentinelNode


def default_state_dir() -> Path:
    return Path(os.environ.get("CUSTOMER_IDS_STACK_DIR", Path.home() / ".local/state/customer-ids"))


def default_cache_dir() -> Path:
    return Path(os.environ.get("CUSTOMER_IDS_CACHE_DIR", Path.home() / ".cache/customer-ids"))


def _port(name: str, default: str) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class LocalStack:
    kafka: KafkaNode
    redis: RedisNode
    ha: ReplicatedRedis  # started only with `up --redis-ha`
    registry: RegistryNode  # started only with `up --registry`
    cluster: KafkaCluster  # instead of `kafka` with `up --brokers 3`
    secure: SecureStack  # `up --secure`: its own broker and Redis, on their own ports

    @classmethod
    def default(cls) -> LocalStack:
        state = default_state_dir()
        redis = RedisNode(state_dir=state, port=_port("CUSTOMER_IDS_STACK_REDIS_PORT", "16379"))
        sentinel_ports = os.environ.get("CUSTOMER_IDS_STACK_SENTINEL_PORTS", "26379,26380,26381")
        return cls(
            kafka=KafkaNode(
                state_dir=state,
                cache_dir=default_cache_dir(),
                port=_port("CUSTOMER_IDS_STACK_KAFKA_PORT", "19092"),
                controller_port=_port("CUSTOMER_IDS_STACK_CONTROLLER_PORT", "19093"),
            ),
            redis=redis,
            ha=ReplicatedRedis(
                primary=redis,
                replica=RedisNode(
                    state_dir=state,
                    port=_port("CUSTOMER_IDS_STACK_REDIS_REPLICA_PORT", "16380"),
                    name="redis-replica",
                ),
                sentinels=tuple(
                    SentinelNode(state_dir=state, port=int(port))
                    for port in sentinel_ports.split(",")
                ),
            ),
            cluster=_cluster(state, _port("CUSTOMER_IDS_STACK_KAFKA_PORT", "19092")),
            secure=SecureStack(
                home=state / "secure",
                cache_dir=default_cache_dir(),
                kafka_port=_port("CUSTOMER_IDS_STACK_SECURE_KAFKA_PORT", "19492"),
                controller_port=_port("CUSTOMER_IDS_STACK_SECURE_CONTROLLER_PORT", "19493"),
                redis_port=_port("CUSTOMER_IDS_STACK_SECURE_REDIS_PORT", "16479"),
            ),
            registry=RegistryNode(
                state_dir=state,
                cache_dir=default_cache_dir(),
                port=_port("CUSTOMER_IDS_STACK_REGISTRY_PORT", "18081"),
                management_port=_port("CUSTOMER_IDS_STACK_REGISTRY_MANAGEMENT_PORT", "18082"),
            ),
        )

    def ha_on(self, redis_ha: bool) -> bool:
        """HA mode when asked for, and whenever its processes already run."""
        return redis_ha or self.ha.running()

    def registry_on(self, registry: bool) -> bool:
        return registry or self.registry.running_pid() is not None

    def cluster_on(self, brokers: int) -> bool:
        return brokers > 1 or any(self.cluster.running_pids())

    def up(self, redis_ha: bool = False, registry: bool = False, brokers: int = 1) -> float:
        """Start whatever is not running and wait for all of it; the seconds it took."""
        started = time.monotonic()
        cluster = self.cluster_on(brokers)
        if cluster and self.kafka.running_pid() is not None:
            raise StackError("a single Kafka broker is running; `customer-ids stack down` first")
        if not cluster and any(self.cluster.running_pids()):
            raise StackError("a Kafka cluster is running; `customer-ids stack down` first")
        if registry:
            self.registry.start()
        ha = self.ha_on(redis_ha)
        if ha:
            self.ha.start()
        else:
            self.redis.start()
        kafka: KafkaNode | KafkaCluster = self.cluster if cluster else self.kafka
        kafka.start()
        self.redis.wait_ready()
        if ha:
            self.ha.wait_ready()
        kafka.wait_ready()
        if self.registry_on(registry):
            self.registry.wait_ready()
        return time.monotonic() - started

    def down(self) -> list[str]:
        stopped = self.ha.stop() + self.secure.down()
        if self.registry.stop():
            stopped.append("schema registry")
        if self.kafka.stop():
            stopped.append("kafka")
        if self.cluster.stop():
            stopped.append("kafka cluster")
        if self.redis.stop():
            stopped.append("redis")
        return stopped

    def env_lines(
        self, redis_ha: bool = False, registry: bool = False, brokers: int = 1
    ) -> list[str]:
        if self.cluster_on(brokers):
            lines = [
                f"export KAFKA_BOOTSTRAP_SERVERS={self.cluster.bootstrap}",
                f"export CUSTOMER_IDS_REPLICATION_FACTOR={min(3, len(self.cluster.nodes))}",
            ]
        else:
            lines = [f"export KAFKA_BOOTSTRAP_SERVERS={self.kafka.bootstrap}"]
        if self.ha_on(redis_ha):
            lines += self.ha.env_lines()
        else:
            lines.append(f"export REDIS_URL={self.redis.url}")
        if self.registry_on(registry):
            # A comment, not an export: with SCHEMA_REGISTRY_URL set, everything switches to
            # the Confluent wire format, which should be a decision, not a side effect.
            lines.append(f"# schema registry: SCHEMA_REGISTRY_URL={self.registry.url}")
        return lines


def _cluster(state: Path, base_port: int, size: int = 3) -> KafkaCluster:
    """Node i on base+100*i (client) and base+100*i+1 (controller): 19092/19093, 19192/..."""
    ports = [(base_port + 100 * i, base_port + 100 * i + 1) for i in range(size)]
    return KafkaCluster.on_ports(state, default_cache_dir(), ports, name="kafka-cluster")
