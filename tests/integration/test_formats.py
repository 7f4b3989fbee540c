"""Number formats through the real service: routing, periods, immutability, lookup."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from customer_ids.domain.numbers import NumberTemplate
from tests.helpers.events import make_events, send
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import assert_invariants, wait_for_outputs

SEQUENCES = """
timezone = "Europe/Berlin"
[[sequences]]
name = "B"
template = "B-{region}-{seq:7}"
customer_types = ["BUSINESS"]

[[sequences]]
name = "P"
template = "P{seq:8}{check:damm}"
customer_types = ["INDIVIDUAL"]
"""


def test_routed_events_get_numbers_of_their_sequence_and_format(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    config = tmp_path / "sequences.toml"
    config.write_text(SEQUENCES)
    sent = send(scenario, make_events(300, seed=41))
    start_service(CUSTOMER_IDS_CONFIG=str(config))
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 300)
    assert_invariants(sent, committed)
    by_event = {e.event_id: e for e in sent}
    business = NumberTemplate.parse("B-{region}-{seq:7}")
    personal = NumberTemplate.parse("P{seq:8}{check:damm}")
    for out in committed.outputs:
        source = by_event[out.causation_id]
        if source.customer_type == "BUSINESS":
            assert out.sequence_name == "B" and business.matches(out.customer_number)
            assert out.customer_number == f"B-{source.country_code}-{out.sequence:07d}"
        else:
            assert out.sequence_name == "P" and personal.matches(out.customer_number)
    for name in ("B", "P"):
        values = sorted(o.sequence for o in committed.outputs if o.sequence_name == name)
        assert values == list(range(1, len(values) + 1)), f"{name} counts on its own"


def test_daily_sequence_across_midnight_through_the_service(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    midnight = datetime(2023, 10, 16, tzinfo=UTC)
    events = [
        dataclasses.replace(e, occurred_at=midnight + timedelta(milliseconds=i - 5))
        for i, e in enumerate(make_events(10, seed=42))
    ]
    send(scenario, events)
    start_service(
        CUSTOMER_IDS_NUMBER_FORMAT="{date:%Y%m%d}{seq:3}",
        CUSTOMER_IDS_SEQUENCE_PERIOD="daily",
        CUSTOMER_IDS_SEQUENCE_NAME="D",
        CUSTOMER_IDS_PARTITIONS="1",
    )
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 10)
    numbers = sorted(o.customer_number for o in committed.outputs)
    assert numbers == [f"20231015{i:03d}" for i in range(1, 6)] + [
        f"20231016{i:03d}" for i in range(1, 6)
    ]


def test_a_template_change_affects_only_numbers_issued_afterwards(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    old = send(scenario, make_events(50, seed=43))
    service = start_service(CUSTOMER_IDS_NUMBER_FORMAT="OLD-{seq:5}")
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 50)
    assert service.terminate() == 0
    again = send(
        scenario, [dataclasses.replace(e, event_id=e.event_id[:-4] + "0000") for e in old[:20]]
    )
    new = send(scenario, make_events(30, seed=44))
    start_service(CUSTOMER_IDS_NUMBER_FORMAT="NEW-{seq:6}-{check:luhn}")
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 100)
    assert_invariants(old + again + new, committed)
    by_cause = {o.causation_id: o for o in committed.outputs}
    assert all(by_cause[e.event_id].customer_number.startswith("OLD-") for e in old + again)
    fresh = [by_cause[e.event_id] for e in new]
    assert all(o.customer_number.startswith("NEW-") for o in fresh)
    assert sorted(o.sequence for o in fresh) == list(range(51, 81))


def test_lookup_both_ways_from_redis_and_from_the_log(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    sent = send(scenario, make_events(20, seed=45))
    start_service(CUSTOMER_IDS_REVERSE_INDEX="on")
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 20)
    target = committed.outputs[7]
    env = scenario.env(CUSTOMER_IDS_REVERSE_INDEX="on")

    def lookup(*args: str) -> tuple[int, dict[str, object]]:
        result = subprocess.run(
            [sys.executable, "-m", "customer_ids.cli", "lookup", "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.returncode, json.loads(result.stdout) if result.stdout else {}

    code, found = lookup("--customer", target.customer_id, "--source", target.source_system)
    assert code == 0 and found["customer_number"] == target.customer_number
    assert found["from"] == "redis"
    code, found = lookup("--number", target.customer_number)
    assert code == 0 and found["customer_id"] == target.customer_id
    code, found = lookup("--number", target.customer_number, "--from-log")
    assert code == 0 and found["customer_id"] == target.customer_id and found["from"] == "kafka"
    assert lookup("--number", "CU-99999999-0")[0] == 1
    assert {e.customer_id for e in sent} >= {target.customer_id}


def test_a_format_change_that_could_repeat_numbers_is_refused_at_start_up(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    """CU{seq:4} -> CU{seq:4:scrambled} re-issued 8 of the next 100 numbers: now it stops with
    a message (exit 2, not restarted), and the numbers already issued stay the only ones."""
    send(scenario, make_events(20, seed=46))
    service = start_service(CUSTOMER_IDS_NUMBER_FORMAT="CU{seq:4}")
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 20)
    assert service.terminate() == 0
    refused = start_service(
        CUSTOMER_IDS_NUMBER_FORMAT="CU{seq:4:scrambled}", CUSTOMER_IDS_SCRAMBLE_KEY="k" * 16
    )
    assert refused.proc is not None and refused.proc.wait(120) == 2, refused.log()[-2000:]
    assert "could render numbers already issued" in refused.log()
    assert refused.log().count('"worker_started"') == 1, "a refused configuration is not retried"
    allowed = start_service(CUSTOMER_IDS_NUMBER_FORMAT="CV{seq:4}")
    send(scenario, make_events(5, seed=47))
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 25)
    assert sum(o.customer_number.startswith("CV") for o in committed.outputs) == 5
    assert allowed.running()


def test_two_conflicting_formats_started_at_the_same_moment_one_refuses(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    """Both used to read the history before either had written its own, both passed, both
    were recorded, and every later start accepted both: shared numbers for good. Now the
    renderings are checked in the watermark partition's order: the later one refuses."""
    scenario.create_topics()
    plain = start_service(
        "plain", CUSTOMER_IDS_NUMBER_FORMAT="CU{seq:4}", CUSTOMER_IDS_TRANSACTIONAL_ID="t-plain"
    )
    scrambled = start_service(
        "scrambled",
        CUSTOMER_IDS_NUMBER_FORMAT="CU{seq:4:scrambled}",
        CUSTOMER_IDS_SCRAMBLE_KEY="k" * 16,
        CUSTOMER_IDS_TRANSACTIONAL_ID="t-scrambled",
    )
    both = (plain, scrambled)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and all(s.running() for s in both):
        time.sleep(0.2)
    refused = [s for s in both if not s.running()]
    assert len(refused) == 1, "exactly one of two conflicting formats may start"
    assert refused[0].proc is not None and refused[0].proc.wait(10) == 2
    assert "could render numbers already issued" in refused[0].log()
    survivor = next(s for s in both if s.running())
    survivor.wait_for_log("service_started", timeout=120)
    send(scenario, make_events(10, seed=48))
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 10)
    assert survivor.running()
