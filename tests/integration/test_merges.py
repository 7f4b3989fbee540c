"""Merges, links and unmerges (issue 24), on the real service, Kafka and Redis: the number as the
stable golden id. Requests go to the merge topic as a CRM's merge hook would send them; the
output topic's latest record per customer is what subscribers of the compacted table see."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import redis
from confluent_kafka import Message, Producer

from customer_ids.adapters.kafka_io import producer_config
from customer_ids.adapters.log_reader import read_to_end
from customer_ids.config.settings import Settings
from customer_ids.domain.events import (
    MERGE,
    UNMERGE,
    CustomerCreated,
    CustomerIdAssigned,
    CustomerMergeRequested,
    now_utc,
)
from customer_ids.wire.codec import codec_for, customer_id_assigned_codec
from tests.helpers.api import TOKENS, api_client, bearer
from tests.helpers.auditor import AuditorProcess
from tests.helpers.events import make_events, send
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import wait_for_outputs

SEARCH_KEY = "m" * 24 + "-merge-search-key-2026"


def request(action: str, merged: str, survivor: str | None = None) -> CustomerMergeRequested:
    merged_system, _, merged_id = merged.partition("/")
    system, _, customer = (survivor or "").partition("/")
    return CustomerMergeRequested(
        event_id=str(uuid.uuid4()),
        action=action,
        merged_source_system=merged_system,
        merged_customer_id=merged_id,
        survivor_source_system=system or None,
        survivor_customer_id=customer or None,
        requested_at=now_utc(),
        requested_by="test",
    )


def send_requests(scenario: Scenario, requests: Iterable[CustomerMergeRequested]) -> None:
    """As a CRM's merge hook: each request keyed by the merged customer."""
    codec = codec_for("CustomerMergeRequested")
    producer = Producer(producer_config(scenario.endpoints.bootstrap, {"enable.idempotence": True}))
    for r in requests:
        producer.produce(
            scenario.merge_topic, key=r.merged_key.encode(), value=codec.encode(r.to_record())
        )
    assert producer.flush(60) == 0


def latest(scenario: Scenario) -> dict[str, CustomerIdAssigned]:
    """The output topic as a compacted table: the last record of each customer."""
    codec = customer_id_assigned_codec()
    table: dict[str, CustomerIdAssigned] = {}

    def take(message: Message) -> None:
        out = CustomerIdAssigned.from_record(codec.decode(message.value()))
        table[out.customer_key] = out

    read_to_end(scenario.endpoints.bootstrap, scenario.output_topic, take)
    return table


def dead_letter_reasons(scenario: Scenario) -> list[str]:
    reasons: list[str] = []

    def take(message: Message) -> None:
        headers: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        reasons.append(dict(headers).get("error.message", b"").decode())

    read_to_end(scenario.endpoints.bootstrap, scenario.dlq_topic, take)
    return reasons


def wait_until(
    scenario: Scenario, done: Callable[[dict[str, CustomerIdAssigned]], bool], timeout: float = 240
) -> dict[str, CustomerIdAssigned]:
    deadline = time.monotonic() + timeout
    while True:
        table = latest(scenario)
        if done(table):
            return table
        if time.monotonic() > deadline:
            raise AssertionError("the output topic did not reach the expected state in time")
        time.sleep(1)


def returning(events: Iterable[CustomerCreated]) -> list[CustomerCreated]:
    """The same customers sent again (a new event each): a CRM re-sending them."""
    return [dataclasses.replace(e, event_id=str(uuid.uuid4())) for e in events]


@dataclasses.dataclass
class Plan:
    """Who is merged into whom: (merged, survivor) pairs, chains (C, B, A) and the rest."""

    within: list[tuple[str, str]]
    links: list[tuple[str, str]]
    chains: list[tuple[str, str, str]]
    left: list[str]


