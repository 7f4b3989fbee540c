"""number -> customer from the output topic, for deployments without the reverse index.

Reading the topic is a full scan, so answers are kept in a bounded LRU cache: a number's owner
never changes, so a cached answer never goes stale. Misses are not cached (the number may be
issued a moment later), and one scan runs at a time: callers asking at once wait for it and
then find their answer in the cache. Only valid numbers (check digit included) get this far.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from confluent_kafka import Message

from customer_ids.adapters.log_reader import read_to_end
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.tools.api.records import CustomerRecord

ReadTopic = Callable[[Callable[[Message], None]], int]
Decode = Callable[[bytes], CustomerIdAssigned]


class LogOwners:
    def __init__(self, read_topic: ReadTopic, decode: Decode, capacity: int) -> None:
        self._read_topic = read_topic
        self._decode = decode
        self._capacity = capacity
        self._cache: OrderedDict[str, CustomerRecord] = OrderedDict()
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
        """(the owner or None, whether the topic had to be read)."""
        record = self.cached(number)
        if record is not None:
            return record, False
        with self._scanning:
            record = self.cached(number)  # found by the scan we waited for
            if record is not None:
                return record, False
            record = self._scan(number)
        if record is not None:
            self._remember(number, record)
        return record, True

    def _scan(self, number: str) -> CustomerRecord | None:
        found: list[CustomerRecord] = []
        needle = number.encode()

        def match(message: Message) -> None:
            value = message.value()
            # Avro writes strings as their UTF-8 bytes: records without them need no decoding.
            if value and needle in value:
                event = self._decode(value)
                if event.customer_number == number:
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
