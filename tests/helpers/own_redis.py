"""A redis-server of a test's own, for faults the shared one must not suffer (stop, restart)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one this process handed out before: the kernel may
    give a just-closed port again, and two listeners of one broker then collide."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class OwnRedis:
    def __init__(self, folder: Path, extra_args: list[str] | None = None) -> None:
        self.extra_args = extra_args or []
        server = shutil.which("redis-server")
        if server is None:
            raise AssertionError("redis-server is not installed: apt-get install -y redis-server")
        self.server = server
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen(
            [
                self.server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.AuthenticationError:
                return self  # it answers; it wants a password
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("own redis-server did not start")

    def pause(self) -> None:
        """Unreachable but not dead: connections hang, as behind a network partition."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def snapshot(self) -> Path:
        """SAVE now and keep a copy: the state to go back to later."""
        client = redis.Redis.from_url(self.url, socket_timeout=30)
        client.save()
        kept = self.folder / f"snapshot-{time.monotonic_ns()}.rdb"
        shutil.copy(self.folder / "dump.rdb", kept)
        return kept

    def restart_from(self, snapshot: Path) -> None:
        """A crash, then a start from an older snapshot (a restored backup, an RDB that missed
        the last writes): same address, older data, a new run_id."""
        self.stop()
        shutil.copy(snapshot, self.folder / "dump.rdb")
        self.start()

    def restart_empty(self) -> None:
        """A restart without persistence: every key is gone."""
        self.stop()
        (self.folder / "dump.rdb").unlink(missing_ok=True)
        self.start()

    def stop(self) -> None:
        """SIGKILL: no save on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(5)
