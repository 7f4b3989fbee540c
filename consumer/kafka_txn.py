"""The transactional producer as a typed session: one batch at a time, every call under the
stall guard, and librdkafka's errors sorted into the three kinds confluent-kafka documents.

- retriable, or txn_requires_abort: RetryBatchError (abort, rewind, consume the batch again);
- fenced (a newer instance with our transactional.id): FencedError (stop);
- anything else: the KafkaException itself (fatal).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from consumer.watchdog import stall_guard
from customer_ids.domain.errors import CustomerIdsError, FencedError

# INVALID_PRODUCER_EPOCH is not among them: the broker says it when it timed our transaction
# out, which a fresh worker (a new epoch) cures; only a newer instance with our id fences us.
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED}
STALL_MARGIN_S = 10.0  # past its own timeout, a call is stuck (librdkafka#5456)
COMMIT_ATTEMPTS = 5


class RetryBatchError(CustomerIdsError):
    """The batch was aborted for a passing reason; consume it again."""


def classified(exc: KafkaException) -> Exception:
    """The error to raise for a librdkafka error, by kind."""
    error = exc.args[0]
    if error.code() in FENCED_CODES:
        return FencedError(str(error))
    if error.txn_requires_abort() or error.retriable():
        return RetryBatchError(str(error))
    return exc


@contextmanager
def kafka_errors() -> Iterator[None]:
    """Raise the classified error for anything librdkafka raises inside the block."""
    try:
        yield
    except KafkaException as exc:
        raise classified(exc) from exc
    except SystemError as exc:
        # A fatal error raised while flush() serves delivery callbacks reaches us wrapped
        # this way ("returned a result with an exception set"); the cause is the error.
        if isinstance(exc.__cause__, KafkaException):
            raise classified(exc.__cause__) from exc.__cause__
        raise


@dataclass
class KafkaTransaction:
    """The one transactional producer of a worker."""

    producer: Producer
    call_timeout_s: float
    # Of the records produced with track=True in this transaction: (topic, partition) -> the
    # next offset.
    delivered: dict[tuple[str, int], int] = field(default_factory=dict)
    # Fatal errors the producer's error_cb saw: the reason behind a bare _FATAL from a call.
    fatal_errors: list[KafkaError] = field(default_factory=list)
    # Offset of the first record produced with claim=True in this transaction (consumer/claims).
    claimed: int | None = None
    # Why records of this transaction were not delivered (for the error that says so).
    undelivered: list[KafkaError] = field(default_factory=list)

    def _classified(self, exc: KafkaException) -> Exception:
        """As classified(), and a bare _FATAL ("Local: Fatal error") is looked up: when the
        producer learnt of a fence in the background, the next call raises only _FATAL and
        the reason goes to error_cb, which poll() serves."""
        if exc.args[0].code() == KafkaError._FATAL:
            fence = self._fence_seen()
            if fence is not None:
                return FencedError(str(fence))
        return classified(exc)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            with kafka_errors():
                yield
        except KafkaException as exc:
            raise self._classified(exc) from exc
        except SystemError as exc:
            # A fence met while flush() serves delivery reports can surface as a bare
            # "returned NULL without setting an exception"; error_cb has the reason.
            fence = self._fence_seen()
            if fence is not None:
                raise FencedError(str(fence)) from exc
            raise

    def _fence_seen(self) -> KafkaError | None:
        self.producer.poll(0)  # serves error_cb
        return next((e for e in self.fatal_errors if e.code() in FENCED_CODES), None)

    def _guard(self, call: str) -> Any:
        return stall_guard(call, self.call_timeout_s + STALL_MARGIN_S)

    def init(self) -> None:
        with self._guard("init_transactions"), self._errors():
            self.producer.init_transactions(self.call_timeout_s)

    def begin(self) -> None:
        self.delivered.clear()
        self.undelivered.clear()
        self.claimed = None
        with self._errors():
            self.producer.begin_transaction()

    def produce(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, str | bytes | None]] | None = None,
        track: bool = False,
        claim: bool = False,
    ) -> None:
        """Queue a record, waiting for room when the local queue is full (a large batch).
        `track` records where it lands (see `delivered`), `claim` where the first claim lands
        (see `claimed`)."""
        on_delivery = self._on_delivered if track else self._on_claimed if claim else None
        while True:
            try:
                self.producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=list(headers) if headers else None,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                raise self._classified(exc) from exc

    def _on_delivered(self, error: KafkaError | None, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if error is None and topic is not None and partition is not None and offset is not None:
            tp = (topic, partition)
            self.delivered[tp] = max(self.delivered.get(tp, 0), offset + 1)

    def _on_claimed(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.undelivered.append(error)
        offset = message.offset()
        if error is None and offset is not None:
            self.claimed = offset if self.claimed is None else min(self.claimed, offset)

    def flush(self) -> None:
        """Every record of the transaction on the broker (an open transaction there), or
        RetryBatchError."""
        with self._guard("flush"), self._errors():
            undelivered = self.producer.flush(self.call_timeout_s)
        if undelivered:
            raise RetryBatchError(f"{undelivered} records not delivered in time")

    def commit(self, offsets: list[TopicPartition], group_metadata: object) -> None:
        """Send the consumed offsets, then commit; each step retried on its own when
        librdkafka says it may be (sending the offsets again after they went is an error)."""
        self._retrying(
            "send_offsets_to_transaction",
            lambda: self.producer.send_offsets_to_transaction(
                offsets, group_metadata, self.call_timeout_s
            ),
        )
        self._retrying(
            "commit_transaction", lambda: self.producer.commit_transaction(self.call_timeout_s)
        )

    def commit_records(self) -> None:
        """Commit a transaction that consumed nothing (the start-up's rendering records)."""
        self._retrying(
            "commit_transaction", lambda: self.producer.commit_transaction(self.call_timeout_s)
        )

    def _retrying(self, call: str, step: Callable[[], None]) -> None:
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                with self._guard(call):
                    step()
                return
            except KafkaException as exc:
                if exc.args[0].retriable() and attempt < COMMIT_ATTEMPTS - 1:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise self._classified(exc) from exc

    def abort(self) -> None:
        """Abort whatever is open; nothing open is fine, a fenced producer is not."""
        try:
            with self._guard("abort_transaction"):
                self.producer.abort_transaction(self.call_timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in FENCED_CODES:
                raise FencedError(str(error)) from exc
            if error.code() != KafkaError._STATE:  # _STATE: no transaction in progress
                raise
