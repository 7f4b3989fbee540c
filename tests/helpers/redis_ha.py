"""A primary, a replica and three Sentinels of a test's own, for failover faults: a replica
that really falls behind (DESIGN §5), then a failover to it that loses the writes it missed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis

from customer_ids.stack.sentinel import local_client, sentinel_config
from tests.helpers.own_redis import free_port

# A Sentinel declares the primary down after DOWN_AFTER_MS without an answer; 2 s keeps a busy
# (fsync on every write) primary on a slow machine from being failed over by mistake.
# It also bounds the hold: Sentinel promotes only a replica whose link to the primary has been
# down for at most 10 x down-after plus the time the primary has been down, so a replica held
# behind longer than 9 x down-after before the primary dies is never promoted. (A replica that
# was SIGSTOPped may report its link down since the cut or since it woke, by a race inside
# redis-server; the bound must hold for the first.)
DOWN_AFTER_MS = 2000
# Also the retry interval (twice this) if an attempt finds no replica fit to promote yet.
FAILOVER_TIMEOUT_MS = 6000
START_TIMEOUT_S = 60.0  # sized for a machine 4x slower than the 2-core build machine
FAILOVER_TIMEOUT_S = 60.0


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


class _Server:
    """One redis-server process (data node or Sentinel) with a writable config file."""

    def __init__(self, home: Path, port: int, config: str, sentinel: bool = False) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise AssertionError("redis-server is not installed: apt-get install -y redis-server")
        home.mkdir(parents=True, exist_ok=True)
        self.name = home.name
        self.port = port
        # Sentinel rewrites its config file, and a data node's when it promotes or demotes
        # it: both are files, not command-line options.
        self.config = home / f"{self.name}.conf"
        self.config.write_text(config)
        self.log = home / f"{self.name}.log"
        argv = [server, str(self.config), *(["--sentinel"] if sentinel else [])]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def client(self) -> redis.Redis:
        return local_client(self.port, timeout=10)

    def wait_ping(self, deadline: float) -> None:
        with self.client() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited:\n{_log_tail(self.log)}")
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    time.sleep(0.05)
        raise AssertionError(f"{self.name} did not answer on port {self.port}")

    def signal(self, signum: signal.Signals) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)  # a stopped process dies only once it runs again
            self.proc.kill()
        self.proc.wait(10)


def _data_node(folder: Path, name: str, replica_of: int | None = None) -> _Server:
    """A durable server: every write fsynced (appendfsync always), as the design requires."""
    home, port = folder / name, free_port()
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f'dir "{home}"',
        'save ""',
        "appendonly yes",
        "appendfsync always",
        "replica-priority 100",  # 0 would make it unfit for promotion
        "repl-diskless-sync-delay 0",  # one replica: sync at once
        *([f"replicaof 127.0.0.1 {replica_of}"] if replica_of else []),
    ]
    return _Server(home, port, "\n".join(lines) + "\n")


class RedisHA:
    """Primary, replica and three Sentinels on free loopback ports in a test's own folder.

    The Sentinels monitor the primary under a service name unique to this instance, so a test
    can never follow another test's failover."""

    def __init__(self, folder: Path, down_after_ms: int = DOWN_AFTER_MS) -> None:
        self.folder = folder
        self.down_after_ms = down_after_ms
        self.service = f"cid-{uuid.uuid4().hex[:8]}"
        self._held_since: float | None = None
        self._primary: _Server | None = None
        self._replica: _Server | None = None
        self._old_primary: _Server | None = None
        self._sentinels: list[_Server] = []

    def __enter__(self) -> RedisHA:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def primary(self) -> _Server:
        assert self._primary is not None, "start() first"
        return self._primary

    @property
    def replica(self) -> _Server:
        assert self._replica is not None, "no replica: start() first, or it was promoted"
        return self._replica

    @property
    def max_hold_s(self) -> float:
        """The longest hold_replica_behind() -> fail_over() after which Sentinel surely still
        promotes the replica (9 x down-after, less a margin); pass a larger down_after_ms
        for longer holds."""
        return 8 * self.down_after_ms / 1000

    @property
    def primary_port(self) -> int:
        """The current primary's port: the replica's after fail_over()."""
        return self.primary.port

    def sentinels_env(self) -> dict[str, str]:
        """The service's settings for this Redis: REDIS_URL gives only the db (and would give
        credentials); the address comes from the Sentinels."""
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self._sentinels),
            "REDIS_SENTINEL_SERVICE": self.service,
            "REDIS_URL": f"redis://127.0.0.1:{self.primary_port}/0",
        }

    def start(self) -> RedisHA:
        deadline = time.monotonic() + START_TIMEOUT_S
        self._primary = _data_node(self.folder, "primary")
        self.primary.wait_ping(deadline)
        self._replica = _data_node(self.folder, "replica", replica_of=self.primary.port)
        self.replica.wait_ping(deadline)
        # Sentinels learn about replicas from the primary's INFO (every 10 s): start them once
        # the replica is online, so their first INFO already lists it.
        self._wait(self._replica_online, deadline, "the replica did not sync with the primary")
        for n in range(3):
            home, port = self.folder / f"sentinel{n}", free_port()
            config = sentinel_config(
                port,
                home,
                self.service,
                self.primary.port,
                down_after_ms=self.down_after_ms,
                failover_timeout_ms=FAILOVER_TIMEOUT_MS,
            )
            self._sentinels.append(_Server(home, port, config, sentinel=True))
        for sentinel in self._sentinels:
            sentinel.wait_ping(deadline)
        self._wait(self._sentinels_ready, deadline, "the Sentinels did not see each other")
        return self

    def hold_replica_behind(self) -> None:
        """From now on the replica misses every write: stop it and cut its replication link.

        Pausing alone would not do: the kernel keeps buffering the replication stream and the
        replica catches up when it wakes. Writes before this call are on the replica first."""
        with self.primary.client() as primary:
            synced = primary.execute_command("WAIT", 1, 5000)
            assert synced == 1, "the replica did not confirm the writes before the hold"
            self.replica.signal(signal.SIGSTOP)
            primary.execute_command("CLIENT", "KILL", "TYPE", "replica")
            self._held_since = time.monotonic()
            deadline = time.monotonic() + 10
            while int(primary.info("replication")["connected_slaves"]) > 0:
                assert time.monotonic() < deadline, "the replica link did not close"
                time.sleep(0.05)

    def fail_over(self, timeout: float = FAILOVER_TIMEOUT_S) -> float:
        """SIGKILL the primary, let the replica run again, wait until every Sentinel names it
        as the primary and it says so itself. The seconds it took."""
        started = time.monotonic()
        if self._held_since is not None:
            held = started - self._held_since
            assert held <= self.max_hold_s, (
                f"the replica was held behind for {held:.1f}s; Sentinel may refuse to promote "
                f"a replica held longer than {self.max_hold_s:.0f}s: raise down_after_ms"
            )
        self.primary.signal(signal.SIGKILL)
        self.primary.proc.wait(10)
        self.replica.signal(signal.SIGCONT)
        self._wait(self._replica_promoted, started + timeout, "no failover to the replica")
        self._old_primary, self._primary, self._replica = self._primary, self._replica, None
        self._held_since = None
        return time.monotonic() - started

    def stop(self) -> None:
        """Kill every process, stopped ones included."""
        servers = [*self._sentinels, self._replica, self._primary, self._old_primary]
        for server in servers:
            if server is not None:
                server.kill()

    def _wait(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.2)
        logs = "\n".join(f"--- {s.name}\n{_log_tail(s.log)}" for s in self._sentinels)
        raise AssertionError(f"{what}; the Sentinels' logs:\n{logs}")

    def _replica_online(self) -> bool:
        try:
            with self.replica.client() as replica:
                return bool(replica.info("replication").get("master_link_status") == "up")
        except redis.RedisError:  # LOADING while it takes in the first sync
            return False

    def _sentinels_ready(self) -> bool:
        """Each Sentinel sees the replica (fit to promote) and both other Sentinels: only then
        can two agree that the primary is down and elect one of them to fail over."""
        for sentinel in self._sentinels:
            try:
                with sentinel.client() as client:
                    master = client.sentinel_master(self.service)
                    replicas = client.sentinel_slaves(self.service)
            except redis.RedisError:
                return False
            if int(master["num-other-sentinels"]) < len(self._sentinels) - 1:
                return False
            if not any(r["port"] == self.replica.port and not r["is_sdown"] for r in replicas):
                return False
        return True

    def _replica_promoted(self) -> bool:
        try:
            for sentinel in self._sentinels:
                with sentinel.client() as client:
                    address = client.sentinel_get_master_addr_by_name(self.service)
                if address is None or int(address[1]) != self.replica.port:
                    return False
            with self.replica.client() as replica:
                return bool(replica.execute_command("ROLE")[0] == "master")
        except redis.RedisError:
            return False
