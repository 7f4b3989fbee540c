"""Recovery on the real broker and Redis: all or nothing, to the true end of the log, never
stopped by records that are not ours."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
import redis
from confluent_kafka import Producer

from consumer import recovery as recovery_module
from consumer.bootstrap import topic_specs
from consumer.metrics import ServiceMetrics
from consumer.recovery import StateRecovery, read_log_state
from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.config.settings import Settings
from customer_ids.domain.events import CustomerIdAssigned, now_utc
from customer_ids.store.factory import number_store
from customer_ids.store.ports import StoredAssignment
from customer_ids.store.redis_store import RedisNumberStore
from customer_ids.wire.codec import customer_id_assigned_codec
from customer_ids.wire.headers import ASSIGNMENT_HEADER
from tests.helpers.own_redis import OwnRedis
from tests.helpers.service import Scenario
from tests.helpers.services import Endpoints


def settings_of(scenario: Scenario) -> Settings:
    settings = Settings.from_env(scenario.env())
    ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    return settings


def output_record(value: int) -> tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]:
    customer = f"crm/C{value}"
    stored = StoredAssignment("CU", value, f"CU-{value:08d}")
    event = CustomerIdAssigned(
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        f"C{value}",
        "crm",
        stored.number,
        "CU",
        value,
        now_utc(),
    )
    value_bytes = customer_id_assigned_codec().encode(event.to_record())
    return customer.encode(), value_bytes, [(ASSIGNMENT_HEADER, stored.encode().encode())]


def write_outputs(settings: Settings, values: range, txn_id: str | None = None) -> Producer:
    """Committed outputs for customers crm/C<value>, in one transaction."""
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "transactional.id": txn_id or f"test-{uuid.uuid4().hex[:8]}",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for value in values:
        key, data, headers = output_record(value)
        producer.produce(settings.output_topic, key=key, value=data, headers=list(headers))
    producer.flush(30)
    return producer


def store_of(scenario: Scenario, settings: Settings) -> RedisNumberStore:
    return number_store(redis.Redis.from_url(scenario.endpoints.redis_url), settings.redis_prefix)


class FailingStore(RedisNumberStore):
    """Redis stops answering during the restore, after the first chunk."""

    calls = 0

    def restore(self, assignments: Mapping[str, str]) -> None:
        self.calls += 1
        if self.calls == 2:
            raise redis.TimeoutError("Timeout reading from socket (injected)")
        super().restore(assignments)


def test_a_rebuild_that_fails_half_way_is_not_adopted(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(scenario)
    write_outputs(settings, range(1, 3001)).commit_transaction(30)
    monkeypatch.setattr(recovery_module, "RESTORE_CHUNK", 500)
    good = store_of(scenario, settings)
    failing = FailingStore(good._redis, good.keys, good.leases, 5.0)
    with pytest.raises(redis.TimeoutError):
        StateRecovery(failing, settings, ServiceMetrics()).ensure(None)
    status = good.status()
    assert not status.valid and (status.epoch or "").startswith("rebuilding:")
    # Another instance (or the same one, retrying) must rebuild, not adopt the half state.
    valid = StateRecovery(good, settings, ServiceMetrics()).ensure(None)
    assert good.status().valid and good.status().epoch == valid.epoch
    assert good.counters(["CU"]) == {"CU": 3000}
    assert good.lookup(["crm/C2999"])["crm/C2999"].number == "CU-00002999"


def test_tombstones_and_foreign_records_are_counted_and_skipped(scenario: Scenario) -> None:
    settings = settings_of(scenario)
    producer = write_outputs(settings, range(1, 101))
    producer.produce(settings.output_topic, key=b"crm/gone", value=None)  # a tombstone
    producer.produce(settings.output_topic, key=b"other", value=b"not avro, no header")
    producer.commit_transaction(30)
    state = read_log_state(settings, lambda chunk: None)
    assert state.skipped == {"tombstone": 1, "not a CustomerIdAssigned record": 1}
    store = store_of(scenario, settings)
    StateRecovery(store, settings, ServiceMetrics()).ensure(None)
    assert store.counters(["CU"]) == {"CU": 100}


def test_recovery_waits_for_a_transaction_open_when_it_began(scenario: Scenario) -> None:
    """A read_committed reader's own end is the last stable offset, before open transactions;
    recovery samples the high watermark, so it waits for this one and sees its numbers."""
    settings = settings_of(scenario)
    write_outputs(settings, range(1, 11)).commit_transaction(30)
    open_txn = write_outputs(settings, range(11, 21))  # flushed, not committed
    store = store_of(scenario, settings)
    done: list[int] = []
    thread = threading.Thread(
        target=lambda: done.append(
            StateRecovery(store, settings, ServiceMetrics()).ensure(None).floors["CU"]
        ),
        daemon=True,
    )
    thread.start()
    time.sleep(3)
    assert thread.is_alive(), "recovery finished without waiting for the open transaction"
    open_txn.commit_transaction(30)
    thread.join(60)
    assert done == [20]
    assert store.counters(["CU"]) == {"CU": 20}


def test_a_restarted_server_with_older_data_is_recovered_from_its_checkpoint(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the log after the state's own checkpoint is read when the server changed."""
    reads: list[int] = []
    real_rebuild = recovery_module.rebuild_map

    def counted(*args: Any, **kwargs: Any) -> recovery_module.LogState:
        state = real_rebuild(*args, **kwargs)
        reads.append(state.records_read)
        return state

    monkeypatch.setattr(recovery_module, "rebuild_map", counted)
    settings = settings_of(scenario)
    write_outputs(settings, range(1, 501)).commit_transaction(30)
    store = store_of(scenario, settings)
    recovery = StateRecovery(store, settings, ServiceMetrics())
    first = recovery.ensure(None)
    write_outputs(settings, range(501, 601)).commit_transaction(30)
    # The same data on "another server": as after a restart or failover.
    store._redis.set(store.keys.identity, "an-older-server/0")
    assert not store.status().valid
    second = recovery.ensure(first.epoch)
    assert second.epoch != first.epoch
    assert reads[0] >= 500, "the first recovery reads everything"
    assert reads[1] <= 100, f"the second reads from the checkpoint on, not {reads[1]} records"
    assert store.counters(["CU"]) == {"CU": 600}
    assert store.lookup(["crm/C550"])["crm/C550"].value == 550


