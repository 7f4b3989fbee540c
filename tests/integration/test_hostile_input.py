"""Hostile input and risky topics on the real broker: nothing stalls a partition, nothing
expires the record of truth."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from producer.emitter import CustomerEventProducer
from tests.helpers.events import make_events, send
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import assert_invariants, wait_for_outputs


def test_a_bad_record_too_large_to_dead_letter_whole_goes_as_a_reference(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    """999,800 bytes plus the error headers no longer fit in one record: the worker used to
    exit with MSG_SIZE_TOO_LARGE for good and the partition stopped."""
    scenario.create_topics()
    before = send(scenario, make_events(30, seed=1701))
    bigger: dict[str, Any] = {"message.max.bytes": 1_048_576}
    with CustomerEventProducer(scenario.endpoints.bootstrap, scenario.input_topic, **bigger) as out:
        out.emit_raw(b"C-huge", b"\xc3\x01" + os.urandom(999_798))
    after = send(scenario, make_events(30, seed=1702))
    service = start_service()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        60,
        dlq_topic=scenario.dlq_topic,
        dead_letters=1,
        timeout=180,
    )
    assert_invariants(before + after, committed)
    ((value, headers),) = committed.dead_letters
    assert headers["dead_letter.truncated"] == b"true"
    assert headers["source.size"] == b"999800"
    assert value is not None and len(value) <= 1024
    assert headers["error.class"] == b"DecodeError"
    assert service.running()


def test_text_that_cannot_be_part_of_a_number_fails_alone_every_time(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    """A customer_type with a newline under a {type} template, sent twice: each time that
    record is dead-lettered and the customers around it get numbers."""
    scenario.create_topics()
    good = make_events(40, seed=1801)
    bad = dataclasses.replace(good[0], customer_type="GOLD\nVIP", customer_id="C-newline")
    again = dataclasses.replace(bad, event_id=bad.event_id[:-4] + "0001")
    sent = send(scenario, [*good[1:20], bad, *good[20:], again])
    start_service(CUSTOMER_IDS_NUMBER_FORMAT="{type}-{seq:6}")
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        39,
        dlq_topic=scenario.dlq_topic,
        dead_letters=2,
        timeout=180,
    )
    assert_invariants([e for e in sent if e.customer_id != "C-newline"], committed)
    assert [h["error.class"] for _, h in committed.dead_letters] == [b"ValidationError"] * 2


def test_an_output_topic_that_would_expire_records_is_refused(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    """A record-of-truth topic made by someone else with cleanup.policy=delete."""
    admin = AdminClient({"bootstrap.servers": scenario.endpoints.bootstrap})
    topic = NewTopic(scenario.output_topic, num_partitions=3, config={"cleanup.policy": "delete"})
    for future in admin.create_topics([topic]).values():
        future.result(60)
    service = start_service()
    assert service.proc is not None and service.proc.wait(120) == 2, service.log()[-2000:]
    log = service.log()
    assert scenario.output_topic in log and "cleanup.policy" in log and "kafka-configs" in log
    assert log.count('"worker_started"') == 1, "a refused configuration is not retried"
