"""Security on loopback: Redis with requirepass, a broker listener with SASL/PLAIN. The service
works with the credentials, stops with a clear message without them, and never shows them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from customer_ids.stack.kafka import KafkaNode
from customer_ids.stack.local import default_cache_dir
from tests.helpers.events import make_events, send
from tests.helpers.own_redis import OwnRedis, free_port
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.services import Endpoints
from tests.helpers.verify import assert_invariants, wait_for_outputs

REDIS_PASSWORD = "r3dis-Secret-pw"
KAFKA_PASSWORD = "k4fka-Secret-pw"


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path, extra_args=["--requirepass", REDIS_PASSWORD]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaNode]:
    node = KafkaNode(
        tmp_path_factory.mktemp("sasl") / "broker",
        default_cache_dir(),
        free_port(),
        free_port(),
        sasl_port=free_port(),
        sasl_users=(("app", KAFKA_PASSWORD),),
    )
    node.start()
    try:
        node.wait_ready()
        yield node
    finally:
        node.stop()


def run_serve(env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_redis_password_works_and_its_absence_stops_start_up_clearly(
    scenario: Scenario,
    redis_with_password: OwnRedis,
    start_service: Callable[..., ServiceProcess],
) -> None:
    with_password = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_with_password.port}/0"
    sent = send(scenario, make_events(50, seed=71))
    service = start_service(REDIS_URL=with_password)
    committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 50)
    assert_invariants(sent, committed)
    assert REDIS_PASSWORD not in service.log()

    refused = run_serve(
        scenario.env(
            REDIS_URL=redis_with_password.url, CUSTOMER_IDS_TRANSACTIONAL_ID=f"t-{scenario.tag}-2"
        )
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "requires a password: put it in REDIS_URL" in refused.stderr, refused.stderr[-3000:]

    shown = subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", "config"],
        env=scenario.env(REDIS_URL=with_password),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert REDIS_PASSWORD not in shown and ":***@" in shown


def test_sasl_plain_listener_works_with_credentials_and_refuses_without(
    endpoints: Endpoints, sasl_broker: KafkaNode, tmp_path: Path
) -> None:
    scenario = Scenario(Endpoints(sasl_broker.bootstrap, endpoints.redis_url, "own"))
    sent = send(scenario, make_events(40, seed=72))
    sasl = {
        "KAFKA_BOOTSTRAP_SERVERS": sasl_broker.sasl_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "app",
    }
    service = ServiceProcess(
        scenario, tmp_path, "sasl", **sasl, KAFKA_SASL_PASSWORD=KAFKA_PASSWORD
    ).start()
    try:
        committed = wait_for_outputs(sasl_broker.bootstrap, scenario.output_topic, 40)
        assert_invariants(sent, committed)
        assert KAFKA_PASSWORD not in service.log()
    finally:
        service.kill()
    refused = run_serve(
        scenario.env(
            **sasl,
            KAFKA_SASL_PASSWORD="wrong",
            CUSTOMER_IDS_STARTUP_TIMEOUT_S="20",
            CUSTOMER_IDS_TRANSACTIONAL_ID=f"t-{scenario.tag}-2",
        )
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "refused us" in refused.stderr, refused.stderr[-3000:]
    assert "KAFKA_SASL_PASSWORD" in refused.stderr


def test_an_evicting_redis_stops_start_up_with_the_setting_to_change(
    scenario: Scenario, tmp_path: Path
) -> None:
    """Eviction drops counters and map buckets under memory pressure; refused at start."""
    evicting = OwnRedis(tmp_path, ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"])
    evicting.start()
    try:
        refused = run_serve(scenario.env(REDIS_URL=evicting.url))
    finally:
        evicting.stop()
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "maxmemory-policy allkeys-lru" in refused.stderr, refused.stderr[-3000:]
    assert "noeviction" in refused.stderr