def test_redis_paused_during_the_restore_leaves_nothing_half_valid(
    scenario: Scenario, own_redis: OwnRedis
) -> None:
    """Redis stops answering (SIGSTOP) while a rebuild writes; the rebuild fails on its socket
    timeout or finishes late, and either way only a completed rebuild is ever valid."""
    settings = settings_of(scenario)
    write_outputs(settings, range(1, 60_001)).commit_transaction(60)
    client = redis.Redis.from_url(own_redis.url, socket_timeout=2)
    store = number_store(client, settings.redis_prefix)
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            StateRecovery(store, settings, ServiceMetrics()).ensure(None)
        except BaseException as exc:  # what the service would retry
            errors.append(exc)

    thread = threading.Thread(target=rebuild, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (store.status().epoch or "").startswith("rebuilding:") and thread.is_alive():
        assert time.monotonic() < deadline, "the rebuild never started"
        time.sleep(0.01)
    own_redis.pause()
    time.sleep(4)  # past the client's 2 s socket timeout
    own_redis.resume()
    thread.join(120)
    status = store.status()
    if errors:
        assert isinstance(errors[0], redis.RedisError), errors
        assert not status.valid  # the marker stays until a rebuild completes
        StateRecovery(store, settings, ServiceMetrics()).ensure(None)
    assert store.status().valid
    assert store.counters(["CU"]) == {"CU": 60_000}
    assert store.lookup(["crm/C59999"])["crm/C59999"].value == 59_999


def test_a_rebuild_that_turned_full_is_taken_over_in_full(scenario: Scenario) -> None:
    """A checkpoint rebuild that found keys lost turns full in Redis before it wipes: one that
    dies half way must be followed by a full rebuild, not by one trusting the checkpoint."""
    settings = settings_of(scenario)
    write_outputs(settings, range(1, 201)).commit_transaction(30)
    store = store_of(scenario, settings)
    StateRecovery(store, settings, ServiceMetrics()).ensure(None)
    seen = store.status().epoch
    full, checkpoint = store.begin_rebuild("dies-half-way", seen)
    assert not full and checkpoint, "a checkpoint rebuild to begin with"
    store.escalate_rebuild("dies-half-way")
    marker = store.status().epoch
    assert marker == "rebuilding:full-dies-half-way"
    full, checkpoint = store.begin_rebuild("successor", marker)
    assert full and checkpoint == {}


def test_a_restore_larger_than_one_call_lands_whole_with_its_ledger(endpoints: Endpoints) -> None:
    # More buckets than one restore call takes (RESTORE_BUCKETS): every customer is found
    # again and the ledger counts every bucket, so the next lookup trusts the map.
    client = redis.Redis.from_url(endpoints.redis_url)
    store = number_store(client, f"t-{uuid.uuid4().hex[:10]}:")
    store.mark_valid_for_tests("e")
    wanted = {f"crm/c{i}": f"CU|{i}|CU-{i:08d}" for i in range(1, 12_001)}
    store.restore(wanted)
    found = store.lookup(list(wanted))
    assert {key: a.encode() for key, a in found.items()} == wanted
    assert store.ledger_problems() == []
