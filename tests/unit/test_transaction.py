"""The transaction session sorts librdkafka's errors into the three kinds, with a producer fake
that raises what librdkafka raises."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumer.kafka_txn import KafkaTransaction, RetryBatchError, kafka_errors
from customer_ids.domain.errors import FencedError


def kafka_error(code: int, **kinds: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "injected", **kinds))


class FakeProducer:
    def __init__(self, fail: dict[str, list[BaseException]] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[str] = []
        self.produced: list[tuple[str, Any]] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        queue = self.fail.get(name, [])
        if queue:
            raise queue.pop(0)

    def produce(self, topic: str, **kwargs: Any) -> None:
        self._call("produce")
        self.produced.append((topic, kwargs))

    def poll(self, timeout: float) -> int:
        self.calls.append("poll")
        return 0

    def flush(self, timeout: float) -> int:
        self._call("flush")
        return 0

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(self, *args: Any) -> None:
        self._call("send_offsets")

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort")


def session(producer: FakeProducer) -> KafkaTransaction:
    return KafkaTransaction(producer, call_timeout_s=5.0)  # type: ignore[arg-type]


def test_a_full_local_queue_is_waited_out_not_raised() -> None:
    producer = FakeProducer({"produce": [BufferError("Local: Queue full")] * 2})
    session(producer).produce("t", key=b"k", value=b"v")
    assert producer.calls == ["produce", "poll", "produce", "poll", "produce"]
    assert len(producer.produced) == 1


def test_a_retriable_commit_is_retried_and_then_succeeds() -> None:
    retriable = kafka_error(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, retriable=True)
    producer = FakeProducer({"send_offsets": [retriable]})
    session(producer).commit([], object())
    assert producer.calls == ["send_offsets", "send_offsets", "commit"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (kafka_error(KafkaError._FENCED, fatal=True), FencedError),
        (kafka_error(KafkaError._TIMED_OUT, txn_requires_abort=True), RetryBatchError),
        (kafka_error(KafkaError.NOT_COORDINATOR, retriable=True), RetryBatchError),
    ],
)
def test_errors_are_sorted_into_their_kinds(error: KafkaException, expected: type) -> None:
    with pytest.raises(expected):
        session(FakeProducer({"commit": [error] * 5})).commit([], object())


def test_a_fatal_error_stays_fatal() -> None:
    fatal = kafka_error(KafkaError._FATAL, fatal=True)
    with pytest.raises(KafkaException):
        session(FakeProducer({"begin": [fatal]})).begin()


def test_a_fatal_error_wrapped_by_a_delivery_callback_is_unwrapped() -> None:
    wrapped = SystemError("<function> returned a result with an exception set")
    wrapped.__cause__ = kafka_error(KafkaError._FENCED, fatal=True)
    with pytest.raises(FencedError), kafka_errors():
        raise wrapped


def test_abort_without_an_open_transaction_is_fine_and_fenced_is_not() -> None:
    session(FakeProducer({"abort": [kafka_error(KafkaError._STATE)]})).abort()
    with pytest.raises(FencedError):
        session(FakeProducer({"abort": [kafka_error(KafkaError.PRODUCER_FENCED)]})).abort()


@pytest.mark.parametrize("call", ["produce", "flush", "begin"])
def test_a_fatal_error_whose_reason_is_a_fence_is_fenced(call: str) -> None:
    """When the fence is learnt in the background, the next call raises only _FATAL ("Local:
    Fatal error"); the reason reaches error_cb. Taken for a crash, the supervisor restarted the
    fenced worker, which fenced the newer instance in turn (CI, 2026-11-27)."""
    fatal: list[KafkaError] = []
    producer = FakeProducer({call: [kafka_error(KafkaError._FATAL, fatal=True)]})
    session = KafkaTransaction(producer, 5.0, fatal_errors=fatal)  # type: ignore[arg-type]
    fatal.append(KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True))
    with pytest.raises(FencedError):
        if call == "produce":
            session.produce("out", key=b"k", value=b"v")
        elif call == "flush":
            session.flush()
        else:
            session.begin()


def test_a_fatal_error_for_another_reason_stays_fatal() -> None:
    fatal = [KafkaError(KafkaError._INCONSISTENT, "something else", fatal=True)]
    producer = FakeProducer({"produce": [kafka_error(KafkaError._FATAL, fatal=True)]})
    session = KafkaTransaction(producer, 5.0, fatal_errors=fatal)  # type: ignore[arg-type]
    with pytest.raises(KafkaException):
        session.produce("out", key=b"k", value=b"v")


def test_a_transaction_the_broker_timed_out_is_not_a_fence() -> None:
    """INVALID_PRODUCER_EPOCH: the broker aborted our transaction (it outlived its timeout).
    A fresh worker cures it, so it must not read as fenced (exit 0, never restarted)."""
    timed_out = kafka_error(KafkaError.INVALID_PRODUCER_EPOCH, fatal=True)
    with pytest.raises(KafkaException) as raised:
        session(FakeProducer({"commit": [timed_out]})).commit([], object())
    assert not isinstance(raised.value, FencedError)


def test_a_flush_that_fails_without_an_exception_after_a_fence_is_fenced() -> None:
    """Seen in CI: the zombie woke up, flush() met the fence while serving delivery reports,
    and confluent-kafka raised a bare SystemError ("returned NULL without setting an
    exception"); the worker crashed (exit 1) instead of stopping as fenced. error_cb has the
    reason."""
    fatal = [KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)]
    bare = SystemError("<method 'flush'> returned NULL without setting an exception")
    producer = FakeProducer({"flush": [bare]})
    session = KafkaTransaction(producer, 5.0, fatal_errors=fatal)  # type: ignore[arg-type]
    with pytest.raises(FencedError):
        session.flush()
    with pytest.raises(SystemError):  # with no fence behind it, it stays what it was
        KafkaTransaction(FakeProducer({"flush": [bare]}), 5.0).flush()  # type: ignore[arg-type]
