"""Commands a person runs, against a stack that is not up: each ends within its bound with one
plain line that names what it could not reach and where, exit 69, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.own_redis import free_port
from tests.helpers.services import Endpoints

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 2.0
# Python's start-up and the imports on a machine four times slower than this one.
SLACK_S = 20.0

COMMANDS = [
    (["tail"], "Kafka"),
    (["watch"], "Kafka"),
    (["produce", "--count", "1"], "Kafka"),
    (["audit", "--until-caught-up", "--metrics-port", "0"], "Kafka"),
    (["lookup", "--number", "CU-00000001-8"], "Kafka"),
    (["lookup", "--customer", "C1", "--source", "crm", "--from-log"], "Kafka"),
    # From Redis, and Kafka says whether the number is committed: Kafka is asked first.
    (["lookup", "--customer", "C1", "--source", "crm"], "Kafka"),
    (["dlq", "list"], "Kafka"),
    (["dlq", "replay", "--dry-run"], "Kafka"),
    (["search-reindex"], "Kafka"),
]


@pytest.fixture(scope="module")
def closed() -> dict[str, str]:
    """Environment whose Kafka and Redis are on ports nothing listens on."""
    kafka, redis_port = free_port(), free_port()
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "REDIS_URL": f"redis://:secret@127.0.0.1:{redis_port}/0",
        "CUSTOMER_IDS_CONNECT_TIMEOUT_S": str(BOUND_S),
        "CUSTOMER_IDS_SEARCH_KEY": "k" * 32,
    }


def run_cli(env: dict[str, str], command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", *command],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=BOUND_S + SLACK_S + 30,
    )


@pytest.mark.parametrize(
    ("command", "dependency"), COMMANDS, ids=[" ".join(c) for c, _ in COMMANDS]
)
def test_an_unreachable_dependency_is_one_line_and_exit_69(
    closed: dict[str, str], command: list[str], dependency: str
) -> None:
    started = time.monotonic()
    done = run_cli(closed, command)
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 69, output
    assert took < BOUND_S + SLACK_S, took
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output  # not librdkafka's connection error once a second
    assert lines[0].startswith(f"customer-ids: {dependency} did not answer at ")
    address = closed["KAFKA_BOOTSTRAP_SERVERS"] if dependency == "Kafka" else "127.0.0.1:"
    assert address in lines[0]
    assert "secret" not in output  # the Redis password is never printed
    assert "customer-ids stack up" in lines[0]


def test_an_unreachable_redis_is_one_line_without_its_password(
    closed: dict[str, str], endpoints: Endpoints
) -> None:
    # Kafka answers, Redis does not: the lookup names Redis, never its password.
    env = {**closed, "KAFKA_BOOTSTRAP_SERVERS": endpoints.bootstrap}
    done = run_cli(env, ["lookup", "--customer", "C1", "--source", "crm"])
    output = done.stdout + done.stderr
    assert done.returncode == 69, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("customer-ids: Redis did not answer at redis://:***@127.0.0.1:")
    assert "secret" not in output