def plan(keys: list[str]) -> Plan:
    """100 merges within a system, 100 links across systems, 20 chains."""
    keys = sorted(keys)
    random.Random(24).shuffle(keys)
    by_system: dict[str, list[str]] = {}
    for key in keys[:400]:
        by_system.setdefault(key.split("/")[0], []).append(key)
    within: list[tuple[str, str]] = []
    for group in by_system.values():
        while len(group) >= 2 and len(within) < 100:
            within.append((group.pop(), group.pop()))
    left = [k for group in by_system.values() for k in group] + keys[400:]
    links: list[tuple[str, str]] = []
    while len(links) < 100:
        merged = left.pop()
        survivor = next(k for k in left if k.split("/")[0] != merged.split("/")[0])
        left.remove(survivor)
        links.append((merged, survivor))
    chains = [(left.pop(), left.pop(), left.pop()) for _ in range(20)]
    return Plan(within, links, chains, left)


def test_merges_links_chains_and_unmerges_keep_one_number_per_person(
    scenario: Scenario, tmp_path: Path
) -> None:
    scenario.create_topics()
    events = make_events(640, seed=240)
    send(scenario, events)
    service = ServiceProcess(scenario, tmp_path, "svc").start()
    try:
        first = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 640)
        number = {o.customer_key: o.customer_number for o in first.outputs}
        p = plan(list(number))
        merged_away = p.within[0][0]
        refusals = [
            request(MERGE, "crm/nobody-here", p.within[1][1]),  # no such customer
            request(MERGE, p.left[0], "crm/nobody-here"),  # no such survivor
            request(MERGE, p.left[0], p.left[0]),  # itself
            request(MERGE, p.left[1], merged_away),  # a survivor merged away (by then)
        ]
        pairs = p.within + p.links + [(c, b) for c, b, _ in p.chains]
        send_requests(scenario, [request(MERGE, m, s) for m, s in pairs])
        expected = dict(pairs)
        wait_until(scenario, lambda t: all(t[m].merged_into == s for m, s in expected.items()))

        unmerged = [m for m, _ in p.within[-20:]]
        send_requests(
            scenario,
            refusals
            + [request(MERGE, b, a) for _, b, a in p.chains]
            + [request(UNMERGE, m) for m in unmerged]
            + [request(MERGE, *p.within[2])],  # a repeat: nothing new
        )
        for m in unmerged:
            del expected[m]
        expected |= {b: a for _, b, a in p.chains}
        table = wait_until(
            scenario,
            lambda t: (
                all(t[b].merged_into == a for _, b, a in p.chains)
                and all(t[m].merged_into is None for m in unmerged)
                and len(dead_letter_reasons(scenario)) >= len(refusals)
            ),
        )
        # A chain resolves: C and B answer with A's number.
        root = expected | {c: a for c, _, a in p.chains}
        for merged, survivor in root.items():
            out = table[merged]
            assert out.customer_number == number[survivor], merged
            assert out.retired_number == number[merged]
            assert out.merged_into == expected[merged]
        for m in unmerged:
            assert table[m].customer_number == number[m] and table[m].retired_number is None
        # Refusals say why and change nothing.
        reasons = dead_letter_reasons(scenario)
        for reason in (
            "crm/nobody-here has no number: nothing to merge",
            "survivor crm/nobody-here has no number",
            "cannot be merged into itself",
            f"survivor {merged_away} is itself merged into",
        ):
            assert any(reason in r for r in reasons), reason
        for key in p.left[:2]:
            assert table[key].customer_number == number[key] and table[key].merged_into is None
        check_returning_and_new(scenario, events, number, root, expected)
    finally:
        service.kill()

    auditor = AuditorProcess(scenario, tmp_path, "--until-caught-up", "--gap-grace", "0").start()
    assert auditor.wait() == 0, auditor.log_path.read_text()[-3000:]
    assert auditor.findings() == []


def check_returning_and_new(
    scenario: Scenario,
    events: list[CustomerCreated],
    number: dict[str, str],
    root: dict[str, str],
    expected: dict[str, str],
) -> None:
    """Merged customers returning spend no number; new customers never get a retired one."""
    before = max(o.sequence for o in latest_records(scenario))
    again = returning([e for e in events if e.customer_key in root][:120])
    fresh = make_events(100, seed=241)
    send(scenario, again + fresh)
    answers = wait_for_answers(scenario, {e.event_id for e in again + fresh})
    for event in again:
        out = answers[event.event_id]
        assert out.customer_number == number[root[event.customer_key]]
        assert out.merged_into == expected[event.customer_key]
    drawn = {o.customer_number for o in latest_records(scenario) if o.sequence > before}
    assert len(drawn) == 100  # exactly the new customers drew values
    assert not drawn & {number[m] for m in root}


