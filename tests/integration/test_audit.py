"""The uniqueness auditor on the real broker: silent on a run of the service, and each broken
promise written into an output topic reported exactly once, in its metrics and in its log."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.wire.codec import customer_id_assigned_codec
from tests.helpers.auditor import AuditorProcess
from tests.helpers.events import make_events, send
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import wait_for_outputs

TEMPLATE = NumberTemplate.parse("CU-{seq:8}-{check:luhn}")  # the default sequence's template
MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


def output(customer: str, value: int, number: str | None = None) -> CustomerIdAssigned:
    rendered = TEMPLATE.render(RenderContext(value, MOMENT, "BUSINESS", "DE"))
    return CustomerIdAssigned(
        event_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
        customer_id=customer,
        source_system="crm",
        customer_number=number or rendered,
        sequence_name="CU",
        sequence=value,
        assigned_at=MOMENT,
    )


def write(scenario: Scenario, records: list[CustomerIdAssigned]) -> None:
    codec = customer_id_assigned_codec()
    producer = Producer({"bootstrap.servers": scenario.endpoints.bootstrap})
    for record in records:
        producer.produce(
            scenario.output_topic,
            key=record.customer_key.encode(),
            value=codec.encode(record.to_record()),
        )
    assert producer.flush(60) == 0


def test_the_auditor_finds_nothing_in_a_run_of_the_service(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    sent = send(scenario.create_topics(), make_events(600, duplicates=0.1, seed=5))
    start_service()
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(sent))
    auditor = AuditorProcess(scenario, tmp_path, "--until-caught-up", "--gap-grace", "0").start()
    assert auditor.wait() == 0, auditor.log_path.read_text()[-3000:]
    assert auditor.findings() == []
    [caught_up] = [e for e in auditor.log_events() if e["event"] == "audit_caught_up"]
    assert caught_up["customers"] == len({e.customer_key for e in sent})


def test_each_broken_promise_is_reported_once_in_metrics_and_log(
    scenario: Scenario, tmp_path: Path
) -> None:
    scenario.create_topics()
    good = [output("a", 1), output("b", 2)]
    shared = output("c", 1)  # a's number again
    second = output("a", 3)  # a second number for a
    invalid = output("d", 4, number="CU-00000004-0")  # a wrong check digit
    after_gap = output("e", 6)  # 5 is never committed
    records = [*good, shared, second, invalid, after_gap]
    write(scenario, records + records)  # every broken promise twice: reported once
    auditor = AuditorProcess(scenario, tmp_path, "--gap-grace", "0").start()
    try:
        seen = auditor.wait_for_metric("customer_ids_audit_caught_up", 1)
        seen = auditor.wait_for_metric("customer_ids_audit_sequence_gaps_total{counter=CU}", 1)
        assert seen["customer_ids_audit_records_total"] == 2 * len(records)
        assert seen["customer_ids_audit_numbers_shared_total"] == 1
        assert seen["customer_ids_audit_customers_with_two_numbers_total"] == 1
        assert seen["customer_ids_audit_invalid_numbers_total{sequence=CU}"] == 1
        # Following the topic: a new broken promise is seen as it is committed.
        write(scenario, [output("f", 2)])
        seen = auditor.wait_for_metric("customer_ids_audit_numbers_shared_total", 2)
    finally:
        assert auditor.stop() == 0
    assert sorted(auditor.findings()) == [
        "audit_invalid_number",
        "audit_number_shared",
        "audit_number_shared",
        "audit_sequence_gap",
        "audit_two_numbers",
    ]
    lines = [e for e in auditor.log_events() if e["event"] == "audit_sequence_gap"]
    assert lines[0]["detail"] == "value(s) 5 never committed"
    assert lines[0]["level"] == "warning"
