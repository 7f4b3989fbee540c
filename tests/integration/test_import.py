"""`customer-ids import` on real Kafka and Redis (issue 23): a file with any conflict is refused
whole with its lines named; a dry run and a repeated import write nothing; an import beside a
busy service never lets a new customer get an imported number, and imported customers who
come back keep theirs; an import killed half way completes when run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import redis

from customer_ids.adapters.log_reader import read_to_end
from customer_ids.config.settings import Settings
from customer_ids.domain.events import now_utc
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.wire.headers import IMPORTED_HEADER
from tests.helpers.api import TOKENS, api_client, bearer
from tests.helpers.events import make_events, send
from tests.helpers.load import send_slowly
from tests.helpers.own_redis import OwnRedis
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import read_committed, wait_for_outputs

TIMEOUT_S = 400  # a command on a machine four times slower
AUDIT_ONCE = ["--metrics-port", "0", "--gap-grace", "0"]


def render(value: int) -> str:
    ctx = RenderContext(value, now_utc(), "INDIVIDUAL", "DE")
    return NumberTemplate.parse("CU-{seq:8}-{check:luhn}").render(ctx)


def run_import(
    scenario: Scenario, path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", "import", str(path), *args],
        env=scenario.env(CUSTOMER_IDS_CONNECT_TIMEOUT_S="30", **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def cli_lookup(scenario: Scenario, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", "lookup", *args],
        env=scenario.env(CUSTOMER_IDS_CONNECT_TIMEOUT_S="30"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["source_system,customer_id,customer_number"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def imported_outputs(scenario: Scenario) -> Counter[str]:
    """customer key -> how many imported records the output topic holds for it."""
    found: Counter[str] = Counter()

    def on_output(message: object) -> None:
        headers = message.headers() or []  # type: ignore[attr-defined]
        if any(name == IMPORTED_HEADER for name, _ in headers):
            found[(message.key() or b"").decode()] += 1  # type: ignore[attr-defined]

    read_to_end(scenario.endpoints.bootstrap, scenario.output_topic, on_output)
    return found


def test_a_file_with_conflicts_is_refused_whole_with_its_lines_named(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    events = make_events(20, seed=2301)
    send(scenario.create_topics(), events)
    start_service()
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 20)
    issued = committed.outputs[0]
    good = render(500_001)
    bad_check = good[:-1] + str((int(good[-1]) + 1) % 10)
    path = write_csv(
        tmp_path / "legacy.csv",
        [
            ("crm", "L1", good),  # line 2: fine on its own
            ("crm", "L2", good),  # 3: one number for two customers
            ("crm", "L1", render(500_002)),  # 4: two numbers for one customer
            ("crm", "L3", bad_check),  # 5: a check digit that does not match
            ("crm", "L4", issued.customer_number),  # 6: issued by the service to another
            (issued.source_system, issued.customer_id, render(500_003)),  # 7: has one already
            ("crm", "", "LEG/1"),  # 8: malformed (no customer id)
            ("crm", "L5", "LEG/900123"),  # 9: fine (a legacy number)
        ],
    )
    report = tmp_path / "report.jsonl"
    refused = run_import(scenario, path, "--report", str(report))
    assert refused.returncode == 65, refused.stderr
    assert "nothing was written" in refused.stderr
    lines = [json.loads(line) for line in report.read_text().splitlines()[1:]]
    assert [r["line"] for r in lines] == [3, 4, 5, 6, 7, 8]
    reasons = {r["line"]: r["reason"] for r in lines}
    assert "one number for two customers" in reasons[3]
    assert "two numbers for one customer" in reasons[4]
    assert "not one of them" in reasons[5]
    assert f"already issued to {issued.customer_key}" in reasons[6]
    assert f"already has {issued.customer_number}" in reasons[7]
    assert "customer_id is empty" in reasons[8]
    for line in (3, 4, 5, 6, 7, 8):
        assert f"line {line}:" in refused.stderr
    dry = run_import(scenario, path, "--dry-run")
    assert dry.returncode == 65, dry.stderr
    assert not imported_outputs(scenario)  # nothing written by either

    clean = write_csv(tmp_path / "clean.csv", [("crm", "L1", good), ("crm", "L5", "LEG/900123")])
    dry = run_import(scenario, clean, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: every check passed" in dry.stderr
    assert not imported_outputs(scenario)
    done = run_import(scenario, clean)
    assert done.returncode == 0, done.stderr
    assert imported_outputs(scenario) == {"crm/L1": 1, "crm/L5": 1}
    again = run_import(scenario, clean)
    assert again.returncode == 0, again.stderr
    assert "already committed" in again.stderr
    assert imported_outputs(scenario) == {"crm/L1": 1, "crm/L5": 1}  # a no-op

    # Found like any other: by customer and by number, a legacy one with its '/' included.
    with api_client(Settings.from_env(scenario.env())) as client:
        reader = bearer(TOKENS.reader)
        legacy = client.get("/v1/numbers/LEG/900123", headers=reader).json()
        assert legacy["valid"] and legacy["owner"]["customer_id"] == "L5"
        assert client.get("/v1/customers/crm/L5", headers=reader).json()["customer_number"] == (
            "LEG/900123"
        )
        imported = client.get(f"/v1/numbers/{good}", headers=reader).json()
        assert imported["owner"]["customer_id"] == "L1"
    found = cli_lookup(scenario, "--number", "LEG/900123", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["customer_id"] == "L5"


def test_an_import_beside_a_busy_service_never_gives_an_imported_number_to_a_new_customer(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    live = make_events(3000, seed=2302)
    scenario.create_topics()
    start_service()
    sender = send_slowly(scenario, live, seconds=20)
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 200, timeout=240)
    # Numbers far above the live counter, and legacy ones, for customers of another system.
    pairs = [("legacy-crm", f"K{i}", render(50_000 + 3 * i)) for i in range(1500)]
    pairs += [("legacy-crm", f"G{i}", f"OLD-{i:05d}/X") for i in range(300)]
    done = run_import(scenario, write_csv(tmp_path / "pairs.csv", pairs), "--chunk-rows", "400")
    assert done.returncode == 0, done.stderr
    sender.join(timeout=600)
    # Imported customers come back as CustomerCreated events: they keep their numbers.
    returning = [
        replace(e, source_system="legacy-crm", customer_id=customer)
        for e, (_, customer, _) in zip(make_events(200, seed=2303), pairs[::9], strict=False)
    ]
    send(scenario, returning)
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        len(live) + len(pairs) + len(returning),
        timeout=400,
    )
    imported = {f"legacy-crm/{c}": n for _, c, n in pairs}
    owners = committed.customers_by_number()
    shared = {n: c for n, c in owners.items() if len(c) > 1}
    assert not shared, f"numbers given to two customers: {list(shared.items())[:5]}"
    numbers = committed.numbers_by_customer()
    assert all(numbers[k] == {n} for k, n in imported.items())
    for event in live:
        assert not numbers[event.customer_key] & set(imported.values())
    assert all(numbers[e.customer_key] == {imported[e.customer_key]} for e in returning)
    assert imported_outputs(scenario) == Counter(dict.fromkeys(imported, 1))
    audit = subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", "audit", "--until-caught-up", *AUDIT_ONCE],
        env=scenario.env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert audit.returncode == 0, audit.stderr[-3000:]
    kinds = ("number_shared", "two_numbers", "invalid_number", "sequence_gap")
    findings = [k for k in kinds if f'"audit_{k}"' in audit.stderr]
    assert not findings, audit.stderr[-3000:]


def test_an_import_killed_half_way_completes_when_run_again(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    scenario.create_topics()
    start_service()
    pairs = [("old", f"C{i}", render(20_000 + i)) for i in range(1000)]
    path = write_csv(tmp_path / "pairs.csv", pairs)
    # Stopped with its third chunk's records on the broker, before the commit, then killed.
    process = subprocess.Popen(
        [sys.executable, "-m", "customer_ids.cli", "import", str(path), "--chunk-rows", "200"],
        env=scenario.env(
            CUSTOMER_IDS_CONNECT_TIMEOUT_S="30",
            CUSTOMER_IDS_FAILPOINT="import_before_commit:3",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while _state(process.pid) != "T":
        assert process.poll() is None, "the import ended before its failpoint"
        assert time.monotonic() < deadline, "the import never reached its third commit"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    half = imported_outputs(scenario)
    assert sum(half.values()) == 400, half  # two whole chunks, none of the third
    done = run_import(scenario, path, "--chunk-rows", "200")
    assert done.returncode == 0, done.stderr
    assert "400 already committed" in done.stderr
    assert imported_outputs(scenario) == Counter({f"old/C{i}": 1 for i in range(1000)})
    committed = read_committed(scenario.endpoints.bootstrap, scenario.output_topic)
    assert {o.customer_key: o.customer_number for o in committed.outputs} == {
        f"old/{c}": n for _, c, n in pairs
    }


def _state(pid: int) -> str:
    """The process state letter from /proc (T: stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "?"


def test_a_template_that_could_produce_an_imported_legacy_number_is_refused_at_start_up(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    scenario.create_topics()
    path = write_csv(tmp_path / "legacy.csv", [("crm", "1", "LEG/900123")])
    done = run_import(scenario, path)
    assert done.returncode == 0, done.stderr
    refused = start_service(CUSTOMER_IDS_NUMBER_FORMAT="LEG/{seq:6}")
    assert refused.proc is not None and refused.proc.wait(120) == 2, refused.log()[-2000:]
    assert "could produce imported legacy numbers of the shape 'LEG/999999'" in refused.log()
    # And an import of a legacy number that a template used before could produce is refused.
    start_service(CUSTOMER_IDS_NUMBER_FORMAT="OLD{seq:6}").wait_for_log("service_started", 120)
    clash = run_import(scenario, write_csv(tmp_path / "clash.csv", [("crm", "2", "OLD123456")]))
    assert clash.returncode == 65, clash.stderr
    assert "has the shape of sequence" in clash.stderr or "used before" in clash.stderr


def test_redis_wiped_after_an_import_the_rebuild_keeps_imported_numbers_and_the_raise(
    scenario: Scenario,
    start_service: Callable[..., ServiceProcess],
    tmp_path: Path,
    own_redis: OwnRedis,
) -> None:
    first = make_events(50, seed=2304)
    send(scenario.create_topics(), first)
    service = start_service(REDIS_URL=own_redis.url)
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 50)
    pairs = [("old", f"C{i}", render(70_000 + i)) for i in range(300)]
    pairs += [("old", f"L{i}", f"LEG-{i}") for i in range(50)]
    done = run_import(scenario, write_csv(tmp_path / "pairs.csv", pairs), REDIS_URL=own_redis.url)
    assert done.returncode == 0, done.stderr
    redis.Redis.from_url(own_redis.url).flushall()
    returning = [
        replace(e, source_system="old", customer_id=c)
        for e, (_, c, _) in zip(make_events(40, seed=2305), pairs[::9], strict=False)
    ]
    later = make_events(100, seed=2306)
    send(scenario, [*returning, *later])
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        50 + len(pairs) + len(returning) + len(later),
        timeout=400,
    )
    assert service.running()
    imported = {f"old/{c}": n for _, c, n in pairs}
    numbers = committed.numbers_by_customer()
    assert all(numbers[e.customer_key] == {imported[e.customer_key]} for e in returning)
    assert not {n for e in later for n in numbers[e.customer_key]} & set(imported.values())
    new_values = [
        o.sequence for o in committed.outputs if o.customer_key in {e.customer_key for e in later}
    ]
    assert min(new_values) > 70_299  # above every imported value, after the rebuild too
    shared = {n: c for n, c in committed.customers_by_number().items() if len(c) > 1}
    assert not shared


