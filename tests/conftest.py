"""Session-wide real services; per-test uuid-named topics, group and Redis prefix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.java import build_jar
from tests.helpers.own_redis import OwnRedis
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.services import Endpoints, find_endpoints


@pytest.fixture(scope="session")
def endpoints() -> Endpoints:
    return find_endpoints()


@pytest.fixture
def scenario(endpoints: Endpoints) -> Scenario:
    return Scenario(endpoints)


@pytest.fixture
def services(scenario: Scenario, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Every service a test starts; all are SIGKILLed at the end, whatever happened."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        if service.running():
            service.kill()


@pytest.fixture
def start_service(services: list[ServiceProcess], scenario: Scenario, tmp_path: Path):  # type: ignore[no-untyped-def]
    def start(name: str = "svc", **env: str) -> ServiceProcess:
        service = ServiceProcess(scenario, tmp_path, name, **env).start()
        services.append(service)
        return service

    return start


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of the test's own, for faults the shared one must not suffer."""
    server = OwnRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def java_jar() -> Path:
    """The Java example subscriber, built once per session (Maven)."""
    return build_jar()
