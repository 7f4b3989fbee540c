"""number -> customer from the output topic, for deployments without the reverse index.

Reading the topic is a full scan, so answers are kept in a bounded LRU cache: a number's owner
never changes, so a cached answer never goes stale. A miss is remembered for MISS_TTL_S (the
number may be issued a moment later, so not longer): asking again for a number nobody holds
costs nothing. One scan runs at a time, and a caller never waits for another's: while one
runs, a lookup that would need its own is told to try again (503), so a flood of lookups of
unissued numbers cannot hold every worker thread. Only valid numbers (check digit included)
get this far.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from confluent_kafka import Message

from customer_ids.adapters.log_reader import read_to_end
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.tools.api.errors import UnavailableError
from customer_ids.tools.api.records import CustomerRecord

ReadTopic = Callable[[Callable[[Message], None]], int]
Decode = Callable[[bytes], CustomerIdAssigned]


MISS_TTL_S = 10.0


class LogOwners:
    def __init__(
        self,
        read_topic: ReadTopic,
        decode: Decode,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_topic = read_topic
        self._decode = decode
        self._capacity = capacity
        self._clock = clock
        self._cache: OrderedDict[str, CustomerRecord] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()  # number -> when it was missed
        self._guard = threading.Lock()
        self._scanning = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings, capacity: int) -> LogOwners:
        codec = framed_codec(settings.registry(), settings.output_topic, "CustomerIdAssigned")

        def read_topic(handle: Callable[[Message], None]) -> int:
            return read_to_end(settings.bootstrap_servers, settings.output_topic, handle)

        def decode(value: bytes) -> CustomerIdAssigned:
            return CustomerIdAssigned.from_record(codec.decode(value))

        return cls(read_topic, decode, capacity)

    def cached(self, number: str) -> CustomerRecord | None:
        with self._guard:
            record = self._cache.get(number)
            if record is not None:
                self._cache.move_to_end(number)
            return record

    def owner_of(self, number: str) -> tuple[CustomerRecord | None, bool]:
        """(the owner or None, whether the topic had to be read); UnavailableError while
        another lookup reads the topic."""
        record = self.cached(number)
        if record is not None:
            return record, False
        if self._missed_lately(number):
            return None, False
        if not self._scanning.acquire(blocking=False):
            raise UnavailableError(
                "another number lookup is reading the whole output topic (no reverse index, "
                "CUSTOMER_IDS_REVERSE_INDEX=off); try again in a few seconds"
            )
        try:
            record = self._scan(number)
        finally:
            self._scanning.release()
        if record is not None:
            self._remember(number, record)
        else:
            self._remember_miss(number)
        return record, True

    def would_read(self, number: str) -> bool:
        """Whether owner_of(number) would read the output topic (neither cached nor missed
        lately): what the per-token scan limit counts."""
        return self.cached(number) is None and not self._missed_lately(number)

    def _missed_lately(self, number: str) -> bool:
        with self._guard:
            missed = self._misses.get(number)
            return missed is not None and self._clock() - missed < MISS_TTL_S

    def _remember_miss(self, number: str) -> None:
        with self._guard:
            self._misses[number] = self._clock()
            self._misses.move_to_end(number)
            while len(self._misses) > max(self._capacity, 1000):
                self._misses.popitem(last=False)

    def _scan(self, number: str) -> CustomerRecord | None:
        found: list[CustomerRecord] = []
        needle = number.encode()

        def match(message: Message) -> None:
            value = message.value()
            # Avro writes strings as their UTF-8 bytes: records without them need no decoding.
            if value and needle in value:
                event = self._decode(value)
                if event.own_number == number:  # a merged customer's retired number too
                    found.append(CustomerRecord.from_event(event))

        self._read_topic(match)
        return found[-1] if found else None

    def _remember(self, number: str, record: CustomerRecord) -> None:
        if self._capacity <= 0:
            return
        with self._guard:
            self._cache[number] = record
            self._cache.move_to_end(number)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
