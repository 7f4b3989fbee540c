"""The reply path of a number on request (issue 22): the committed assignment of each customer
a process is waiting for.

One read_committed reader per process follows every partition of the output topic from where
each stood when it started. It joins no consumer group, so API processes behind a load
balancer never rebalance one another, and each sees the outputs of its own requests (every
process reads every partition: the output topic is small records, and a reader that only keys
its waiters skips the rest without decoding). A waiter is registered before its event is sent,
so an answer that commits at once is not missed. Only committed outputs are read: the number
handed back is the service's, never a reservation.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable

from confluent_kafka import Consumer, Message, TopicPartition

from customer_ids.adapters.kafka_io import client_config
from customer_ids.adapters.logs import get_logger
from customer_ids.domain.errors import UnavailableError
from customer_ids.domain.events import CustomerIdAssigned

log = get_logger(__name__)
RECENT = 50_000  # answers remembered (about 300 bytes each)


class Waiter:
    """One caller waiting for one customer's committed assignment."""

    def __init__(self, customer_key: str) -> None:
        self.customer_key = customer_key
        self._done = threading.Event()
        self.assignment: CustomerIdAssigned | None = None
        self.failure: str | None = None  # the event was not delivered: why

    def answer(self, assignment: CustomerIdAssigned) -> None:
        self.assignment = assignment
        self._done.set()

    def fail(self, reason: str) -> None:
        self.failure = reason
        self._done.set()

    def wait(self, timeout_s: float) -> CustomerIdAssigned | None:
        self._done.wait(timeout_s)
        return self.assignment


class AssignmentFollower:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        decode: Callable[[bytes | None], dict[str, object]],
        start_timeout_s: float = 15.0,
    ) -> None:
        self.topic = topic
        self._decode = decode
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Waiter]] = {}
        # The last answers handed out, by customer: what this process saw committed.
        self._recent: OrderedDict[str, CustomerIdAssigned] = OrderedDict()
        self._stop = threading.Event()
        self._consumer = Consumer(
            client_config(
                bootstrap,
                {
                    "group.id": f"customer-ids-replies-{uuid.uuid4()}",  # assign() only
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_committed",
                    # An answer waits for this reader: ask the broker often when at the end.
                    "fetch.wait.max.ms": 5,
                    "fetch.error.backoff.ms": 50,
                },
            )
        )
        try:
            self._consumer.assign(self._ends(start_timeout_s))
        except Exception:
            self._consumer.close()
            raise
        self._thread = threading.Thread(target=self._run, name="replies", daemon=True)
        self._thread.start()

    def _ends(self, timeout_s: float) -> list[TopicPartition]:
        """Every partition at its end now: what commits from here on is read."""
        topic = self._consumer.list_topics(self.topic, timeout=timeout_s).topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise UnavailableError(
                f"the output topic {self.topic} does not exist yet: start the service "
                "(`customer-ids serve`), which creates it"
            )
        ends = []
        for partition in sorted(topic.partitions):
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=timeout_s
            )
            ends.append(TopicPartition(self.topic, partition, high))
        return ends

    def expect(self, customer_key: str) -> Waiter:
        """Register before sending: the answer is kept for this waiter from now on."""
        waiter = Waiter(customer_key)
        with self._lock:
            self._waiters.setdefault(customer_key, []).append(waiter)
        return waiter

    def forget(self, waiter: Waiter) -> None:
        with self._lock:
            waiting = self._waiters.get(waiter.customer_key, [])
            if waiter in waiting:
                waiting.remove(waiter)
            if not waiting:
                self._waiters.pop(waiter.customer_key, None)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._consumer.poll(0.1)
                if message is not None and message.error() is None:
                    self._take(message)
            except Exception as exc:
                log.warning("reply_reader_error", error=str(exc)[:200])

    def _take(self, message: Message) -> None:
        key = (message.key() or b"").decode(errors="replace")
        if message.value() is None:
            return  # a tombstone is no answer
        with self._lock:
            if key not in self._waiters:
                return  # nobody here waits for this customer: not even decoded
        # Decoded before the waiters are taken: a record that cannot be read loses nobody.
        assignment = CustomerIdAssigned.from_record(self._decode(message.value()))
        with self._lock:
            waiting = self._waiters.pop(key, [])
            self._recent[key] = assignment
            self._recent.move_to_end(key)
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        for waiter in waiting:
            waiter.answer(assignment)

    def recent(self, customer_key: str) -> CustomerIdAssigned | None:
        """The committed assignment this reader last handed to a waiter of this customer."""
        with self._lock:
            return self._recent.get(customer_key)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
