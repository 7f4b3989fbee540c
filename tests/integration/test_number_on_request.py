"""A number on request (issue 22): POST /v1/customers sends the event and answers with the
committed number; the API never allocates, so repeats, two API processes and a service killed
while requests wait all end with one number per customer, the one on the output topic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from customer_ids.adapters.log_reader import read_to_end
from customer_ids.config.settings import Settings
from tests.helpers.api import TOKENS, ApiProcess, api_client, bearer
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import read_committed, wait_for_outputs


def body(customer_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "source_system": "signup",
        "customer_id": customer_id,
        "customer_type": "INDIVIDUAL",
        "country_code": "DE",
        "email": f"{customer_id}@example.org",
        **extra,
    }


def post_customer(api: ApiProcess, customer: str) -> tuple[str, int, str]:
    """(customer, status, number) of one POST /v1/customers to a running API process."""
    answer = httpx.post(
        f"{api.url}/v1/customers", json=body(customer), headers=bearer(TOKENS.writer), timeout=120
    )
    return customer, answer.status_code, answer.json().get("customer_number", "")


def records_on(bootstrap: str, topic: str) -> int:
    count = 0

    def take(_: object) -> None:
        nonlocal count
        count += 1

    read_to_end(bootstrap, topic, take)
    return count


def test_a_new_customer_gets_its_committed_number_and_a_known_one_no_event(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    settings = Settings.from_env(scenario.create_topics().env())
    start_service()
    client = api_client(settings)
    writer = bearer(TOKENS.writer)
    first = client.post("/v1/customers", json=body("u1"), headers=writer)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == "/v1/customers/signup/u1"
    committed = read_committed(settings.bootstrap_servers, settings.output_topic)
    assert committed.numbers_by_customer()["signup/u1"] == {first.json()["customer_number"]}
    assert first.json()["assigned_at"] is not None
    sent = records_on(settings.bootstrap_servers, settings.input_topic)

    again = client.post("/v1/customers", json=body("u1"), headers=writer)
    assert again.status_code == 200, again.text
    assert again.json()["customer_number"] == first.json()["customer_number"]
    assert records_on(settings.bootstrap_servers, settings.input_topic) == sent  # no event

    # Any id: the Location names it escaped, and answers it.
    odd = client.post("/v1/customers", json=body("€ 1?x#y/z"), headers=writer)
    assert odd.status_code == 201, odd.text
    assert odd.headers["location"] == "/v1/customers/signup/%E2%82%AC%201%3Fx%23y%2Fz"
    asked = client.get(odd.headers["location"], headers=writer)
    assert asked.status_code == 200, asked.text
    assert asked.json()["customer_number"] == odd.json()["customer_number"]


def test_who_may_ask_and_what_is_refused(scenario: Scenario) -> None:
    client = api_client(Settings.from_env(scenario.create_topics().env()))
    assert client.post("/v1/customers", json=body("u2")).status_code == 401
    reader = bearer(TOKENS.reader)
    assert client.post("/v1/customers", json=body("u2"), headers=reader).status_code == 403
    writer = bearer(TOKENS.writer)
    missing = client.post("/v1/customers", json={"source_system": "x"}, headers=writer)
    assert missing.status_code == 422
    assert "customer_id" in missing.json()["detail"]
    control = client.post("/v1/customers", json=body("u\n2"), headers=writer)
    assert control.status_code == 422
    assert "customer_id contains a control character" in control.json()["detail"]
    country = client.post("/v1/customers", json=body("u2", country_code="D1"), headers=writer)
    assert country.status_code == 422 and "country_code" in country.json()["detail"]
    event_id = client.post("/v1/customers", json=body("u2", event_id="nope"), headers=writer)
    assert event_id.status_code == 422 and "event_id" in event_id.json()["detail"]
    # A time that encodes but does not decode: the service would dead-letter it.
    late = body("u2", occurred_at="9999-12-31T23:00:00-05:00")
    overflow = client.post("/v1/customers", json=late, headers=writer)
    assert overflow.status_code == 422 and "occurred_at" in overflow.json()["detail"]
    huge = body("u2", attributes={f"k{i}": "v" * 1000 for i in range(1000)})
    too_large = client.post("/v1/customers", json=huge, headers=writer)
    assert too_large.status_code == 413 and "bytes" in too_large.json()["detail"]
    # The OpenAPI document shows the endpoint with each of its answers.
    spec = client.get("/openapi.json").json()["paths"]["/v1/customers"]["post"]
    assert set(spec["responses"]) >= {"200", "201", "202", "401", "403", "413", "422", "503"}
    assert "Location" in spec["responses"]["202"]["headers"]
    # Nothing refused reached the input topic (nor, so, the dead-letter topic).
    assert records_on(scenario.endpoints.bootstrap, scenario.input_topic) == 0


def test_repeats_through_one_and_two_api_processes_get_one_number_each(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    scenario.create_topics()
    start_service()
    apis = [ApiProcess(scenario, tmp_path).start(), ApiProcess(scenario, tmp_path).start()]
    customers = [f"c{i}-{uuid.uuid4().hex[:6]}" for i in range(40)]

    def ask(turn: int) -> tuple[str, int, str]:
        # The first half: both requests of a customer at one process; the rest: one at each
        # process, at the same moment.
        api = apis[0] if turn < len(customers) else apis[turn % 2]
        return post_customer(api, customers[turn // 2])

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(ask, range(2 * len(customers))))
    finally:
        for api in apis:
            api.stop()
    assert {status for _, status, _ in answers} <= {200, 201}, answers
    committed = read_committed(scenario.endpoints.bootstrap, scenario.output_topic)
    numbers = committed.numbers_by_customer()
    for customer, _, number in answers:
        assert numbers[f"signup/{customer}"] == {number}  # one number, the output topic's
    by_number = committed.customers_by_number()
    assert all(len(holders) == 1 for holders in by_number.values())


def test_requests_waiting_while_the_service_is_killed_end_with_one_number(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    scenario.create_topics()
    service = start_service()
    api = ApiProcess(scenario, tmp_path, CUSTOMER_IDS_API_ASSIGN_TIMEOUT_MS="3000").start()
    customers = [f"k{i}-{uuid.uuid4().hex[:6]}" for i in range(30)]

    def ask(customer: str) -> tuple[str, int, str]:
        return post_customer(api, customer)

    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            early = list(pool.map(ask, customers[:10]))
            service.kill()  # SIGKILL while the next requests wait
            waiting = [pool.submit(ask, c) for c in customers[10:]]
            time.sleep(1.0)
            start_service("again")
            answers = early + [f.result() for f in waiting]
        assert {status for _, status, _ in answers} <= {200, 201, 202}, answers
        # A 202 is followed by the number on asking again.
        deadline = time.monotonic() + 180
        for i, (customer, status, _) in enumerate(answers):
            while status == 202 and time.monotonic() < deadline:
                asked = httpx.get(
                    f"{api.url}/v1/customers/signup/{customer}",
                    headers=bearer(TOKENS.writer),
                    timeout=30,
                )
                if asked.status_code == 200:
                    answers[i] = (customer, 200, asked.json()["customer_number"])
                    break
                time.sleep(0.5)
        assert all(status in (200, 201) for _, status, _ in answers), answers
    finally:
        api.stop()
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 30)
    numbers = committed.numbers_by_customer()
    for customer, _, number in answers:
        assert numbers[f"signup/{customer}"] == {number}