def wait_for_answers(
    scenario: Scenario, causes: set[str], timeout: float = 240
) -> dict[str, CustomerIdAssigned]:
    """The output record of each of these input events, by the event's id."""
    deadline = time.monotonic() + timeout
    while True:
        found = {o.causation_id: o for o in latest_records(scenario) if o.causation_id in causes}
        if len(found) == len(causes):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} of {len(causes)} events answered in time")
        time.sleep(1)


def latest_records(scenario: Scenario) -> list[CustomerIdAssigned]:
    """Every record of the output topic, in the order read."""
    codec = customer_id_assigned_codec()
    out: list[CustomerIdAssigned] = []
    read_to_end(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        lambda m: out.append(CustomerIdAssigned.from_record(codec.decode(m.value()))),
    )
    return out


def sharing_an_email(seed: int, webshop: str, crm: str, pos: str) -> list[CustomerCreated]:
    """webshop/W1, crm/C1 and pos/P1, with these emails."""
    base = make_events(3, seed=seed)
    return [
        dataclasses.replace(base[0], source_system="webshop", customer_id="W1", email=webshop),
        dataclasses.replace(base[1], source_system="crm", customer_id="C1", email=crm),
        dataclasses.replace(base[2], source_system="pos", customer_id="P1", email=pos),
    ]


def test_customers_sharing_an_email_carry_each_others_number_as_possible_duplicates(
    scenario: Scenario, tmp_path: Path
) -> None:
    scenario.create_topics()
    shared = "jo.doe@example.org"
    people = sharing_an_email(250, shared, shared.upper(), "other@example.org")
    service = ServiceProcess(scenario, tmp_path, "svc", CUSTOMER_IDS_SEARCH_KEY=SEARCH_KEY).start()
    try:
        send(scenario, people[:1])
        wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 1)
        send(scenario, people[1:])
        wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 3)
        send(scenario, returning(people[:1]))  # the first returns: now it knows the second
        records = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 4)
    finally:
        service.kill()
    outs = records.outputs
    number = {o.customer_key: o.customer_number for o in outs}
    last = {o.customer_key: o for o in outs}
    assert last["crm/C1"].possible_duplicates == (number["webshop/W1"],)
    assert last["webshop/W1"].possible_duplicates == (number["crm/C1"],)
    assert last["pos/P1"].possible_duplicates == ()
    # Only numbers travel: no email in any output record.
    raw: list[bytes] = []
    read_to_end(
        scenario.endpoints.bootstrap, scenario.output_topic, lambda m: raw.append(m.value() or b"")
    )
    assert not any(b"example.org" in value for value in raw)


