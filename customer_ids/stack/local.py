"""`customer-ids stack up|status|down`: the two local services as one unit."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from customer_ids.stack.kafka import KafkaNode
from customer_ids.stack.redis_server import RedisNode


def default_state_dir() -> Path:
    return Path(os.environ.get("CUSTOMER_IDS_STACK_DIR", Path.home() / ".local/state/customer-ids"))


def default_cache_dir() -> Path:
    return Path(os.environ.get("CUSTOMER_IDS_CACHE_DIR", Path.home() / ".cache/customer-ids"))


@dataclass(frozen=True)
class LocalStack:
    kafka: KafkaNode
    redis: RedisNode

    @classmethod
    def default(cls) -> LocalStack:
        state = default_state_dir()
        return cls(
            kafka=KafkaNode(
                state_dir=state,
                cache_dir=default_cache_dir(),
                port=int(os.environ.get("CUSTOMER_IDS_STACK_KAFKA_PORT", "19092")),
                controller_port=int(os.environ.get("CUSTOMER_IDS_STACK_CONTROLLER_PORT", "19093")),
            ),
            redis=RedisNode(
                state_dir=state, port=int(os.environ.get("CUSTOMER_IDS_STACK_REDIS_PORT", "16379"))
            ),
        )

    def up(self) -> float:
        """Start whatever is not running and wait for both; the seconds it took."""
        started = time.monotonic()
        self.redis.start()
        self.kafka.start()
        self.redis.wait_ready()
        self.kafka.wait_ready()
        return time.monotonic() - started

    def down(self) -> list[str]:
        stopped = []
        if self.kafka.stop():
            stopped.append("kafka")
        if self.redis.stop():
            stopped.append("redis")
        return stopped

    def env_lines(self) -> list[str]:
        return [
            f"export KAFKA_BOOTSTRAP_SERVERS={self.kafka.bootstrap}",
            f"export REDIS_URL={self.redis.url}",
        ]
