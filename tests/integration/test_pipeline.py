"""The whole path on the real broker and Redis: events in, numbers out, exactly once."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers.events import bad_values, make_events, send, send_raw
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import assert_invariants, wait_for_outputs


def test_thousand_events_get_thousand_distinct_contiguous_numbers(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    sent = send(scenario, make_events(1000))
    start_service()
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 1000)
    assert len(committed.outputs) == 1000
    assert_invariants(sent, committed)
    assert sorted(o.sequence for o in committed.outputs) == list(range(1, 1001))
    assert all(
        o.customer_number == f"CU-{o.sequence:08d}-" + o.customer_number[-1]
        for o in committed.outputs
    )


def test_duplicate_events_get_the_same_number(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    originals = make_events(200, seed=11)
    again = originals[:50]  # the very same events, redelivered
    retried = [
        type(e)(**{**{f: getattr(e, f) for f in e.__slots__}, "event_id": e.event_id[:-4] + "beef"})
        for e in originals[50:80]
    ]
    sent = send(scenario, originals + again + retried)
    start_service()
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 280)
    assert len(committed.outputs) == 280
    numbers = committed.numbers_by_customer()
    assert len(numbers) == 200
    assert all(len(n) == 1 for n in numbers.values())
    assert (
        sorted(
            o.sequence
            for o in committed.outputs
            if o.causation_id in {e.event_id for e in originals}
        )
        != []
    )
    assert_invariants(sent, committed)


def test_bad_input_is_dead_lettered_with_reasons_and_good_input_around_it_is_assigned(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    bad = bad_values()
    first = send(scenario, make_events(20, seed=21))
    send_raw(scenario, bad.values())
    second = send(scenario, make_events(20, seed=22))
    service = start_service()
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        40,
        dlq_topic=scenario.dlq_topic,
        dead_letters=len(bad),
    )
    assert_invariants(first + second, committed)
    assert len(committed.dead_letters) == len(bad)
    for value, headers in committed.dead_letters:
        assert set(headers) >= {
            "error.class",
            "error.message",
            "source.topic",
            "source.partition",
            "source.offset",
        }
        assert headers["source.topic"].decode() == scenario.input_topic
        assert headers["error.class"] in (b"DecodeError", b"ValidationError")
        assert value is None or value in bad.values()
    reasons = b"\n".join(h["error.message"] for _, h in committed.dead_letters).decode()
    assert "unknown schema fingerprint" in reasons
    assert "customer_id is empty" in reasons
    assert "empty message value" in reasons
    assert service.running(), "bad input must never stop the service"
    assert service.log().count('"event": "dead_lettered"') == len(bad)


def test_restarted_service_continues_the_sequence(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    first = send(scenario, make_events(300, seed=31))
    service = start_service()
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 300)
    assert service.terminate() == 0, service.log()[-2000:]
    assert '"service_stopped"' in service.log()
    second = send(scenario, make_events(300, seed=32))
    start_service()
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 600)
    assert_invariants(first + second, committed)
    assert sorted(o.sequence for o in committed.outputs) == list(range(1, 601))
