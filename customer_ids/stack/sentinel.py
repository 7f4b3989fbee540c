"""Redis high availability for the local stack (`stack up --redis-ha`): one replica of the
stack's Redis and three Sentinels that fail over to it, the way Redis is run in production."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from customer_ids.stack.processes import StackError, read_pid, require_program, spawn, stop, tail
from customer_ids.stack.redis_server import RedisNode

SERVICE = "customer-ids"
QUORUM = 2


def local_client(port: int, timeout: float = 1.0) -> redis.Redis:
    """A client for a quick look: no retries, which would add seconds to each refused call."""
    return redis.Redis(
        port=port, socket_timeout=timeout, decode_responses=True, retry=Retry(NoBackoff(), 0)
    )


def sentinel_config(
    port: int,
    folder: Path,
    service: str,
    primary_port: int,
    down_after_ms: int = 2000,
    failover_timeout_ms: int = 10000,
) -> str:
    """A fresh sentinel.conf; Sentinel rewrites it as it learns (peers, replicas, failovers)."""
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            "daemonize no",
            f'dir "{folder}"',
            f"sentinel monitor {service} 127.0.0.1 {primary_port} {QUORUM}",
            f"sentinel down-after-milliseconds {service} {down_after_ms}",
            f"sentinel failover-timeout {service} {failover_timeout_ms}",
            f"sentinel parallel-syncs {service} 1",
            "",
        ]
    )


@dataclass(frozen=True)
class SentinelNode:
    """One local Sentinel (`redis-server sentinel.conf --sentinel`): its port and its folder."""

    state_dir: Path
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return self.state_dir / f"sentinel-{self.port}"

    @property
    def config(self) -> Path:
        return self.home / "sentinel.conf"

    @property
    def pid_file(self) -> Path:
        return self.home / "sentinel.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "sentinel.log"

    def running_pid(self) -> int | None:
        return read_pid(self.pid_file)

    def recorded_primary(self) -> int | None:
        """The primary's port as this Sentinel last wrote it down (it rewrites the monitor
        line after a failover), so a restart keeps the roles the last failover left."""
        try:
            text = self.config.read_text()
        except FileNotFoundError:
            return None
        match = re.search(rf"^sentinel monitor {SERVICE} \S+ (\d+) ", text, re.MULTILINE)
        return int(match.group(1)) if match else None

    def start(self, primary_port: int) -> None:
        if self.running_pid() is not None:
            return
        server = require_program("redis-server", "apt-get install -y redis-server")
        self.home.mkdir(parents=True, exist_ok=True)
        if self.recorded_primary() != primary_port:
            self.config.write_text(sentinel_config(self.port, self.home, SERVICE, primary_port))
        spawn([server, str(self.config), "--sentinel"], self.pid_file, self.log_file, self.home)

    def client(self) -> redis.Redis:
        return local_client(self.port)

    def primary_address(self) -> str | None:
        try:
            with self.client() as client:
                found = client.sentinel_get_master_addr_by_name(SERVICE)
        except redis.RedisError:
            return None
        return f"{found[0]}:{found[1]}" if found else None

    def stop(self) -> bool:
        return stop(self.pid_file, grace_seconds=10)


@dataclass(frozen=True)
class ReplicatedRedis:
    """The stack's Redis, a replica of it and three Sentinels watching the pair."""

    primary: RedisNode
    replica: RedisNode
    sentinels: tuple[SentinelNode, ...]

    def running(self) -> bool:
        """Whether any part beyond the stack's own Redis runs (HA mode is on)."""
        nodes: list[RedisNode | SentinelNode] = [self.replica, *self.sentinels]
        return any(node.running_pid() is not None for node in nodes)

    def primary_port(self) -> int:
        """The port of the current primary: a running server that says so, else the one the
        Sentinels recorded, else the stack's Redis."""
        ports = (self.primary.port, self.replica.port)
        recorded = self.sentinels[0].recorded_primary()
        candidates = ([recorded] if recorded in ports else []) + list(ports)
        for port in candidates:
            try:
                with local_client(port) as client:
                    role = client.execute_command("ROLE")
            except redis.RedisError:
                continue
            if role[0] == "master":
                return port
        return recorded if recorded in ports else self.primary.port

    def start(self) -> None:
        primary = self.primary_port()
        for node in (self.primary, self.replica):
            node.start(replica_of=None if node.port == primary else primary)
        # Sentinels learn about replicas from the primary's INFO, every 10 s: start them once
        # the replica is in sync, so that their first INFO already lists it.
        replica = self.replica if primary == self.primary.port else self.primary
        self._wait_in_sync(replica, timeout=30.0)
        for sentinel in self.sentinels:
            sentinel.start(primary)

    @staticmethod
    def _wait_in_sync(replica: RedisNode, timeout: float) -> None:
        """Best effort: the Sentinels find a late replica too, only later."""
        deadline = time.monotonic() + timeout
        with local_client(replica.port) as client:
            while time.monotonic() < deadline and replica.running_pid() is not None:
                try:
                    if client.info("replication").get("master_link_status") == "up":
                        return
                except redis.RedisError:
                    pass
                time.sleep(0.2)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every Sentinel knows the primary, the replica and the other Sentinels:
        only then can two of them agree on a failover."""
        self.replica.wait_ready()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sentinel in self.sentinels:
                if sentinel.running_pid() is None:
                    raise StackError("a Sentinel exited:\n" + tail(sentinel.log_file))
            if all(self._sentinel_ready(s) for s in self.sentinels):
                return
            time.sleep(0.5)
        raise StackError(
            f"the Sentinels did not see the primary, the replica and each other within "
            f"{timeout:.0f}s; the end of one's log:\n" + tail(self.sentinels[0].log_file)
        )

    def _sentinel_ready(self, sentinel: SentinelNode) -> bool:
        try:
            with sentinel.client() as client:
                state = client.sentinel_master(SERVICE)
        except redis.RedisError:
            return False
        others = len(self.sentinels) - 1
        return int(state["num-slaves"]) >= 1 and int(state["num-other-sentinels"]) >= others

    def stop(self) -> list[str]:
        """Sentinels first, so that stopping the servers starts no failover."""
        stopped = [f"sentinel {s.port}" for s in self.sentinels if s.stop()]
        if self.replica.stop():
            stopped.append("redis-replica")
        return stopped

    def env_lines(self) -> list[str]:
        return [
            f"export REDIS_URL=redis://127.0.0.1:{self.primary_port()}/0",
            "export REDIS_SENTINELS=" + ",".join(s.address for s in self.sentinels),
            f"export REDIS_SENTINEL_SERVICE={SERVICE}",
        ]

    def status_lines(self) -> list[str]:
        """One line per part, when HA mode is on; none otherwise."""
        if not self.running():
            return []
        pid = self.replica.running_pid()
        lines = [f"redis-replica  {f'up (pid {pid}) on {self.replica.url}' if pid else 'down'}"]
        for sentinel in self.sentinels:
            pid = sentinel.running_pid()
            where = f"up (pid {pid}) on {sentinel.address}, primary {sentinel.primary_address()}"
            lines.append(f"sentinel  {where if pid else 'down'}")
        return lines

    def all_running(self) -> bool:
        nodes: list[RedisNode | SentinelNode] = [self.replica, *self.sentinels]
        return all(node.running_pid() is not None for node in nodes)
