"""number -> customer by reading the output topic: a miss is remembered a moment, and a scan
never makes another caller wait (a flood of unissued numbers cannot hold every thread)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from confluent_kafka import Message

from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.tools.api import owners as owners_module
from customer_ids.tools.api.errors import UnavailableError
from customer_ids.tools.api.owners import LogOwners


class Topic:
    """A topic read that can be held open, counting its reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = threading.Event()
        self.release.set()
        self.reading = threading.Event()

    def read(self, handle: Callable[[Message], None]) -> int:
        self.reads += 1
        self.reading.set()
        self.release.wait(10)
        return 0


def never_decoded(value: bytes) -> CustomerIdAssigned:
    raise AssertionError("nothing to decode")


def test_a_miss_is_remembered_for_a_moment_only() -> None:
    now = [100.0]
    topic = Topic()
    owners = LogOwners(topic.read, never_decoded, capacity=10, clock=lambda: now[0])
    assert owners.owner_of("CU-00000099-1") == (None, True)
    # Before: every ask read the whole topic again.
    assert owners.owner_of("CU-00000099-1") == (None, False)
    assert topic.reads == 1
    now[0] += owners_module.MISS_TTL_S
    assert owners.owner_of("CU-00000099-1") == (None, True)  # it may have been issued since
    assert topic.reads == 2


def test_while_one_scan_runs_another_lookup_is_told_to_retry_not_held() -> None:
    topic = Topic()
    topic.release.clear()
    owners = LogOwners(topic.read, never_decoded, capacity=10)
    first = threading.Thread(target=owners.owner_of, args=("CU-00000098-3",))
    first.start()
    assert topic.reading.wait(10)
    # Before: this call waited for the running scan (and each after it, one at a time).
    with pytest.raises(UnavailableError, match="try again"):
        owners.owner_of("CU-00000097-5")
    topic.release.set()
    first.join(10)
    assert owners.owner_of("CU-00000097-5") == (None, True)  # free again
