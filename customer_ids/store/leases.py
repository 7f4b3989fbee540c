"""Redis locks with short leases that a live holder keeps renewing (redis-py's `Lock`).

A holder that dies stops renewing, so its locks free within one lease (seconds), not after a
long fixed lease. The lock value names the holder (transactional id, pid, host, since when), so
a waiter can say whom it waits for. A holder that could not renew in time has lost the lock:
its lease says so, and the work it did under it is void (the epoch and compare-and-set checks
in Redis refuse its late writes in any case).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from customer_ids.adapters.logs import get_logger
from customer_ids.domain.errors import CustomerIdsError

log = get_logger(__name__)
REPORT_EVERY_S = 5.0
FIRST_REPORT_S = 1.0


class LockTimeoutError(CustomerIdsError):
    """Another holder kept a lock longer than the caller would wait."""


class LeaseLostError(CustomerIdsError):
    """This holder failed to renew a lease in time; what it did under the lock is void."""


def owner_name(transactional_id: str) -> str:
    return f"{transactional_id}|{os.getpid()}|{socket.gethostname()}"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, parsed from its value."""

    transactional_id: str
    pid: str
    host: str
    held_for_s: float

    @classmethod
    def parse(cls, raw: bytes | str | None) -> Holder | None:
        if raw is None:
            return None
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        parts = text.split("|")
        if len(parts) != 5 or not parts[3].isdigit():
            return None
        return cls(parts[0], parts[1], parts[2], max(0.0, time.time() - int(parts[3]) / 1000))


@dataclass
class Lease:
    """Locks held together; `lost` is set as soon as one of them could not be renewed."""

    locks: list[Lock]
    lost: threading.Event = field(default_factory=threading.Event)
    renewed_at: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLostError("a lock lease expired before it could be renewed")


class Leases:
    """Takes locks with holder identity and renews every held one from one daemon thread."""

    def __init__(
        self,
        client: redis.Redis,
        lease_s: float,
        owner: str,
        on_wait: Callable[[str | None], None] | None = None,
    ) -> None:
        self._redis = client
        self.lease_s = lease_s
        self._owner = owner
        self._on_wait = on_wait
        self._held: set[int] = set()
        self._leases: dict[int, Lease] = {}
        self._guard = threading.Lock()
        self._renewer: threading.Thread | None = None

    @contextmanager
    def hold(self, names: Sequence[str], wait_s: float | None) -> Iterator[Lease]:
        """Hold these locks (sorted, so holders never deadlock) while the block runs.

        `wait_s=None` waits as long as it takes, reporting the holder every few seconds."""
        with ExitStack() as stack:
            # Registered first, so a lock already held is renewed while the next is awaited.
            lease = Lease([])
            self._register(lease)
            stack.callback(self._unregister, lease)
            for name in sorted(set(names)):
                lock = self._acquire(name, wait_s)
                stack.callback(_release_quietly, lock)
                with self._guard:
                    lease.locks.append(lock)
            # Unregistered before its locks are released (callbacks run last in, first out):
            # a renewal racing the release then sees a lease let go, not a lease lost.
            stack.callback(self._unregister, lease)
            yield lease

    def _acquire(self, name: str, wait_s: float | None) -> Lock:
        # thread_local=False: the renewer thread must see the token the holder thread set.
        lock: Lock = self._redis.lock(name, timeout=self.lease_s, thread_local=False)
        token = f"{self._owner}|{int(time.time() * 1000)}|{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        next_report = started + FIRST_REPORT_S
        reported = False
        while True:
            left = None if wait_s is None else wait_s - (time.monotonic() - started)
            slice_s = 1.0 if left is None else max(0.0, min(1.0, left))
            if lock.acquire(blocking=slice_s > 0, blocking_timeout=slice_s, token=token):
                if self._on_wait and reported:
                    self._on_wait(None)
                return lock
            waited = time.monotonic() - started
            holder = Holder.parse(self._redis.get(name))
            if left is not None and waited >= (wait_s or 0):
                if self._on_wait and reported:
                    self._on_wait(None)
                raise LockTimeoutError(
                    f"lock {name} not acquired within {wait_s}s; held by {_describe(holder)}"
                )
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + REPORT_EVERY_S
                log.warning(
                    "waiting_for_lock",
                    lock=name,
                    waited_s=round(waited, 1),
                    holder=_describe(holder),
                    held_for_s=round(holder.held_for_s, 1) if holder else None,
                    lease_s=self.lease_s,
                )
                if self._on_wait:
                    reported = True
                    self._on_wait(f"waiting for {name} held by {_describe(holder)}")

    # ------------------------------------------------------------ renewal
    def _register(self, lease: Lease) -> None:
        with self._guard:
            self._leases[id(lease)] = lease
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=self._renew_forever, daemon=True)
                self._renewer.start()

    def _unregister(self, lease: Lease) -> None:
        with self._guard:
            self._leases.pop(id(lease), None)

    def _renew_forever(self) -> None:
        while True:
            time.sleep(self.lease_s / 3)
            with self._guard:
                leases = list(self._leases.values())
            for lease in leases:
                self.renew(lease)

    def renew(self, lease: Lease) -> None:
        """Reset each lock's lease to its full length; mark the lease lost when that fails."""
        if lease.lost.is_set():
            return
        with self._guard:
            locks = list(lease.locks)
        try:
            for lock in locks:
                lock.reacquire()
            lease.renewed_at = time.monotonic()
        except LockError as exc:  # not ours any more: it expired and someone took it
            with self._guard:
                released = id(lease) not in self._leases  # the holder let go meanwhile
            if not released:
                lease.lost.set()
                log.error("lease_lost", error=str(exc)[:200])
        except redis.RedisError as exc:
            if time.monotonic() - lease.renewed_at >= self.lease_s:
                lease.lost.set()
                log.error("lease_lost_redis_unreachable", error=str(exc)[:200])


def _describe(holder: Holder | None) -> str:
    if holder is None:
        return "nobody (or a holder that left no name)"
    return f"{holder.transactional_id} (pid {holder.pid} on {holder.host})"


def _release_quietly(lock: Lock) -> None:
    """A lease that expired (or a wiped Redis) has nothing to release; that is not an error."""
    with suppress(LockError, redis.RedisError):
        lock.release()
