"""No Docker engine runs here, so keep docker-compose.yml honest by checking it against the CLI,
the settings, the Dockerfile and the local broker's transaction settings."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from customer_ids.cli import build_parser
from customer_ids.config.api_settings import API_SETTINGS
from customer_ids.config.settings import SETTINGS, Settings
from customer_ids.stack.compose_files import write_compose_files
from customer_ids.stack.kafka import kafka_version

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def ha_variables() -> dict[str, str]:
    """What `docker compose --env-file deploy/redis-ha.env` sets."""
    lines = (ROOT / "deploy" / "redis-ha.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME} and ${NAME:-default}, as it fills them in before starting anything."""

    def fill(match: re.Match[str]) -> str:
        return variables.get(match.group(1)) or (match.group(2) or "")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", fill, value)


def runs_the_app(service: dict[str, Any]) -> bool:
    """Built here or running the image built here (not Kafka, Redis, Prometheus, Grafana)."""
    return str(service.get("image", "")).startswith("customer-ids") or "build" in service


def app_command(service: dict[str, Any]) -> list[str]:
    """The customer-ids arguments a service runs: its command, or what its shell script
    execs after loading its role's settings (the secure profile)."""
    if service.get("entrypoint") == ["/bin/sh", "-c"]:
        script = service["command"][0]
        assert script.startswith(". /secure/role.env && exec customer-ids "), script
        return shlex.split(script.split("exec customer-ids ", 1)[1])
    return list(service["command"])


def test_every_command_parses_with_the_real_cli() -> None:
    parser = build_parser()
    commands = {"serve", "produce", "tail", "audit", "api", "stack"}
    for name, service in compose()["services"].items():
        if runs_the_app(service):
            parser.parse_args(app_command(service))  # exits (fails the test) on a bad argument
            assert app_command(service)[0] in commands, name


ROLE_OF = {"serve": "service", "api": "api", "audit": "auditor", "produce": "producer"}


def test_the_secure_profile_gives_each_container_its_own_role_alone(tmp_path: Path) -> None:
    services = compose()["services"]
    secure = {n: s for n, s in services.items() if "secure" in s.get("profiles", [])}
    mounted: dict[str, str] = {}
    for name, service in secure.items():
        subpaths = [
            v["volume"]["subpath"] for v in service.get("volumes", []) if isinstance(v, dict)
        ]
        if subpaths:
            assert len(subpaths) == 1, name  # one folder of the secrets, never the whole volume
            mounted[name] = subpaths[0]
    for name, service in secure.items():
        if "entrypoint" in service and name != "kafka-secure":
            command = app_command(service)
            role = "admin" if command[0] == "stack" else ROLE_OF.get(command[0], "subscriber")
            assert mounted[name] == f"roles/{role}", name
    assert (mounted["kafka-secure"], mounted["redis-secure"]) == ("kafka", "redis")
    # What secure-init writes is what they mount.
    write_compose_files(tmp_path, Settings.from_env({}))
    for folder in mounted.values():
        assert (tmp_path / folder).is_dir(), folder
    server = (tmp_path / "kafka" / "server.properties").read_text()
    assert "advertised.listeners=SECURE://kafka-secure:9094" in server
    assert "listener.security.protocol.map=SECURE:SASL_SSL,CONTROLLER:SASL_SSL" in server
    assert "allow.everyone.if.no.acl.found=false" in server
    assert (tmp_path / "redis" / "users.acl").read_text().startswith("user default off")
    service_env = (tmp_path / "roles" / "service" / "role.env").read_text()
    assert "REDIS_URL=rediss://service:" in service_env and "@redis-secure:6380/0" in service_env
    assert "REDIS_URL" not in (tmp_path / "roles" / "subscriber" / "role.env").read_text()
    passwords = json.loads((tmp_path / "ca" / "secrets.json").read_text())
    for role in ("producer", "subscriber", "auditor"):
        text = (tmp_path / "roles" / role / "role.env").read_text()
        others = [p for user, p in passwords.items() if user != role]
        assert not any(p in text for p in others), role  # its own password only


def test_every_environment_variable_is_a_setting_and_parses() -> None:
    known = {s.env for s in (*SETTINGS, *API_SETTINGS)}
    for name, service in compose()["services"].items():
        if not runs_the_app(service):
            continue
        for variables in ({}, ha_variables()):
            env = {
                k: interpolate(str(v), variables) for k, v in service.get("environment", {}).items()
            }
            assert set(env) <= known, f"{name}: unknown variables {set(env) - known}"
            Settings.from_env(env)