def test_nothing_of_an_unfinished_chunk_is_visible_and_an_edited_file_completes(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """Killed before its second chunk committed: none of that chunk is in Redis, so a customer
    of it who arrives meanwhile is a new customer (not handed the uncommitted number); the
    re-run names that line; the file without it completes (a new import over the same range)."""
    scenario.create_topics()
    start_service()
    pairs = [("old", f"C{i}", render(30_000 + i)) for i in range(200)]
    pairs += [("old", f"L{i}", f"OLD-{i}") for i in range(200)]
    pairs.sort(key=lambda p: p[1][1:].zfill(4) + p[1][0])  # template and legacy mixed
    path = write_csv(tmp_path / "pairs.csv", pairs)
    process = subprocess.Popen(
        [sys.executable, "-m", "customer_ids.cli", "import", str(path), "--chunk-rows", "200"],
        env=scenario.env(
            CUSTOMER_IDS_CONNECT_TIMEOUT_S="30", CUSTOMER_IDS_FAILPOINT="import_before_commit:2"
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while _state(process.pid) != "T":
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    unfinished = pairs[200:]
    comer = next(p for p in unfinished if p[1].startswith("L"))
    event = replace(make_events(1, seed=2307)[0], source_system="old", customer_id=comer[1])
    send(scenario, [event])
    committed = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, 201, timeout=400
    )
    given = committed.numbers_by_customer()[event.customer_key]
    assert given != {comer[2]}  # a new number: the legacy one was never committed
    refused = run_import(scenario, path, "--chunk-rows", "200")
    assert refused.returncode == 65, refused.stderr
    assert f"{event.customer_key} {comer[2]}" in refused.stderr
    assert "two numbers for one customer" in refused.stderr
    edited = write_csv(tmp_path / "edited.csv", [p for p in pairs if p != comer])
    done = run_import(scenario, edited, "--chunk-rows", "200")
    assert done.returncode == 0, done.stderr
    final = read_committed(scenario.endpoints.bootstrap, scenario.output_topic)
    owners = final.customers_by_number()
    assert not {n: c for n, c in owners.items() if len(c) > 1}
    numbers = final.numbers_by_customer()
    assert all(numbers[f"old/{c}"] == {n} for _, c, n in pairs if (_, c, n) != comer)
