"""A real schema registry (Apicurio Registry 3.0.9, Confluent-compatible API): events in the
Confluent wire format round-trip through the service, single-object input keeps working beside
them, and a schema the registry refuses as incompatible stops the service with a message."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema

from customer_ids.adapters.schema_registry import (
    RegistryConfig,
    RegistryFraming,
    framed_codec,
)
from customer_ids.domain.errors import ConfigError, DecodeError
from customer_ids.wire.codec import schemas_dir
from producer.emitter import CustomerEventProducer
from tests.helpers.events import make_events, send, send_raw
from tests.helpers.java import subscribe
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import assert_invariants, read_committed, wait_for_outputs


@pytest.fixture(scope="session")
def registry_url() -> str:
    """The local stack's registry (`customer-ids stack up --registry`), or one named by
    CUSTOMER_IDS_TEST_REGISTRY_URL."""
    from customer_ids.stack.local import LocalStack  # noqa: PLC0415

    url = os.environ.get("CUSTOMER_IDS_TEST_REGISTRY_URL") or LocalStack.default().registry.url
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=10):
            return url
    except OSError as exc:
        pytest.fail(
            f"no schema registry answers at {url} ({exc}): start one with "
            "`customer-ids stack up --registry` (scripts/test does)",
            pytrace=False,
        )


def subject_config(url: str, subject: str) -> str:
    with urllib.request.urlopen(f"{url}/config/{subject}", timeout=10) as reply:
        return str(json.loads(reply.read())["compatibilityLevel"])


@pytest.mark.timeout(900)  # may build the Java subscriber first
def test_events_round_trip_through_the_registry_beside_single_object_ones(
    scenario: Scenario,
    start_service: Callable[..., ServiceProcess],
    registry_url: str,
    java_jar: Path,
) -> None:
    """Python producer (Confluent wire format) -> service -> the Java subscriber."""
    registry = RegistryConfig(registry_url)
    scenario.create_topics()
    framed = make_events(150, seed=1401)
    with CustomerEventProducer(
        scenario.endpoints.bootstrap, scenario.input_topic, schema_registry=registry
    ) as out:
        for event in framed:
            out.emit_event(event)
    plain = send(scenario, make_events(50, seed=1402))  # an upstream not migrated yet
    start_service(SCHEMA_REGISTRY_URL=registry_url)
    codec = framed_codec(registry, scenario.output_topic, "CustomerIdAssigned")
    with closing(codec):
        committed = wait_for_outputs(
            scenario.endpoints.bootstrap, scenario.output_topic, 200, codec=codec, timeout=240
        )
    assert_invariants(framed + plain, committed)
    with pytest.raises(DecodeError, match="not Avro single-object"):  # Confluent wire format
        read_committed(scenario.endpoints.bootstrap, scenario.output_topic)
    for topic in (scenario.input_topic, scenario.output_topic):
        assert subject_config(registry_url, f"{topic}-value") == "BACKWARD"
    lines = subscribe(
        java_jar,
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        f"t-{scenario.tag}-java",
        200,
        "--schema-registry-url",
        registry_url,
    )
    assert {line["framing"] for line in lines} == {"confluent"}
    expected = {(o.customer_key, o.customer_number) for o in committed.outputs}
    assert {(line["key"], line["customer_number"]) for line in lines} == expected


def test_an_incompatible_schema_is_refused_with_a_message(registry_url: str) -> None:
    client = RegistryConfig(registry_url).client()
    topic = f"t-{uuid.uuid4().hex[:10]}-compat"
    RegistryFraming(client, topic, "CustomerIdAssigned").register("BACKWARD")
    schema = json.loads((schemas_dir() / "CustomerIdAssigned.avsc").read_text())
    for field in schema["fields"]:
        if field["name"] == "sequence":
            field["type"] = "string"  # old records (a long) could no longer be read
    changed = RegistryFraming(client, topic, "CustomerIdAssigned", text=json.dumps(schema))
    with pytest.raises(ConfigError, match="not compatible with the versions already registered"):
        changed.register("BACKWARD")
    assert len(client.get_versions(f"{topic}-value")) == 1
    client.close()


def test_the_service_stops_at_start_when_the_registry_refuses_its_schema(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], registry_url: str
) -> None:
    """A newer schema already registered that ours cannot read data of: exit 2, a message."""
    client = RegistryConfig(registry_url).client()
    subject = f"{scenario.output_topic}-value"
    client.set_compatibility(subject, "BACKWARD")
    schema = json.loads((schemas_dir() / "CustomerIdAssigned.avsc").read_text())
    for field in schema["fields"]:
        if field["name"] == "sequence":
            field["type"] = "string"
    client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
    client.close()
    service = start_service(SCHEMA_REGISTRY_URL=registry_url)
    assert service.proc is not None
    assert service.proc.wait(180) == 2, service.log()[-3000:]
    assert "not compatible with the versions already registered" in service.log()


def test_a_record_whose_writer_schema_we_cannot_read_is_dead_lettered_and_the_rest_flow(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], registry_url: str
) -> None:
    """An upstream registers a version without country_code (BACKWARD allows dropping a
    field) and sends with it: that record cannot become our CustomerCreated. It used to
    restart the worker on the same record forever; now it is one dead letter."""
    registry = RegistryConfig(registry_url)
    scenario.create_topics()
    schema = json.loads((schemas_dir() / "CustomerCreated.avsc").read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "country_code"]
    client = registry.client()
    subject = f"{scenario.input_topic}-value"
    client.set_compatibility(subject, "BACKWARD")
    RegistryFraming(client, scenario.input_topic, "CustomerCreated").register("BACKWARD")
    narrower = RegistryFraming(
        client, scenario.input_topic, "CustomerCreated", text=json.dumps(schema)
    )
    narrower.register("BACKWARD")
    record = make_events(1, seed=1601)[0].to_record()
    del record["country_code"]
    value = narrower.encode(record)
    client.close()
    before, after = make_events(20, seed=1602), make_events(20, seed=1603)
    send(scenario, before)
    send_raw(scenario, [value])
    send(scenario, after)
    service = start_service(SCHEMA_REGISTRY_URL=registry_url)
    with closing(framed_codec(registry, scenario.output_topic, "CustomerIdAssigned")) as codec:
        committed = wait_for_outputs(
            scenario.endpoints.bootstrap,
            scenario.output_topic,
            40,
            dlq_topic=scenario.dlq_topic,
            dead_letters=1,
            timeout=240,
            codec=codec,
        )
    assert_invariants(before + after, committed)
    [(_, headers)] = committed.dead_letters
    assert headers["error.class"] == b"DecodeError"
    assert service.running()


def test_the_v2_output_schema_is_a_backward_evolution_of_v1(registry_url: str) -> None:
    """CustomerIdAssigned v2 (merges, possible duplicates: optional fields with defaults)
    registers under a subject holding v1 with the registry's own BACKWARD check."""
    client = RegistryConfig(registry_url).client()
    topic = f"t-{uuid.uuid4().hex[:10]}-v2"
    v1 = (schemas_dir() / "history" / "CustomerIdAssigned.v1.avsc").read_text()
    RegistryFraming(client, topic, "CustomerIdAssigned", text=v1).register("BACKWARD")
    # The check is real: the same v2 without a default for a new field is refused.
    schema = json.loads((schemas_dir() / "CustomerIdAssigned.avsc").read_text())
    for field in schema["fields"]:
        if field["name"] == "possible_duplicates":
            del field["default"]
    strict = RegistryFraming(client, topic, "CustomerIdAssigned", text=json.dumps(schema))
    with pytest.raises(ConfigError, match="not compatible with the versions already registered"):
        strict.register("BACKWARD")
    RegistryFraming(client, topic, "CustomerIdAssigned").register("BACKWARD")
    assert len(client.get_versions(f"{topic}-value")) == 2
    client.close()
