"""The API answers only committed numbers (issue 25): Redis holds a batch's numbers before its
Kafka transaction commits, and a batch that never commits must not have shown one."""

from __future__ import annotations

from collections.abc import Callable

import redis

from customer_ids.config.settings import Settings
from customer_ids.store.factory import number_store
from tests.helpers.api import TOKENS, api_client, bearer
from tests.helpers.events import make_events, send
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import wait_for_outputs


def test_a_reservation_of_a_batch_that_has_not_committed_is_never_shown(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    settings = Settings.from_env(scenario.create_topics().env())
    client = api_client(settings)
    [event] = send(scenario, make_events(1, seed=2601))
    path = f"/v1/customers/{event.source_system}/{event.customer_id}"
    # The worker stops itself after its records reached the broker, before its commit.
    stopped = start_service(CUSTOMER_IDS_FAILPOINT="before_commit:1")
    stopped.wait_for_log("failpoint_reached", timeout=120)
    store = number_store(redis.Redis.from_url(settings.redis_url), settings.redis_prefix)
    reserved = store.lookup([event.customer_key]).get(event.customer_key)
    assert reserved is not None  # Redis holds the number: the batch reserved it
    answer = client.get(path, headers=bearer(TOKENS.reader))
    assert answer.status_code == 404, answer.text  # not committed: not a number yet

    stopped.kill()  # its transaction is aborted when the next worker takes its id over
    start_service("again")
    committed = wait_for_outputs(settings.bootstrap_servers, settings.output_topic, 1, timeout=180)
    [number] = committed.numbers_by_customer()[event.customer_key]
    answer = client.get(path, headers=bearer(TOKENS.reader))
    assert answer.status_code == 200, answer.text
    assert answer.json()["customer_number"] == number
