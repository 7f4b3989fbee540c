"""The exactly-once loop's paths with fakes: a poison record, the three kinds of Kafka error,
a state that changed under the batch, a lock timeout, Redis down."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from confluent_kafka import KafkaError, KafkaException

from consumer.kafka_txn import RetryBatchError
from consumer.loop import AssignmentService
from consumer.metrics import ServiceMetrics
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import FencedError
from customer_ids.domain.events import CustomerCreated
from customer_ids.store.leases import LockTimeoutError
from customer_ids.store.ports import StateChangedError
from customer_ids.wire.codec import (
    codec_for,
    customer_created_codec,
    customer_id_assigned_codec,
)
from tests.unit.fakes import (
    FakeClaims,
    FakeConsumer,
    FakeMessage,
    FakeRecovery,
    FakeStore,
    FakeTerms,
    FakeTransaction,
)


def good(offset: int, customer: str) -> FakeMessage:
    event = CustomerCreated(
        str(uuid.uuid4()), customer, "crm", "INDIVIDUAL", "DE", datetime(2024, 5, 1, tzinfo=UTC)
    )
    return FakeMessage(customer_created_codec().encode(event.to_record()), offset)


class Loop:
    """The service wired to fakes, one batch at a time."""

    def __init__(self) -> None:
        self.consumer = FakeConsumer()
        self.transaction = FakeTransaction()
        self.store = FakeStore("epoch-0")
        self.recovery = FakeRecovery(self.store)
        self.claims = FakeClaims()
        self.terms = FakeTerms(self.store)
        self.claims.broker = self.transaction.committed_claims
        self.pings: list[BaseException | None] = []
        settings = Settings(
            output_topic="out",
            dlq_topic="dlq",
            watermark_topic="marks",
            search_topic="search",
            erasure_topic="erasures",
            transactional_id="t",
        )
        self.service = AssignmentService(
            settings=settings,
            consumer=self.consumer,  # type: ignore[arg-type]
            transaction=self.transaction,  # type: ignore[arg-type]
            allocator=self.store,  # type: ignore[arg-type]
            recovery=self.recovery,  # type: ignore[arg-type]
            metrics=ServiceMetrics(),
            input_codec=customer_created_codec(),
            output_codec=customer_id_assigned_codec(),
            redis_ping=self.ping,
            claims=self.claims,  # type: ignore[arg-type]
            terms=self.terms,
            erasure_codec=codec_for("CustomerErasureRequested"),
            merge_codec=codec_for("CustomerMergeRequested"),
            epoch="epoch-0",
        )

    def ping(self) -> None:
        error = self.pings.pop(0) if self.pings else None
        if error is not None:
            raise error

    def run(self, batch: list[Any]) -> None:
        self.service._process_with_retries(batch, threading.Event())

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.transaction.produced]


def test_a_poison_record_is_dead_lettered_and_the_batch_commits() -> None:
    loop = Loop()
    loop.run([good(10, "a"), FakeMessage(b"\x00poison", 11), good(12, "b")])
    assert loop.topics().count("dlq") == 1 and loop.topics().count("out") == 2
    assert loop.transaction.calls[-1] == "commit"
    (offsets,) = loop.transaction.committed
    assert [(tp.partition, tp.offset) for tp in offsets] == [(0, 13)]
    assert loop.store.fences == 1


@pytest.mark.parametrize(
    "error",
    [
        KafkaException(KafkaError(KafkaError.NOT_COORDINATOR, "x", retriable=True)),
        KafkaException(KafkaError(KafkaError._TIMED_OUT, "x", txn_requires_abort=True)),
    ],
    ids=["retriable", "abortable"],
)
def test_a_passing_kafka_error_aborts_and_rewinds_to_the_batch_start(error: Exception) -> None:
    loop = Loop()
    loop.transaction.fail["commit"] = RetryBatchError(str(error))
    batch = [good(5, "a"), good(6, "b")]
    loop.run(batch)
    assert "abort" in loop.transaction.calls and loop.transaction.committed == []
    assert loop.consumer.seeks == [(0, 5)]
    loop.run(batch)  # consumed again after the rewind: the same numbers, now committed
    assert len(loop.transaction.committed) == 1
    decode = customer_id_assigned_codec().decode
    numbers = [decode(v)["customer_number"] for t, v in loop.transaction.produced if t == "out"]
    assert numbers == ["CU-00000001-8", "CU-00000002-6"] * 2


def test_a_fenced_instance_stops() -> None:
    loop = Loop()
    loop.transaction.fail["commit"] = FencedError("a newer instance took over")
    with pytest.raises(FencedError):
        loop.run([good(1, "a")])


def test_a_fatal_error_stops() -> None:
    loop = Loop()
    loop.transaction.fail["flush"] = KafkaException(KafkaError(KafkaError._FATAL, "x", fatal=True))
    with pytest.raises(KafkaException):
        loop.run([good(1, "a")])


def test_a_state_that_changed_under_the_batch_aborts_and_recovers_before_going_on() -> None:
    loop = Loop()
    loop.store.fail["fence"] = StateChangedError("Redis is not the state this batch started from")
    loop.run([good(3, "a")])
    assert loop.transaction.committed == [] and loop.consumer.seeks == [(0, 3)]
    assert loop.recovery.calls == [("epoch-0", None)]
    assert loop.service.epoch == "epoch-1"


def test_a_lock_timeout_aborts_rewinds_and_backs_off() -> None:
    loop = Loop()
    loop.store.fail["locked"] = LockTimeoutError("lock cid:lock:CU held by someone")
    loop.run([good(7, "a")])
    assert loop.transaction.calls == ["begin", "abort"]
    assert loop.consumer.seeks == [(0, 7)] and loop.recovery.calls == []


def test_redis_down_pauses_the_partitions_until_it_answers() -> None:
    loop = Loop()
    loop.store.fail["lookup"] = redis.ConnectionError("Connection refused")
    loop.pings = [redis.ConnectionError("still down"), None]
    loop.run([good(9, "a")])
    assert loop.consumer.seeks == [(0, 9)]
    assert loop.consumer.paused == [0] and loop.consumer.resumed == [0]
    assert loop.transaction.committed == []


def test_numbers_another_instance_committed_meanwhile_abort_and_force_a_full_rebuild() -> None:
    """Redis went back on the same server while another instance committed (issue 20): our
    counter passes every local check; the claim check against the log refuses the batch."""
    loop = Loop()
    loop.run([good(10, "a")])
    counter = next(c for c in loop.store.counters_ if not c.startswith("#"))
    value = loop.store.counters_[counter]
    loop.claims.meanwhile = {counter: [(value + 1, value + 5)]}  # what Redis forgot it gave
    loop.run([good(11, "b")])
    assert loop.transaction.calls[-1] == "abort"
    assert len(loop.transaction.committed) == 1, "the clashing batch must not commit"
    assert loop.claims.checks[-1][counter] == [(value + 1, value + 1)]
    forced = loop.recovery.calls[-1][1]
    assert forced is not None and "already committed" in forced


def test_batches_that_interleave_their_claims_both_commit() -> None:
    """Two instances on one counter: A takes 2, then B takes 3 and its claim lands and commits
    before A's. A's claim does not overlap B's, so A commits too (a floor-only check refused
    it, and every such race cost a full rebuild)."""
    loop = Loop()
    loop.run([good(10, "a")])
    counter = next(c for c in loop.store.counters_ if not c.startswith("#"))
    loop.claims.meanwhile = {counter: [(3, 3)]}  # B's, committed before A's claim
    loop.run([good(11, "b")])
    assert len(loop.transaction.committed) == 2
    assert loop.recovery.calls == [], "no rebuild"


def test_a_re_issued_number_no_claim_holds_is_claimed_again() -> None:
    """A retry re-issues the numbers its aborted attempt reserved: they must be claimed, or a
    Redis put back later could hand them to someone else unnoticed."""
    loop = Loop()
    loop.transaction.fail["commit"] = RetryBatchError("first attempt fails")
    loop.run([good(10, "a")])  # reserved in the store, never committed
    loop.run([good(10, "a")])  # the retry: a duplicate from the store's view
    counter = next(c for c in loop.store.counters_ if not c.startswith("#"))
    assert loop.claims.checks[-1][counter] == [(1, 1)]
    assert len(loop.transaction.committed) == 1


def test_a_customer_s_next_event_right_after_its_commit_is_no_clash() -> None:
    """The claims reader lags behind our own commit: a customer's next event, in the next
    batch, re-issued its number and claimed it again, the check found our own committed claim
    and forced a full rebuild (dozens per run under concurrent repeats of a customer)."""
    loop = Loop()
    loop.run([good(10, "a")])
    loop.run([good(11, "a")])
    assert loop.recovery.calls == [], "no rebuild"
    assert len(loop.transaction.committed) == 2


def test_a_batch_of_known_customers_claims_nothing() -> None:
    loop = Loop()
    loop.run([good(10, "a")])
    loop.run([good(11, "a")])
    assert len(loop.claims.checks) == 1 and len(loop.transaction.committed) == 2
