"""The lookup API against the real Redis and Kafka: customers numbered by the real service,
every endpoint, tokens and scopes, the rate limit, audit lines, key rotation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from customer_ids.domain.events import now_utc
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.tools.search_reindex import reindex_search
from tests.helpers.api import (
    KEY_A,
    KEY_B,
    TOKENS,
    ApiProcess,
    Numbered,
    api_client,
    bearer,
    number_customers,
)
from tests.helpers.own_redis import free_port
from tests.helpers.service import Scenario
from tests.helpers.services import Endpoints

SEARCHED = ["Jane.Doe@Example.com", "bob@example.org", "+1 202 555 0143", "0171 2345678"]


@pytest.fixture(scope="module")
def numbered(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Numbered:
    return number_customers(Scenario(endpoints), tmp_path_factory.mktemp("api"))


def render(value: int) -> str:
    ctx = RenderContext(value, now_utc(), "INDIVIDUAL", "DE")
    return NumberTemplate.parse("CU-{seq:8}-{check:luhn}").render(ctx)


def test_customer_to_number_and_who_may_ask(numbered: Numbered) -> None:
    client = api_client(numbered.settings())
    for key in ("webshop/C1", "crm/A/7"):
        answer = client.get(f"/v1/customers/{key}", headers=bearer(TOKENS.reader))
        assert answer.status_code == 200, answer.text
        assert answer.json()["customer_number"] == numbered.number_of(key)
        assert answer.json()["found_in"] == "redis"
    assert (
        client.get("/v1/customers/webshop/nobody", headers=bearer(TOKENS.reader)).status_code == 404
    )
    missing = client.get("/v1/customers/webshop/C1")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/customers/webshop/C1", headers=bearer("cidt_guess")).status_code == 401
    basic = client.get("/v1/customers/webshop/C1", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    forbidden = client.get("/v1/customers/webshop/C1", headers=bearer(TOKENS.search_only))
    assert forbidden.status_code == 403
    assert "numbers:read" in forbidden.json()["detail"]


def test_number_to_customer_from_redis_and_from_the_log(numbered: Numbered) -> None:
    number = numbered.number_of("webshop/C2")
    output = numbered.outputs["webshop/C2"]
    from_redis = api_client(numbered.settings()).get(
        f"/v1/numbers/{number}", headers=bearer(TOKENS.reader)
    )
    assert from_redis.json()["owner"]["customer_id"] == "C2"
    assert from_redis.json()["owner"]["found_in"] == "redis"

    client = api_client(numbered.settings(CUSTOMER_IDS_REVERSE_INDEX="off"))
    for _ in range(2):  # the second from the cache
        body = client.get(f"/v1/numbers/{number}", headers=bearer(TOKENS.reader)).json()
        assert body["valid"] and body["check_digit_ok"]
        assert body["owner"]["found_in"] == "kafka"
        assert body["owner"]["source_system"] == "webshop"
        assert body["owner"]["assigned_at"].startswith(output.assigned_at.isoformat()[:19])
    # A customer lookup now knows the time too: the log told it.
    customer = client.get("/v1/customers/webshop/C2", headers=bearer(TOKENS.reader)).json()
    assert customer["assigned_at"] == body["owner"]["assigned_at"]
    typo = number[:-1] + str((int(number[-1]) + 1) % 10)
    body = client.get(f"/v1/numbers/{typo}", headers=bearer(TOKENS.reader)).json()
    assert body["valid"] is False and body["well_formed"] is True
    assert body["expected_check_digit"] == number[-1]
    assert f"should be {number[-1]}" in body["explanation"]
    assert body["owner"] is None
    unissued = client.get(f"/v1/numbers/{render(9_999_999)}", headers=bearer(TOKENS.reader))
    assert unissued.json()["valid"] and unissued.json()["owner"] is None
    garbage = client.get("/v1/numbers/hello", headers=bearer(TOKENS.reader)).json()
    assert garbage["well_formed"] is False
    metrics = client.get("/metrics").text
    # Two log reads (the number, the unissued one), one hit; the typo and garbage read nothing.
    assert "customer_ids_api_owner_log_reads_total 2.0" in metrics
    assert "customer_ids_api_owner_cache_hits_total 1.0" in metrics


def test_search_by_email_and_phone(numbered: Numbered) -> None:
    client = api_client(numbered.settings())
    headers = bearer(TOKENS.searcher)

    def found(**body: str) -> set[str]:
        answer = client.post("/v1/search", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return {f"{c['source_system']}/{c['customer_id']}" for c in answer.json()["customers"]}

    jane = {"webshop/C1", "crm/A/7"}
    assert found(email="jane.doe@example.com") == jane
    assert found(email="  JANE.DOE@EXAMPLE.COM\t") == jane
    assert found(phone="+49 30 123 45 67") == {"webshop/C1"}
    assert found(phone="030/1234567", region="DE") == {"webshop/C1"}
    assert found(phone="(202) 555-0143", region="US") == {"webshop/C2"}
    assert found(phone="+4917123-45678") == {"crm/C4"}
    assert found(email="nobody@example.com") == set()
    assert found(phone="0171 2345678", region="AT") == set()  # another country's line
    answer = client.post("/v1/search", json={"email": "bob@example.org"}, headers=headers).json()
    assert answer["customers"][0]["customer_number"] == numbered.number_of("webshop/C2")

    assert client.post("/v1/search", json={"email": "jane"}, headers=headers).status_code == 422
    no_region = client.post("/v1/search", json={"phone": "0171 2345678"}, headers=headers)
    assert no_region.status_code == 422
    both = client.post("/v1/search", json={"email": "a@b.de", "phone": "+49301"}, headers=headers)
    assert both.status_code == 422 and "a@b.de" not in both.text
    reader = client.post(
        "/v1/search", json={"email": "bob@example.org"}, headers=bearer(TOKENS.reader)
    )
    assert reader.status_code == 403
    assert client.post("/v1/search", json={"email": "bob@example.org"}).status_code == 401
    off = api_client(numbered.settings(CUSTOMER_IDS_SEARCH_KEY=""))
    assert (
        off.post("/v1/search", json={"email": "bob@example.org"}, headers=headers).status_code
        == 503
    )


def test_the_search_rate_limit_is_per_token(numbered: Numbered) -> None:
    client = api_client(
        numbered.settings(), CUSTOMER_IDS_API_SEARCH_RATE="2", CUSTOMER_IDS_API_SEARCH_BURST="3"
    )
    body = {"email": "bob@example.org"}
    for _ in range(3):
        assert (
            client.post("/v1/search", json=body, headers=bearer(TOKENS.searcher)).status_code == 200
        )
    limited = client.post("/v1/search", json=body, headers=bearer(TOKENS.searcher))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 30  # 2 a minute: one every 30 s
    # Another token has its own bucket; invalid values spend the bucket too.
    other = bearer(TOKENS.search_only)
    assert client.post("/v1/search", json=body, headers=other).status_code == 200
    assert client.post("/v1/search", json={"email": "x"}, headers=other).status_code == 422
    assert client.post("/v1/search", json=body, headers=other).status_code == 200
    assert client.post("/v1/search", json=body, headers=other).status_code == 429
    assert 'customer_ids_api_searches_total{kind="email",outcome="rate_limited"} 2.0' in (
        client.get("/metrics").text
    )


def test_the_real_server_audits_every_search_without_its_value(
    numbered: Numbered, tmp_path: Path
) -> None:
    api = ApiProcess(numbered.scenario, tmp_path, CUSTOMER_IDS_API_SEARCH_BURST="4").start()
    try:
        headers = bearer(TOKENS.searcher)
        statuses = [
            httpx.post(f"{api.url}/v1/search", json=body, headers=headers, timeout=10).status_code
            for body in [
                {"email": SEARCHED[0]},
                {"email": SEARCHED[1]},
                {"phone": SEARCHED[2]},
                {"phone": SEARCHED[3], "region": "DE"},
                {"email": SEARCHED[1]},
            ]
        ]
        assert statuses == [200, 200, 200, 200, 429]
        assert httpx.get(f"{api.url}/readyz").text == "ready\n"
        assert "customer_ids_api_request_seconds_bucket" in httpx.get(f"{api.url}/metrics").text
        assert httpx.get(f"{api.url}/docs").status_code == 200
        paths = httpx.get(f"{api.url}/openapi.json").json()["paths"]
        assert {"/v1/search", "/v1/numbers/{number}"} <= set(paths)
    finally:
        assert api.stop() == 0
    lines = [json.loads(line) for line in api.log().splitlines() if line.startswith("{")]
    audits = [line for line in lines if line["event"] == "search_audit"]
    assert [(a["token"], a["kind"], a["outcome"], a["results"]) for a in audits] == [
        ("support", "email", "ok", 2),
        ("support", "email", "ok", 1),
        ("support", "phone", "ok", 1),
        ("support", "phone", "ok", 1),
        ("support", "email", "rate_limited", 0),
    ]
    normalised = ["jane.doe@example.com", "+12025550143", "+491712345678", "2025550143"]
    leaked = [v for v in SEARCHED + normalised if v.lower() in api.log().lower()]
    assert not leaked, f"searched values in the API's log: {leaked}"


def test_a_port_in_use_stops_the_api_with_a_message(numbered: Numbered, tmp_path: Path) -> None:
    first = ApiProcess(numbered.scenario, tmp_path).start()
    try:
        second = ApiProcess(numbered.scenario, tmp_path)
        second.port = first.port
        with pytest.raises(AssertionError, match="exited"):
            second.start(timeout=20)
        assert second.stop() == 2
        assert "CUSTOMER_IDS_API_PORT" in second.log()
    finally:
        first.stop()


def test_redis_down_is_503_not_404(numbered: Numbered) -> None:
    client = api_client(numbered.settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    down = client.get("/v1/customers/webshop/C1", headers=bearer(TOKENS.reader))
    assert down.status_code == 503
    assert down.headers["retry-after"] == "5"


@pytest.fixture
def rotated_back(numbered: Numbered) -> Iterator[None]:
    """Leave the index under KEY_A for the other tests, whatever happens here."""
    yield
    numbered.index(KEY_A)


def test_key_rotation(numbered: Numbered, rotated_back: None) -> None:
    body, headers = {"email": "jane.doe@example.com"}, bearer(TOKENS.searcher)

    def found(**env: str) -> int:
        client = api_client(numbered.settings(**env))
        return int(client.post("/v1/search", json=body, headers=headers).json()["count"])

    # Step 1: the new key deployed, the old one kept as previous: old entries still found.
    rotating = {"CUSTOMER_IDS_SEARCH_KEY": KEY_B, "CUSTOMER_IDS_SEARCH_KEY_PREVIOUS": KEY_A}
    assert found(**rotating) == 2
    assert found(CUSTOMER_IDS_SEARCH_KEY=KEY_B) == 0  # without it, nothing (yet)
    # Step 2: re-index from the input topic: entries under the new key, none under the old.
    report = reindex_search(numbered.settings(**rotating))
    assert report.events == len(numbered.events)
    assert report.customers_indexed == 4  # webshop/C5 has neither a valid email nor phone
    # Step 3: the previous key dropped: still found, and the old entries are gone.
    assert found(CUSTOMER_IDS_SEARCH_KEY=KEY_B) == 2
    assert found(CUSTOMER_IDS_SEARCH_KEY=KEY_A) == 0
    # And back again, by the same procedure.
    reindex_search(
        numbered.settings(CUSTOMER_IDS_SEARCH_KEY=KEY_A, CUSTOMER_IDS_SEARCH_KEY_PREVIOUS=KEY_B)
    )
    assert found(CUSTOMER_IDS_SEARCH_KEY=KEY_A) == 2
    assert found(CUSTOMER_IDS_SEARCH_KEY=KEY_B) == 0


def test_lookups_that_read_the_output_topic_are_limited_per_token(numbered: Numbered) -> None:
    # Without the reverse index, each unissued number costs a read of the output topic.
    settings = numbered.settings(CUSTOMER_IDS_REVERSE_INDEX="off")
    client = api_client(settings, CUSTOMER_IDS_API_SCAN_BURST="3", CUSTOMER_IDS_API_SCAN_RATE="1")
    reader, other = bearer(TOKENS.reader), bearer(TOKENS.searcher)
    for value in range(3):
        answer = client.get(f"/v1/numbers/{render(8_000_000 + value)}", headers=reader)
        assert answer.status_code == 200, answer.text
    limited = client.get(f"/v1/numbers/{render(8_000_010)}", headers=reader)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    # What needs no read is not counted: a miss remembered, a number held (cached).
    again = client.get(f"/v1/numbers/{render(8_000_000)}", headers=reader)
    assert again.status_code == 200 and again.json()["owner"] is None
    # The budget is the token's own.
    assert client.get(f"/v1/numbers/{render(8_000_011)}", headers=other).status_code == 200
