"""`customer-ids stack up|status|down`: the local services as one unit."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from customer_ids.stack.kafka import KafkaNode
from customer_ids.stack.redis_server import RedisNode
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
        )

    def ha_on(self, redis_ha: bool) -> bool:
        """HA mode when asked for, and whenever its processes already run."""
        return redis_ha or self.ha.running()

    def up(self, redis_ha: bool = False) -> float:
        """Start whatever is not running and wait for all of it; the seconds it took."""
        started = time.monotonic()
        ha = self.ha_on(redis_ha)
        if ha:
            self.ha.start()
        else:
            self.redis.start()
        self.kafka.start()
        self.redis.wait_ready()
        if ha:
            self.ha.wait_ready()
        self.kafka.wait_ready()
        return time.monotonic() - started

    def down(self) -> list[str]:
        stopped = self.ha.stop()
        if self.kafka.stop():
            stopped.append("kafka")
        if self.redis.stop():
            stopped.append("redis")
        return stopped

    def env_lines(self, redis_ha: bool = False) -> list[str]:
        kafka = f"export KAFKA_BOOTSTRAP_SERVERS={self.kafka.bootstrap}"
        if self.ha_on(redis_ha):
            return [kafka, *self.ha.env_lines()]
        return [kafka, f"export REDIS_URL={self.redis.url}"]
