"""One live worker per transactional.id. Two on one host with the default id
(`customer-ids-<hostname>`) used to fence each other: the first exited for good and half the
capacity was gone with one error line. Each worker now holds its id as a leased, renewed Redis
lock for as long as it runs; a second live worker with the same id is refused at start.

The holder that died (SIGKILL, a crash the supervisor restarts) leaves its lock to expire
within one lease; a worker on the same host whose holder's process is gone takes the lock over
at once, so a restart never waits. Kafka's fencing still stops a paused zombie that comes back
after its lease expired and another worker took over.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import redis

from consumer.startup import StartupError
from customer_ids.adapters.logs import get_logger
from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.config.settings import Settings
from customer_ids.store.leases import Holder, Lease, Leases, LockTimeoutError, owner_name

log = get_logger(__name__)

# Deletes the key only while it still holds the value read (a compare-and-delete).
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True  # someone else's process, or a pid we cannot read: assume it lives
    return True


@contextmanager
def hold_transactional_id(settings: Settings, client: redis.Redis) -> Iterator[Lease]:
    """Hold this worker's transactional.id while the block runs; StartupError (exit 2) when
    another live worker holds it."""
    lease_s = settings.lock_timeout_ms / 1000
    key = RedisKeys(settings.redis_prefix).instance(settings.transactional_id)
    raw = client.get(key)
    holder = Holder.parse(raw)
    if raw and holder and holder.host == socket.gethostname() and not _alive(holder.pid):
        client.eval(_DELETE_IF, 1, key, raw)
        log.info("transactional_id_taken_over", previous_pid=holder.pid)
    leases = Leases(client, lease_s, owner_name(settings.transactional_id))
    with ExitStack() as stack:
        try:
            lease = stack.enter_context(leases.hold([key], wait_s=2 * lease_s))
        except LockTimeoutError:
            holder = Holder.parse(client.get(key))
            where = f"pid {holder.pid} on {holder.host}" if holder else "another process"
            raise StartupError(
                f"transactional.id {settings.transactional_id} is in use by a running worker "
                f"({where}); two instances with one id fence each other. Give each instance "
                "its own CUSTOMER_IDS_TRANSACTIONAL_ID (stable across its restarts), e.g. "
                f"{settings.transactional_id}-2"
            ) from None
        yield lease