def test_a_wiped_redis_is_rebuilt_with_its_merges(scenario: Scenario, tmp_path: Path) -> None:
    scenario.create_topics()
    events = make_events(30, seed=260)
    send(scenario, events)
    service = ServiceProcess(scenario, tmp_path, "svc").start()
    try:
        first = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 30)
        number = {o.customer_key: o.customer_number for o in first.outputs}
        keys = sorted(number)
        c, b, a, m, s = keys[:5]
        send_requests(scenario, [request(MERGE, c, b), request(MERGE, m, s)])
        wait_until(scenario, lambda t: t[c].merged_into == b and t[m].merged_into == s)
        client = redis.Redis.from_url(scenario.endpoints.redis_url)
        wiped = list(client.scan_iter(match=f"{scenario.redis_prefix}*", count=1000))
        client.delete(*wiped)  # this scenario's Redis state gone: rebuilt from the log
        # After the rebuild: a returning merged customer gets the survivor's number, and a
        # chain made now moves the customer merged before the wipe too.
        send(scenario, returning([e for e in events if e.customer_key == m]))
        send_requests(scenario, [request(MERGE, b, a)])
        table = wait_until(
            scenario,
            lambda t: t[b].merged_into == a and t[c].customer_number == number[a],
        )
        assert "redis_state_rebuilt_from_kafka" in service.log()
        assert table[m].customer_number == number[s] and table[m].retired_number == number[m]
        assert table[c].merged_into == b and table[c].retired_number == number[c]
        lookup = subprocess.run(
            [sys.executable, "-m", "customer_ids.cli", "lookup", "--number", number[c], "--json"],
            env=scenario.env(CUSTOMER_IDS_REVERSE_INDEX="off"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert lookup.returncode == 0, lookup.stderr[-2000:]
        assert f'"merged_into": "{b}"' in lookup.stdout and number[a] in lookup.stdout
    finally:
        service.kill()


def test_the_merge_command_answers_plainly(scenario: Scenario, tmp_path: Path) -> None:
    scenario.create_topics()
    events = make_events(4, seed=270)
    send(scenario, events)
    service = ServiceProcess(scenario, tmp_path, "svc").start()
    try:
        first = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 4)
        number = {o.customer_key: o.customer_number for o in first.outputs}
        m, s = sorted(number)[:2]

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "customer_ids.cli", *args],
                env=scenario.env(),
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )

        merged = cli("merge", "--survivor", s, "--merged", m)
        assert merged.returncode == 0, merged.stderr[-2000:]
        assert f"merged: {m} now answers with {number[s]}" in merged.stdout
        assert f"its own number {number[m]} is retired" in merged.stdout
        refused = cli("merge", "--survivor", m, "--merged", s)
        assert refused.returncode == 65, refused.stderr[-2000:]
        assert f"survivor {m} is itself merged into {s}" in refused.stderr
        back = cli("unmerge", "--merged", m)
        assert back.returncode == 0, back.stderr[-2000:]
        assert f"{m} answers with its own number {number[m]} again" in back.stdout
        wrong = cli("merge", "--survivor", "nonsense", "--merged", m)
        assert wrong.returncode == 2 and "SOURCE_SYSTEM/CUSTOMER_ID" in wrong.stderr
    finally:
        service.kill()


def test_the_api_and_the_page_show_merges_aliases_and_possible_duplicates(
    scenario: Scenario, tmp_path: Path
) -> None:
    scenario.create_topics()
    shared = "sam.roe@example.org"
    people = sharing_an_email(280, shared, shared, "p@example.org")
    extra = {"CUSTOMER_IDS_SEARCH_KEY": SEARCH_KEY, "CUSTOMER_IDS_REVERSE_INDEX": "on"}
    send(scenario, people)
    service = ServiceProcess(scenario, tmp_path, "svc", **extra).start()
    try:
        first = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 3)
        number = {o.customer_key: o.customer_number for o in first.outputs}
        send_requests(scenario, [request(MERGE, "pos/P1", "crm/C1")])
        wait_until(scenario, lambda t: t["pos/P1"].merged_into == "crm/C1")
    finally:
        service.kill()
    client = api_client(Settings.from_env(scenario.env(**extra)))
    reader = bearer(TOKENS.reader)
    merged = client.get("/v1/customers/pos/P1", headers=reader).json()
    assert merged["customer_number"] == number["crm/C1"]
    assert (merged["merged_into"], merged["retired_number"]) == ("crm/C1", number["pos/P1"])
    owner = client.get(f"/v1/numbers/{number['pos/P1']}", headers=reader).json()["owner"]
    assert (owner["customer_id"], owner["merged_into"]) == ("P1", "crm/C1")
    web = client.get("/v1/customers/webshop/W1", headers=reader).json()
    assert web["possible_duplicates"] == [number["crm/C1"]]
    crm = client.get("/v1/customers/crm/C1", headers=reader).json()
    assert crm["possible_duplicates"] == [number["webshop/W1"]]
    assert client.post("/login", data={"token": TOKENS.searcher}).status_code == 200
    page = client.post("/search", data={"q": "pos/P1", "region": ""}).text
    assert "Merged into crm/C1" in page and number["pos/P1"] in page
    page = client.post("/search", data={"q": "webshop/W1", "region": ""}).text
    assert "Possible duplicates" in page and number["crm/C1"] in page