def test_the_ha_profile_is_a_replica_and_three_sentinels_the_service_finds() -> None:
    services = compose()["services"]
    ha = {name for name, service in services.items() if "ha" in service.get("profiles", [])}
    assert ha == {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
    assert services["redis-replica"]["command"][-3:] == ["--replicaof", "redis", "6379"]
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        script = services[name]["command"][-1]
        assert "sentinel monitor customer-ids redis 6379 2" in script, name
        assert "port 26379" in script, name
    app = Settings.from_env(
        {
            k: interpolate(str(v), ha_variables())
            for k, v in services["customer-ids"]["environment"].items()
        }
    )
    assert app.redis_sentinels == tuple((f"sentinel-{n}", 26379) for n in (1, 2, 3))
    assert app.redis_sentinel_service == "customer-ids"
    assert ha_variables()["COMPOSE_PROFILES"] == "ha"


def test_subscribers_use_their_own_groups() -> None:
    services = compose()["services"]
    groups = [
        services[n]["command"][services[n]["command"].index("--group") + 1]
        for n in ("sales", "support", "marketing")
    ]
    assert groups == ["sales", "support", "marketing"]


def env_file(name: str) -> dict[str, str]:
    lines = (ROOT / "deploy" / name).read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def kafka_env(service: str, variables: dict[str, str]) -> dict[str, str]:
    env = compose()["services"][service]["environment"]
    return {k: interpolate(str(v), variables) for k, v in env.items()}


def test_kafka_is_the_pinned_version_with_one_broker_transaction_settings() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{kafka_version()}"
    env = kafka_env("kafka", {})
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    app = compose()["services"]["customer-ids"]["environment"]
    assert interpolate(app["KAFKA_BOOTSTRAP_SERVERS"], {}) == "kafka:9092"


def test_the_cluster_profile_is_three_voters_with_three_replicas_and_two_in_sync() -> None:
    variables = env_file("kafka-cluster.env")
    nodes = [name for name in ("kafka", "kafka-2", "kafka-3") if name in compose()["services"]]
    assert nodes == ["kafka", "kafka-2", "kafka-3"]
    for i, name in enumerate(nodes, start=1):
        env = kafka_env(name, variables)
        assert env["KAFKA_NODE_ID"] == str(i)
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
            "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
        )
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
    assert compose()["services"]["kafka-2"]["profiles"] == ["cluster"]
    app = compose()["services"]["customer-ids"]["environment"]
    assert interpolate(app["KAFKA_BOOTSTRAP_SERVERS"], variables).split(",") == [
        "kafka:9092",
        "kafka-2:9092",
        "kafka-3:9092",
    ]
    settings = Settings.from_env({k: interpolate(str(v), variables) for k, v in app.items()})
    assert settings.replication_factor == 3


def test_redis_persists_and_every_long_running_service_has_a_healthcheck_or_restart() -> None:
    services = compose()["services"]
    for name in ("redis", "redis-replica"):
        command = services[name]["command"]
        assert command[command.index("--appendonly") + 1] == "yes", name
        assert command[command.index("--appendfsync") + 1] == "always", name
    for name, service in services.items():
        if service.get("restart") != "no" or "command" not in service:
            assert "healthcheck" in service, f"{name} has no healthcheck"
    for name in ("kafka", "redis", "customer-ids", "sales", "support", "marketing"):
        assert services[name]["restart"] == "unless-stopped", name


def test_prometheus_scrapes_the_service_port() -> None:
    services = compose()["services"]
    mount = services["prometheus"]["volumes"][0].split(":")[0]
    config = yaml.safe_load((ROOT / mount).read_text())
    target = config["scrape_configs"][0]["dns_sd_configs"][0]
    assert target["names"] == ["customer-ids"]
    assert (
        str(target["port"]) == services["customer-ids"]["environment"]["CUSTOMER_IDS_METRICS_PORT"]
    )


def test_dockerfile_copies_every_package_and_the_schemas() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("schemas", "customer_ids", "consumer", "producer", "stack"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    assert 'ENTRYPOINT ["customer-ids"]' in dockerfile
