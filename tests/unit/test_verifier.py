"""The independent verifier judged on its own: it counts the input records the topic holds, so
a record the producer wrote twice needs two outputs, and an input record answered twice fails."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from customer_ids.domain.events import CustomerCreated, CustomerIdAssigned, now_utc
from tests.helpers.events import make_events
from tests.helpers.verify import Committed, assert_invariants


def answered(events: list[CustomerCreated], times: Counter[str] | None = None) -> Committed:
    """One output per event (or `times[event_id]` outputs), numbers 1.. in order."""
    outputs = []
    for number, event in enumerate(events, start=1):
        for _ in range((times or Counter())[event.event_id] or 1):
            outputs.append(
                CustomerIdAssigned(
                    f"out-{event.event_id}",
                    event.event_id,
                    event.customer_id,
                    event.source_system,
                    f"CU-{number:08d}",
                    "CU",
                    number,
                    now_utc(),
                )
            )
    return Committed(outputs=outputs)


def test_a_record_the_producer_wrote_twice_needs_its_two_outputs() -> None:
    events = make_events(5, seed=3)
    twice = Counter({e.event_id: 1 for e in events}) + Counter({events[2].event_id: 1})
    assert_invariants(events, answered(events, twice), recorded=twice)
    with pytest.raises(AssertionError, match="input records without an output"):
        assert_invariants(events, answered(events), recorded=twice)


def test_an_input_record_answered_twice_is_caught_with_or_without_the_topic_s_count() -> None:
    events = make_events(5, seed=4)
    doubled = answered(events, Counter({events[0].event_id: 2}))
    once = Counter({e.event_id: 1 for e in events})
    with pytest.raises(AssertionError, match="more than one output"):
        assert_invariants(events, doubled)
    with pytest.raises(AssertionError, match="more than one output"):
        assert_invariants(events, doubled, recorded=once)


def test_an_event_sent_but_missing_from_the_input_topic_is_caught() -> None:
    events = make_events(3, seed=5)
    recorded = Counter({e.event_id: 1 for e in events[1:]})
    with pytest.raises(AssertionError, match="not in the input topic"):
        assert_invariants(events, answered(events), recorded=recorded)


def test_the_two_outputs_of_one_event_must_carry_one_event_id() -> None:
    events = make_events(2, seed=6)
    committed = answered(events, Counter({events[0].event_id: 2}))
    committed.outputs[1] = dataclasses.replace(committed.outputs[0], event_id="another-id")
    twice = Counter({events[0].event_id: 2, events[1].event_id: 1})
    with pytest.raises(AssertionError, match="different ids"):
        assert_invariants(events, committed, recorded=twice)
