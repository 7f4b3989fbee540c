"""What ops rely on: metrics and health endpoints from a running service, no personal data in
logs or metrics, clear start-up errors, and the bench harness still working."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.helpers.events import make_events, send
from tests.helpers.own_redis import free_port
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import wait_for_outputs

ROOT = Path(__file__).resolve().parents[2]


def on_a_terminal(command: list[str], env: dict[str, str]) -> str:
    """What `command` prints when its stdout is a terminal (a pseudo-terminal here), read
    while it runs: a terminal holds only a few kilobytes unread."""
    leader, follower = pty.openpty()
    # A terminal 160 columns wide, as a person's usually is (a new pty says 0 x 0).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(command, env=env, stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end closed and everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(120) == 0
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode(errors="replace"))


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_and_health_endpoints_and_no_personal_data_anywhere(
    scenario: Scenario, start_service: Callable[..., ServiceProcess]
) -> None:
    port = free_port()
    sent = send(scenario, make_events(300, seed=91))
    service = start_service(CUSTOMER_IDS_METRICS_PORT=str(port))
    wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 300)
    base = f"http://127.0.0.1:{port}"
    assert fetch(f"{base}/healthz")[0] == 200
    deadline = time.monotonic() + 10
    while fetch(f"{base}/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fetch(f"{base}/readyz") == (200, "ready\n")
    status, metrics = fetch(f"{base}/metrics")
    assert status == 200
    assert 'customer_ids_numbers_assigned_total{sequence="CU"} 300.0' in metrics
    assert "customer_ids_events_consumed_total 300.0" in metrics
    assert "customer_ids_batch_seconds_bucket" in metrics
    assert "customer_ids_redis_up 1.0" in metrics
    assert "customer_ids_consumer_lag{partition=" in metrics
    personal = [v for e in sent for v in (e.display_name, e.email, e.phone) if v]
    everything = service.log() + metrics
    leaked = [v for v in personal if v in everything]
    assert not leaked, f"personal data in logs or metrics: {leaked[:3]}"
    assert service.terminate() == 0
    assert fetch_fails(f"{base}/healthz")


def fetch_fails(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def test_misconfiguration_stops_with_a_message_naming_the_variable() -> None:
    env = dict(os.environ, CUSTOMER_IDS_BATCH_SIZE="many")
    result = subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CUSTOMER_IDS_BATCH_SIZE='many' is not a whole number" in result.stderr


def test_validate_command_exit_codes() -> None:
    def run(*numbers: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "customer_ids.cli", "validate", *numbers],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert run("CU-00000001-8").returncode == 0
    bad = run("--json", "CU-00000001-8", "CU-00000001-9")
    assert bad.returncode == 1
    rows = [json.loads(line) for line in bad.stdout.splitlines()]
    assert [(r["number"], r["valid"]) for r in rows] == [
        ("CU-00000001-8", True),
        ("CU-00000001-9", False),
    ]


def run_bench_smoke(scenario: Scenario, script: str, timeout: float) -> None:
    """`bench/<script> --smoke` on the test's Kafka and Redis; it must exit 0."""
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=scenario.endpoints.bootstrap,
        REDIS_URL=scenario.endpoints.redis_url,
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bench_smoke_runs_and_writes_json(scenario: Scenario) -> None:
    run_bench_smoke(scenario, "run.py", timeout=240)
    data = json.loads((ROOT / "bench" / "results" / "latest.json").read_text())
    assert data["events"] == 2000
    assert data["ceiling_a_passthrough_per_s"] > 0
    assert data["service_numbers_per_s"] > 0
    assert 0 < data["redis_bytes_per_customer"] < 10_000
    assert data["durability"]["everysec_numbers_per_s"] > 0
    assert data["durability"]["always_numbers_per_s"] > 0


def test_recovery_bench_smoke_runs_and_writes_json(scenario: Scenario) -> None:
    run_bench_smoke(scenario, "recovery.py", timeout=300)
    data = json.loads((ROOT / "bench" / "results" / "recovery.json").read_text())
    assert data["customers"] == 20_000
    assert data["full_rebuild_seconds"] > 0
    assert data["recovery_from_checkpoint_seconds"] > 0


def test_import_bench_smoke_runs_and_writes_json(scenario: Scenario) -> None:
    run_bench_smoke(scenario, "import.py", timeout=300)
    data = json.loads((ROOT / "bench" / "results" / "import.json").read_text())
    assert data["pairs"] == 4000
    assert data["import_pairs_per_s"] > 0
    assert data["service_numbers_per_s"] > 0


def test_dead_letters_listed_and_replayed_after_a_fix_without_second_numbers(
    scenario: Scenario, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    business_only = tmp_path / "business.toml"
    business_only.write_text(
        '[[sequences]]\nname = "B"\ntemplate = "B{seq:6}"\ncustomer_types = ["BUSINESS"]\n'
    )
    events = make_events(60, seed=93)
    individuals = [e for e in events if e.customer_type != "BUSINESS"]
    send(scenario, events)
    service = start_service(CUSTOMER_IDS_CONFIG=str(business_only))
    wait_for_outputs(
        scenario.endpoints.bootstrap,
        scenario.output_topic,
        len(events) - len(individuals),
        dlq_topic=scenario.dlq_topic,
        dead_letters=len(individuals),
    )
    assert service.terminate() == 0

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "customer_ids.cli", "dlq", *args],
            env=scenario.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # For a person at a terminal, a table; for scripts, --json (one object a line).
    table = on_a_terminal([sys.executable, "-m", "customer_ids.cli", "dlq", "list"], scenario.env())
    assert "reason" in table and "ValidationError" in table and "┃" in table
    assert "{" not in table  # before: JSON lines, also on a terminal
    listed = [json.loads(line) for line in cli("list", "--json").stdout.splitlines()]
    assert len(listed) == len(individuals)
    assert {row["error_class"] for row in listed} == {"ValidationError"}
    assert all("no sequence accepts" in row["error_message"] for row in listed)
    assert not any(e.email and e.email in json.dumps(listed) for e in individuals)

    start_service(CUSTOMER_IDS_NUMBER_FORMAT="X{seq:6}", CUSTOMER_IDS_SEQUENCE_NAME="B")
    replayed = cli("replay", "--reason", "ValidationError")
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {len(individuals)} record(s)" in replayed.stderr
    first = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, len(events))
    assert cli("replay", "--reason", "ValidationError").returncode == 0
    twice = wait_for_outputs(
        scenario.endpoints.bootstrap, scenario.output_topic, len(events) + len(individuals)
    )
    assert twice.numbers_by_customer() == first.numbers_by_customer()
    assert all(len(n) == 1 for n in twice.numbers_by_customer().values())
    assert len(twice.customers_by_number()) == len(events)


def test_request_reply_bench_smoke_runs_and_answers_from_the_output_topic(
    scenario: Scenario,
) -> None:
    run_bench_smoke(scenario, "request_reply.py", timeout=400)
    data = json.loads((ROOT / "bench" / "results" / "request_reply-smoke.json").read_text())
    assert data["rates"]["50"]["post_new"]["p50_ms"] > 0
    assert data["rates"]["50"]["service"]["p50_ms"] > 0
    concurrent = data["concurrent"]
    assert concurrent["customers_with_one_number"] == concurrent["customers"]
    assert concurrent["answers_differing_from_output_topic"] == 0
