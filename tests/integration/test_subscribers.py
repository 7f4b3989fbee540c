"""`tail` and `watch`, the subscribers people run, read what the service committed."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable

from rich.console import Console

from customer_ids.tools.tail import tail
from customer_ids.tools.watch import watch
from customer_ids.wire.codec import customer_id_assigned_codec
from tests.helpers.events import make_events, send
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import wait_for_outputs


def test_tail_prints_and_watch_counts_every_committed_assignment(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    sent = send(scenario.create_topics(), make_events(200, duplicates=0.1, seed=1701))
    start_service()
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(sent))
    bootstrap, topic = scenario.endpoints.bootstrap, scenario.output_topic

    out = io.StringIO()
    printed = tail(
        bootstrap,
        topic,
        f"t-{scenario.tag}-tail",
        threading.Event(),
        out=out,
        max_events=len(sent),
        idle_seconds=120,
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert printed == len(lines) == len(sent)
    assert {line["causation_id"] for line in lines} == {e.event_id for e in sent}

    tally = watch(
        bootstrap,
        topic,
        f"t-{scenario.tag}-watch",
        customer_id_assigned_codec(),
        threading.Event(),
        idle_seconds=5,
        console=Console(file=io.StringIO()),
    )
    customers = {e.customer_key for e in sent}
    assert (tally.outputs, len(tally.customers), tally.conflicts) == (len(sent), len(customers), 0)
    assert tally.repeats == len(sent) - len(customers)
