"""A local redis-server (Debian's package) under the stack's own supervision."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from customer_ids.stack.processes import StackError, read_pid, require_program, spawn, stop, tail


@dataclass(frozen=True)
class RedisTls:
    """A secure server (`stack up --secure`): TLS only, users from an aclfile, the default
    user off. Clients show no certificate; they log in as a user."""

    cert: Path
    key: Path
    ca: Path
    aclfile: Path
    admin_password: str

    def args(self, port: int) -> list[str]:
        return [
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(self.key),
            "--tls-ca-cert-file",
            str(self.ca),
            "--tls-auth-clients",
            "no",
            "--aclfile",
            str(self.aclfile),
        ]


@dataclass(frozen=True)
class RedisNode:
    """One local redis-server: its port and its folder (named, so a replica gets its own)."""

    state_dir: Path
    port: int = 16379
    name: str = "redis"
    tls: RedisTls | None = None

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://localhost:{self.port}/0"
        return f"redis://127.0.0.1:{self.port}/0"

    def url_as(self, user: str, password: str) -> str:
        """The URL a client of `user` connects with (secure servers only)."""
        return f"rediss://{user}:{password}@localhost:{self.port}/0"

    def admin_client(self, **options: Any) -> redis.Redis:
        """A client with every right: the stack's own checks, and tests."""
        if not self.tls:
            return redis.Redis.from_url(self.url, **options)
        return redis.Redis.from_url(
            self.url_as("admin", self.tls.admin_password), ssl_ca_certs=str(self.tls.ca), **options
        )

    @property
    def home(self) -> Path:
        return self.state_dir / self.name

    @property
    def pid_file(self) -> Path:
        return self.home / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "redis.log"

    def running_pid(self) -> int | None:
        return read_pid(self.pid_file)

    def start(self, replica_of: int | None = None) -> None:
        """Start it unless it runs; as a replica of the local server on port replica_of."""
        if self.running_pid() is not None:
            return
        server = require_program("redis-server", "apt-get install -y redis-server")
        self.home.mkdir(parents=True, exist_ok=True)
        role = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
        # AOF keeps the demo's state across `stack down`/`up`; tests isolate by key prefix.
        # fsync on every write: a batch's allocation must be on disk before its Kafka commit.
        spawn(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "no",
                "--dir",
                str(self.home),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
                # One replica at most (`--redis-ha`): a full sync need not wait for others.
                "--repl-diskless-sync-delay",
                "0",
                *role,
                *(self.tls.args(self.port) if self.tls else []),
            ],
            self.pid_file,
            self.log_file,
            self.home,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        # No retries: each refused ping would otherwise take seconds of backoff.
        client = self.admin_client(socket_timeout=1, retry=Retry(NoBackoff(), 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running_pid() is None:
                raise StackError("redis-server exited during start-up:\n" + tail(self.log_file))
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise StackError(f"redis-server did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> bool:
        return stop(self.pid_file, grace_seconds=20)
